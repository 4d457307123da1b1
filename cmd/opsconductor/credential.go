package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"

	"github.com/spf13/cobra"
	"golang.org/x/crypto/ssh"

	"github.com/opsconductor/opsconductor/controller/apiclient"
)

// maxSecretInput bounds a secret read from a file or standard input (a
// certificate chain fits; the controller refuses more anyway).
const maxSecretInput = 64 << 10

// secretFlags are where a credential's secret comes from: files, standard
// input or a prompt without echo, never a flag's value (which would land
// in shell history and the process list).
type secretFlags struct {
	passwordFile, tokenFile, valueFile, keyFile, certFile, passphraseFile string
	stdin                                                                 bool
}

func (s *secretFlags) add(cmd *cobra.Command) {
	fl := cmd.Flags()
	fl.StringVar(&s.passwordFile, "password-file", "", "read a password credential's password from this file (first line)")
	fl.StringVar(&s.tokenFile, "token-file", "", "read a token credential's token from this file (first line)")
	fl.StringVar(&s.valueFile, "value-file", "", "read a secret credential's value from this file (whole file)")
	fl.StringVar(&s.keyFile, "key-file", "", "an ssh_key's private key, or a certificate's key, in PEM or OpenSSH form")
	fl.StringVar(&s.certFile, "cert-file", "", "a certificate credential's certificate (PEM, leaf first)")
	fl.StringVar(&s.passphraseFile, "passphrase-file", "", "an encrypted ssh_key's passphrase (first line)")
	fl.BoolVar(&s.stdin, "stdin", false, "read the secret from standard input: the first line for a password or token, everything for a value or private key")
}

// given reports whether any secret source was named.
func (s *secretFlags) given() bool {
	return s.stdin || s.passwordFile != "" || s.tokenFile != "" || s.valueFile != "" || s.keyFile != "" || s.certFile != "" || s.passphraseFile != ""
}

// readFile reads a secret file, refusing one readable by others: a
// secret left world-readable on disk has already leaked.
func readSecretFile(flag, path string, firstLine bool) (string, error) {
	info, err := os.Stat(path)
	if err != nil {
		return "", usageError{fmt.Errorf("--%s: %w", flag, err)}
	}
	if info.Mode().Perm()&0o004 != 0 {
		return "", usageError{fmt.Errorf("--%s: %s is readable by everyone (mode %v): chmod o-r it first", flag, path, info.Mode().Perm())}
	}
	f, err := os.Open(path)
	if err != nil {
		return "", usageError{fmt.Errorf("--%s: %w", flag, err)}
	}
	defer f.Close()
	return readSecret(f, "--"+flag, firstLine)
}

func readSecret(r io.Reader, what string, firstLine bool) (string, error) {
	b, err := io.ReadAll(io.LimitReader(r, maxSecretInput+1))
	if err != nil {
		return "", fmt.Errorf("%s: %w", what, err)
	}
	if len(b) > maxSecretInput {
		return "", usageError{fmt.Errorf("%s: longer than %d bytes", what, maxSecretInput)}
	}
	s := string(b)
	if firstLine {
		s, _, _ = strings.Cut(s, "\n")
		s = strings.TrimRight(s, "\r")
	} else if !strings.Contains(s, "-----BEGIN") {
		s = strings.TrimRight(s, "\r\n")
	}
	if s == "" {
		return "", usageError{fmt.Errorf("%s: empty", what)}
	}
	return s, nil
}

// read builds the secret for kind from the flags, standard input or a
// prompt.
func (s *secretFlags) read(cmd *cobra.Command, kind string) (*apiclient.CredentialSecret, error) {
	p := newPrompter(cmd)
	var out apiclient.CredentialSecret
	// primary reads the kind's one secret field from its file, stdin or
	// a prompt.
	primary := func(flag, path, prompt string, firstLine bool) (string, error) {
		switch {
		case path != "" && s.stdin:
			return "", usageError{fmt.Errorf("--%s and --stdin: give one", flag)}
		case path != "":
			return readSecretFile(flag, path, firstLine)
		case s.stdin:
			return readSecret(cmd.InOrStdin(), "standard input", firstLine)
		case p.interactive():
			v, err := p.secret(prompt)
			if err == nil && v == "" {
				err = usageError{errors.New("the secret is empty")}
			}
			return v, err
		}
		return "", usageError{fmt.Errorf("the secret is missing: give --%s, --stdin, or run on a terminal to be prompted", flag)}
	}
	// Refuse a source the kind does not use before reading anything.
	uses := map[string][]string{"password": {"password-file"}, "token": {"token-file"}, "secret": {"value-file"},
		"ssh_key": {"key-file", "passphrase-file"}, "certificate": {"cert-file", "key-file"}}
	allowed, known := uses[kind]
	if !known {
		return nil, usageError{fmt.Errorf("--kind must be password, ssh_key, token, certificate or secret, got %q", kind)}
	}
	for name, v := range map[string]string{"password-file": s.passwordFile, "token-file": s.tokenFile, "value-file": s.valueFile,
		"key-file": s.keyFile, "cert-file": s.certFile, "passphrase-file": s.passphraseFile} {
		if v != "" && !slices.Contains(allowed, name) {
			return nil, usageError{fmt.Errorf("--%s is not used by a %s credential", name, kind)}
		}
	}
	var err error
	switch kind {
	case "password":
		out.Password, err = primary("password-file", s.passwordFile, "Password: ", true)
	case "token":
		out.Token, err = primary("token-file", s.tokenFile, "Token: ", true)
	case "secret":
		out.Value, err = primary("value-file", s.valueFile, "Secret value: ", false)
	case "ssh_key":
		if s.keyFile == "" && !s.stdin {
			return nil, usageError{errors.New("an ssh_key needs --key-file (or --stdin) with the private key")}
		}
		if out.PrivateKey, err = primary("key-file", s.keyFile, "", false); err != nil {
			return nil, err
		}
		switch {
		case s.passphraseFile != "":
			out.Passphrase, err = readSecretFile("passphrase-file", s.passphraseFile, true)
		case keyNeedsPassphrase(out.PrivateKey) && p.interactive():
			out.Passphrase, err = p.secret("Passphrase of the private key: ")
		}
	case "certificate":
		if s.certFile == "" || s.keyFile == "" {
			return nil, usageError{errors.New("a certificate needs --cert-file and --key-file")}
		}
		if s.stdin {
			return nil, usageError{errors.New("--stdin: a certificate is read from --cert-file and --key-file")}
		}
		if out.Certificate, err = readSecretFile("cert-file", s.certFile, false); err == nil {
			out.Key, err = readSecretFile("key-file", s.keyFile, false)
		}
	}
	if err != nil {
		return nil, err
	}
	return &out, nil
}

func newCredentialCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "credential", Aliases: []string{"cred"},
		Short: "Store credentials for automation: write-only secrets, shown as metadata only (needs credentials:read, credentials:write to change)",
		Long: `Credentials are passwords, SSH keys, tokens, certificates and opaque secrets that
steps use. The controller encrypts each one at once and never returns its value:
create, replace, list, show and delete work on metadata. Secrets come from a
file, standard input (--stdin) or a prompt without echo, never from a flag.`}
	f := addAPIFlags(cmd)

	var (
		in      apiclient.CredentialInput
		tags    []string
		secrets secretFlags
	)
	create := &cobra.Command{
		Use:   "create NAME --kind KIND",
		Short: "Store a new credential",
		Example: `  opsconductor credential create db-prod --kind password --username app --tag env=prod
  opsconductor credential create deploy --kind ssh_key --username deploy --key-file ~/.ssh/deploy_ed25519
  vault read -field=token secret/api | opsconductor credential create api --kind token --stdin`,
		Args: exactArgs(1, "NAME"),
		RunE: f.run(func(cmd *cobra.Command, args []string, c *apiclient.Client) error {
			t, err := parseTags(tags)
			if err != nil {
				return err
			}
			in.Name, in.Tags = args[0], t
			if in.Kind == "" {
				return usageError{errors.New("--kind is required: password, ssh_key, token, certificate or secret")}
			}
			if in.Secret, err = secrets.read(cmd, in.Kind); err != nil {
				return err
			}
			cr, err := c.CreateCredential(cmd.Context(), in)
			if err != nil {
				return err
			}
			return printCredential(cmd, f.json, cr, "Stored")
		}),
	}
	create.Flags().StringVar(&in.Kind, "kind", "", "password, ssh_key, token, certificate or secret (required)")
	create.Flags().StringVar(&in.Username, "username", "", "the login name (required for a password)")
	create.Flags().StringVar(&in.Description, "description", "", "what it is for")
	create.Flags().StringArrayVar(&tags, "tag", nil, "a tag KEY=VALUE for scoping (repeatable)")
	secrets.add(create)

	var (
		rep       apiclient.CredentialInput
		repTags   []string
		repSecret secretFlags
		newSecret bool
		clearTags bool
	)
	replace := &cobra.Command{
		Use:   "replace NAME",
		Short: "Change a credential's metadata, and its secret when a secret source or --new-secret is given",
		Args:  exactArgs(1, "NAME"),
		RunE: f.run(func(cmd *cobra.Command, args []string, c *apiclient.Client) error {
			cur, err := c.GetCredential(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			// Start from what is stored, so that only the flags given change.
			in := apiclient.CredentialInput{Name: cur.Name, Kind: cur.Kind, Username: cur.Username, Description: cur.Description, Tags: cur.Tags}
			fl := cmd.Flags()
			if fl.Changed("rename") {
				in.Name = rep.Name
			}
			if fl.Changed("kind") {
				in.Kind = rep.Kind
			}
			if fl.Changed("username") {
				in.Username = rep.Username
			}
			if fl.Changed("description") {
				in.Description = rep.Description
			}
			if clearTags {
				in.Tags = nil
			}
			if len(repTags) > 0 {
				t, err := parseTags(repTags)
				if err != nil {
					return err
				}
				if in.Tags == nil {
					in.Tags = map[string]string{}
				}
				for k, v := range t {
					in.Tags[k] = v
				}
			}
			if repSecret.given() || newSecret {
				if in.Secret, err = repSecret.read(cmd, in.Kind); err != nil {
					return err
				}
			}
			cr, err := c.ReplaceCredential(cmd.Context(), args[0], in)
			if err != nil {
				return err
			}
			return printCredential(cmd, f.json, cr, "Replaced")
		}),
	}
	replace.Flags().StringVar(&rep.Name, "rename", "", "a new name")
	replace.Flags().StringVar(&rep.Kind, "kind", "", "a new kind (needs a new secret)")
	replace.Flags().StringVar(&rep.Username, "username", "", "a new login name")
	replace.Flags().StringVar(&rep.Description, "description", "", "a new description")
	replace.Flags().StringArrayVar(&repTags, "tag", nil, "add or change a tag KEY=VALUE (repeatable)")
	replace.Flags().BoolVar(&clearTags, "clear-tags", false, "drop every tag first")
	replace.Flags().BoolVar(&newSecret, "new-secret", false, "replace the secret, prompting for it when no file or --stdin is given")
	repSecret.add(replace)

	var filter apiclient.CredentialFilter
	list := &cobra.Command{
		Use: "list", Short: "List credentials (metadata only)", Args: exactArgs(0, ""),
		RunE: f.run(func(cmd *cobra.Command, _ []string, c *apiclient.Client) error {
			items, err := c.ListCredentials(cmd.Context(), filter)
			if err != nil {
				return err
			}
			if f.json {
				return printJSON(cmd.OutOrStdout(), nonNilSlice(items))
			}
			rows := make([][]string, 0, len(items))
			for _, cr := range items {
				rows = append(rows, []string{cr.Name, cr.Kind, dash(cr.Username), dash(cr.Fingerprint), dash(formatAttrs(cr.Tags)), when(&cr.UpdatedAt), lastUsed(cr)})
			}
			return table(cmd.OutOrStdout(), "NAME\tKIND\tUSERNAME\tFINGERPRINT\tTAGS\tUPDATED\tLAST USED", rows)
		}),
	}
	list.Flags().StringVar(&filter.Kind, "kind", "", "only this kind")
	list.Flags().StringArrayVar(&filter.Tags, "tag", nil, "only credentials with this tag KEY=VALUE (repeatable)")

	show := &cobra.Command{
		Use: "show NAME", Short: "Show a credential's metadata and where it is a default", Args: exactArgs(1, "NAME"),
		RunE: f.run(func(cmd *cobra.Command, args []string, c *apiclient.Client) error {
			cr, err := c.GetCredential(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			return printCredential(cmd, f.json, cr, "")
		}),
	}

	del := &cobra.Command{
		Use: "delete NAME", Short: "Delete a credential and its attachments", Args: exactArgs(1, "NAME"),
		RunE: f.run(func(cmd *cobra.Command, args []string, c *apiclient.Client) error {
			if err := c.DeleteCredential(cmd.Context(), args[0]); err != nil {
				return err
			}
			_, err := fmt.Fprintf(cmd.OutOrStdout(), "Deleted %s\n", args[0])
			return err
		}),
	}

	var role string
	attach := &cobra.Command{
		Use: "attach NAME targets|groups OBJECT", Short: "Make a credential the default for a target or group (e.g. the SSH login of group web)",
		Args: exactArgs(3, "NAME, targets or groups, and the target or group"),
		RunE: f.run(func(cmd *cobra.Command, args []string, c *apiclient.Client) error {
			a, err := c.AttachCredential(cmd.Context(), args[0], args[1], args[2], role)
			if err != nil {
				return err
			}
			if f.json {
				return printJSON(cmd.OutOrStdout(), a)
			}
			_, err = fmt.Fprintf(cmd.OutOrStdout(), "%s is the %s credential of %s %s\n", a.Credential, a.Role, a.Scope, a.Name)
			return err
		}),
	}
	attach.Flags().StringVar(&role, "role", "default", "what it is the default for: ssh, default, …")
	detach := &cobra.Command{
		Use: "detach NAME targets|groups OBJECT", Short: "Remove a default", Args: exactArgs(3, "NAME, targets or groups, and the target or group"),
		RunE: f.run(func(cmd *cobra.Command, args []string, c *apiclient.Client) error {
			if err := c.DetachCredential(cmd.Context(), args[0], args[1], args[2], role); err != nil {
				return err
			}
			_, err := fmt.Fprintf(cmd.OutOrStdout(), "Detached %s from %s %s (%s)\n", args[0], strings.TrimSuffix(args[1], "s"), args[2], role)
			return err
		}),
	}
	detach.Flags().StringVar(&role, "role", "default", "the role it was attached in")

	cmd.AddCommand(create, replace, list, show, del, attach, detach)
	return cmd
}

// keyNeedsPassphrase reports whether a private key is encrypted; anything
// else wrong with it is the controller's to report.
func keyNeedsPassphrase(key string) bool {
	_, err := ssh.ParseRawPrivateKey([]byte(key))
	var missing *ssh.PassphraseMissingError
	return errors.As(err, &missing)
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func lastUsed(cr apiclient.Credential) string {
	if cr.LastUsedAt.IsZero() {
		return "never"
	}
	return when(&cr.LastUsedAt)
}

// printCredential prints a credential's metadata; verb ("Stored") heads it.
func printCredential(cmd *cobra.Command, asJSON bool, cr apiclient.Credential, verb string) error {
	if asJSON {
		return printJSON(cmd.OutOrStdout(), cr)
	}
	w := cmd.OutOrStdout()
	if verb != "" {
		fmt.Fprintf(w, "%s %s (%s)\n", verb, cr.Name, cr.ID)
	}
	rows := [][]string{{"name", cr.Name}, {"id", cr.ID}, {"kind", cr.Kind}, {"username", dash(cr.Username)}, {"description", dash(cr.Description)},
		{"tags", dash(formatAttrs(cr.Tags))}}
	if cr.Fingerprint != "" {
		rows = append(rows, []string{"fingerprint", cr.Fingerprint})
	}
	if cr.PublicKey != "" {
		rows = append(rows, []string{"public key", cr.PublicKey})
	}
	if cr.Subject != "" {
		rows = append(rows, []string{"subject", cr.Subject}, []string{"not after", when(&cr.NotAfter)})
	}
	rows = append(rows, []string{"created", when(&cr.CreatedAt) + " by " + cr.CreatedBy}, []string{"updated", when(&cr.UpdatedAt) + " by " + cr.UpdatedBy},
		[]string{"last used", lastUsed(cr)})
	for _, a := range cr.Attachments {
		rows = append(rows, []string{"default for", fmt.Sprintf("%s %s (%s)", a.Scope, a.Name, a.Role)})
	}
	return table(w, "FIELD\tVALUE", rows)
}
