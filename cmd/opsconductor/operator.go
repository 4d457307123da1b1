package main

import (
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/opsconductor/opsconductor/controller/apiclient"
	"github.com/opsconductor/opsconductor/controller/cluster"
	"github.com/opsconductor/opsconductor/controller/keyring"
)

func newOperatorCmd() *cobra.Command {
	op := &cobra.Command{Use: "operator", Short: "Cluster operations: Raft peers, snapshots, TLS, keys (needs cluster:admin)"}
	f := addAPIFlags(op)
	withClient := f.run

	raftCmd := &cobra.Command{Use: "raft", Short: "Inspect and change the Raft configuration"}
	var consistent bool
	listPeers := &cobra.Command{
		Use: "list-peers", Short: "List the servers in the Raft configuration", Args: cobra.NoArgs,
		RunE: withClient(func(cmd *cobra.Command, _ []string, c *apiclient.Client) error {
			pl, err := c.Peers(cmd.Context(), consistent)
			if err != nil {
				return err
			}
			sort.Slice(pl.Peers, func(i, j int) bool { return pl.Peers[i].ID < pl.Peers[j].ID })
			if f.json {
				return printJSON(cmd.OutOrStdout(), pl)
			}
			tw := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "ID\tADDRESS\tSTATE\tVOTER\tTERM\tLAST INDEX\tTRAILS LEADER BY")
			for _, p := range pl.Peers {
				st := "follower"
				if p.Leader {
					st = "leader"
				}
				if !p.Reachable {
					fmt.Fprintf(tw, "%s\t%s\t%s\t%t\t-\t-\tunreachable\n", p.ID, p.Address, st, p.Suffrage == "voter")
					continue
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%t\t%d\t%d\t%d\n", p.ID, p.Address, st, p.Suffrage == "voter", p.Term, p.LastIndex, p.TrailsLeaderBy)
			}
			return tw.Flush()
		}),
	}
	listPeers.Flags().BoolVar(&consistent, "consistent", false, "ask the leader instead of the local server")
	removePeer := &cobra.Command{
		Use: "remove-peer ID", Short: "Remove a (dead) server from the Raft configuration", Args: exactArgs(1, "the server ID to remove"),
		RunE: withClient(func(cmd *cobra.Command, args []string, c *apiclient.Client) error {
			if err := c.RemovePeer(cmd.Context(), args[0]); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "Removed peer %s\n", args[0])
			return nil
		}),
	}
	transfer := &cobra.Command{
		Use: "transfer-leadership", Short: "Make the leader hand leadership to another voter", Args: cobra.NoArgs,
		RunE: withClient(func(cmd *cobra.Command, _ []string, c *apiclient.Client) error {
			if err := c.TransferLeadership(cmd.Context()); err != nil {
				return err
			}
			fmt.Fprintln(cmd.OutOrStdout(), "Leadership transferred")
			return nil
		}),
	}
	raftCmd.AddCommand(listPeers, removePeer, transfer)

	snapCmd := &cobra.Command{Use: "snapshot", Short: "Save or restore the replicated state"}
	var stale bool
	save := &cobra.Command{
		Use: "save FILE", Short: "Save a snapshot of the replicated state to FILE", Args: exactArgs(1, "the file to write"),
		RunE: withClient(func(cmd *cobra.Command, args []string, c *apiclient.Client) error {
			return saveSnapshot(cmd, c, args[0], stale)
		}),
	}
	save.Flags().BoolVar(&stale, "stale", false, "save the addressed server's state without asking the leader")
	restore := &cobra.Command{
		Use: "restore FILE", Short: "Replace the whole cluster's replicated state with a saved snapshot", Args: exactArgs(1, "the snapshot file"),
		RunE: withClient(func(cmd *cobra.Command, args []string, c *apiclient.Client) error {
			f, err := os.Open(args[0])
			if err != nil {
				return usageError{fmt.Errorf("snapshot file: %w", err)}
			}
			defer f.Close()
			fmt.Fprintf(cmd.ErrOrStderr(), "Restoring %s (the cluster replaces its state; followers install it from the leader)…\n", args[0])
			if err := c.SnapshotRestore(cmd.Context(), f); err != nil {
				return err
			}
			fmt.Fprintln(cmd.OutOrStdout(), "Restored snapshot", args[0])
			return nil
		}),
	}
	snapCmd.AddCommand(save, restore)

	tlsCmd := &cobra.Command{Use: "tls", Short: "Manage the cluster certificate authority"}
	var dir string
	tlsInit := &cobra.Command{
		Use: "init", Short: "Create the cluster CA that every server is given", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if _, err := cluster.CreateCA(dir); err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			fmt.Fprintf(out, "Created the cluster CA in %s\n", dir)
			fmt.Fprintf(out, "Give every server these two files (keep the key secret, mode 0600):\n  --tls-ca-cert %s --tls-ca-key %s\n",
				filepath.Join(dir, cluster.CAFileName), filepath.Join(dir, cluster.CAKeyFileName))
			return nil
		},
	}
	tlsInit.Flags().StringVar(&dir, "dir", ".", "directory to write "+cluster.CAFileName+" and "+cluster.CAKeyFileName+" into")
	tlsCmd.AddCommand(tlsInit)

	checkCmd := &cobra.Command{Use: "check", Short: "Prove the cluster works end to end"}
	var count int
	checkWrite := &cobra.Command{
		Use: "write", Short: "Commit write checks through Raft and report their latency", Args: cobra.NoArgs,
		RunE: withClient(func(cmd *cobra.Command, _ []string, c *apiclient.Client) error {
			if count < 1 || count > 10000 {
				return usageError{fmt.Errorf("--count %d: use 1 to 10000", count)}
			}
			var worst time.Duration
			for i := range count {
				start := time.Now()
				rec, err := c.WriteProbe(cmd.Context(), fmt.Sprintf("operator check %d/%d", i+1, count))
				if err != nil {
					return fmt.Errorf("write check %d: %w", i+1, err)
				}
				worst = max(worst, time.Since(start))
				if i == count-1 {
					fmt.Fprintf(cmd.OutOrStdout(), "%d writes committed; last at index %d; slowest %s\n", count, rec.Index, worst.Round(time.Microsecond))
				}
			}
			return nil
		}),
	}
	checkWrite.Flags().IntVar(&count, "count", 1, "number of writes")
	checkCmd.AddCommand(checkWrite)

	keyringCmd := &cobra.Command{Use: "keyring", Short: "Manage the key-encryption keys that seal secrets in the replicated state"}
	var keyringFile string
	keyringInit := &cobra.Command{
		Use: "init", Short: "Create a keyring file for the servers of a cluster to share", Args: cobra.NoArgs,
		Long: `Create a keyring file with one new key (mode 0600). Every server of a cluster
must be started with the same file (--keyring-file) or its content in
OPSCONDUCTOR_KEYRING_KEY. An existing file is never overwritten.`,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if keyringFile == "" {
				return usageError{errors.New("--file is required: where to write the keyring")}
			}
			if err := keyring.Create(keyringFile); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "Created the keyring %s\n", keyringFile)
			fmt.Fprintf(cmd.OutOrStdout(), "Give every server the same file (keep it secret, mode 0600, and back it up):\n  --keyring-file %s\n", keyringFile)
			return nil
		},
	}
	keyringInit.Flags().StringVar(&keyringFile, "file", "", "keyring file to create (required; refuses to overwrite)")
	keyringCmd.AddCommand(keyringInit)

	var keyringConsistent bool
	keyringList := &cobra.Command{
		Use: "list", Short: "List the root keys and key-encryption keys, their states and how many envelopes each still wraps", Args: cobra.NoArgs,
		RunE: withClient(func(cmd *cobra.Command, _ []string, c *apiclient.Client) error {
			st, err := c.Keyring(cmd.Context(), keyringConsistent)
			if err != nil {
				return err
			}
			if f.json {
				return printJSON(cmd.OutOrStdout(), st)
			}
			return printKeyring(cmd.OutOrStdout(), st)
		}),
	}
	keyringList.Flags().BoolVar(&keyringConsistent, "consistent", false, "read through the leader")
	var rotateWait bool
	keyringRotate := &cobra.Command{
		Use: "rotate", Short: "Add a new active key-encryption key; the leader re-wraps every secret under it in the background", Args: cobra.NoArgs,
		Long: `Add a new key-encryption key, sealed by the key file's active root key and
replicated to every controller at once. It seals every new secret from now on;
the leader re-wraps the existing ones under it in the background, without
downtime. Once the previous key wraps nothing it is retired and may be
removed with 'operator keyring remove'. --wait follows the re-wrap.`,
		RunE: withClient(func(cmd *cobra.Command, _ []string, c *apiclient.Client) error {
			k, err := c.RotateKeyring(cmd.Context())
			if err != nil {
				return err
			}
			if !rotateWait {
				if f.json {
					return printJSON(cmd.OutOrStdout(), k)
				}
				_, err := fmt.Fprintf(cmd.OutOrStdout(), "Key %s is active; the leader re-wraps the existing secrets in the background ('operator keyring list' shows what is pending)\n", k.ID)
				return err
			}
			fmt.Fprintf(cmd.ErrOrStderr(), "Key %s is active; re-wrapping …\n", k.ID)
			st, err := waitRewrap(cmd, c, k.ID)
			if err != nil {
				return err
			}
			if f.json {
				return printJSON(cmd.OutOrStdout(), st)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "Key %s is active and every envelope is under it\n", k.ID)
			return printKeyring(cmd.OutOrStdout(), st)
		}),
	}
	keyringRotate.Flags().BoolVar(&rotateWait, "wait", false, "wait until every envelope is re-wrapped, showing progress")
	keyringRemove := &cobra.Command{
		Use: "remove ID", Short: "Remove a retired key-encryption key (refused while anything still uses it)", Args: exactArgs(1, "the key ID"),
		RunE: withClient(func(cmd *cobra.Command, args []string, c *apiclient.Client) error {
			if err := c.RemoveKeyringKey(cmd.Context(), args[0]); err != nil {
				return err
			}
			_, err := fmt.Fprintf(cmd.OutOrStdout(), "Removed key %s\n", args[0])
			return err
		}),
	}
	keyringCmd.AddCommand(keyringList, keyringRotate, keyringRemove)

	keysCmd := &cobra.Command{Use: "signing-keys", Short: "Inspect and rotate the access-token signing keys"}
	keysList := &cobra.Command{
		Use: "list", Short: "List the signing keys (retired ones verify until their tokens expire)", Args: cobra.NoArgs,
		RunE: withClient(func(cmd *cobra.Command, _ []string, c *apiclient.Client) error {
			keys, err := c.SigningKeys(cmd.Context())
			if err != nil {
				return err
			}
			if f.json {
				return printJSON(cmd.OutOrStdout(), nonNilSlice(keys))
			}
			rows := make([][]string, 0, len(keys))
			for _, k := range keys {
				state := "retired"
				if k.Active {
					state = "active"
				}
				rows = append(rows, []string{k.KID, state, when(&k.CreatedAt), when(k.RetiredAt)})
			}
			return table(cmd.OutOrStdout(), "KID\tSTATE\tCREATED\tRETIRED", rows)
		}),
	}
	keysRotate := &cobra.Command{
		Use: "rotate", Short: "Start signing with a new key now", Args: cobra.NoArgs,
		RunE: withClient(func(cmd *cobra.Command, _ []string, c *apiclient.Client) error {
			kid, err := c.RotateSigningKey(cmd.Context())
			if err != nil {
				return err
			}
			if f.json {
				return printJSON(cmd.OutOrStdout(), map[string]string{"kid": kid})
			}
			fmt.Fprintf(cmd.OutOrStdout(), "New signing key %s is active; tokens signed by the old one stay valid until they expire\n", kid)
			return nil
		}),
	}
	keysCmd.AddCommand(keysList, keysRotate)

	op.AddCommand(raftCmd, snapCmd, tlsCmd, checkCmd, keyringCmd, keysCmd, newHistoryCmd())
	return op
}

func saveSnapshot(cmd *cobra.Command, c *apiclient.Client, path string, stale bool) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), ".snapshot-*")
	if err != nil {
		return fmt.Errorf("create snapshot file: %w", err)
	}
	defer os.Remove(tmp.Name())
	n, err := c.SnapshotSave(cmd.Context(), tmp, stale)
	if err != nil {
		tmp.Close()
		return err
	}
	if err := errors.Join(tmp.Sync(), tmp.Close()); err != nil {
		return fmt.Errorf("write snapshot file: %w", err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("write snapshot file: %w", err)
	}
	fmt.Fprintf(cmd.OutOrStdout(), "Saved snapshot to %s (%d bytes)\n", path, n)
	return nil
}

func exactArgs(n int, what string) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		if len(args) != n {
			return usageError{fmt.Errorf("%s takes %d argument (%s), got %d", cmd.CommandPath(), n, what, len(args))}
		}
		return nil
	}
}

// printKeyring prints the keys as a table.
func printKeyring(w io.Writer, st apiclient.KeyringStatus) error {
	rows := make([][]string, 0, len(st.Keys))
	for _, k := range st.Keys {
		wraps := make([]string, 0, len(k.Envelopes))
		for _, h := range slices.Sorted(maps.Keys(k.Envelopes)) {
			wraps = append(wraps, fmt.Sprintf("%s %d", h, k.Envelopes[h]))
		}
		removable := "no"
		if k.Removable {
			removable = "yes"
		}
		created := "-"
		if !k.CreatedAt.IsZero() {
			created = when(&k.CreatedAt)
		}
		rows = append(rows, []string{k.ID, k.Tier, k.State, strconv.Itoa(k.Total), dash(strings.Join(wraps, ", ")), created, removable})
	}
	if err := table(w, "ID\tTIER\tSTATE\tWRAPS\tBY HOLDER\tCREATED\tREMOVABLE", rows); err != nil {
		return err
	}
	_, err := fmt.Fprintf(w, "active: %s; pending re-wrap: %d\n", st.Active, st.Pending)
	return err
}

// waitRewrap polls the keyring until nothing is pending under another key
// than active, printing progress to stderr.
func waitRewrap(cmd *cobra.Command, c *apiclient.Client, active string) (apiclient.KeyringStatus, error) {
	t := time.NewTicker(500 * time.Millisecond)
	defer t.Stop()
	last := -1
	for {
		st, err := c.Keyring(cmd.Context(), true)
		if err != nil {
			return st, err
		}
		if st.Active == active && st.Pending == 0 {
			return st, nil
		}
		if st.Pending != last {
			fmt.Fprintf(cmd.ErrOrStderr(), "  %d envelopes still to re-wrap (%d done by the leader so far)\n", st.Pending, st.Rewrap.Rewrapped)
			last = st.Pending
		}
		if st.Rewrap.Error != "" {
			fmt.Fprintf(cmd.ErrOrStderr(), "  the leader's last re-wrap failed, and retries: %s\n", st.Rewrap.Error)
		}
		select {
		case <-cmd.Context().Done():
			return st, cmd.Context().Err()
		case <-t.C:
		}
	}
}
