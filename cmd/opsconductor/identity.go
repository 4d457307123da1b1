package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/opsconductor/opsconductor/controller/apiclient"
)

// parseBindings reads --role values: a role name, or a JSON binding such
// as {"role":"operator","scope":{"tags":{"env":"prod"}}}.
func parseBindings(values []string) ([]apiclient.RoleBinding, error) {
	out := make([]apiclient.RoleBinding, 0, len(values))
	for _, v := range values {
		v = strings.TrimSpace(v)
		if strings.HasPrefix(v, "{") {
			var b apiclient.RoleBinding
			if err := json.Unmarshal([]byte(v), &b); err != nil || b.Role == "" {
				return nil, usageError{fmt.Errorf(`--role %s: want a role name or {"role": NAME, "scope": {"tags": {…}, "groups": […]}}`, v)}
			}
			out = append(out, b)
			continue
		}
		if v == "" {
			return nil, usageError{errors.New("--role: empty role name")}
		}
		out = append(out, apiclient.RoleBinding{Role: v})
	}
	return out, nil
}

func when(t *time.Time) string {
	if t == nil || t.IsZero() {
		return "-"
	}
	return t.Local().Format(time.DateTime)
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}

// --- user -------------------------------------------------------------------

func newUserCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "user", Short: "Manage user accounts (needs users:read or users:admin)"}
	f := addAPIFlags(cmd)

	var filter apiclient.UserFilter
	var disabled string
	list := &cobra.Command{
		Use: "list", Short: "List users", Args: cobra.NoArgs,
		RunE: f.run(func(cmd *cobra.Command, _ []string, c *apiclient.Client) error {
			switch disabled {
			case "":
			case "true", "false":
				d := disabled == "true"
				filter.Disabled = &d
			default:
				return usageError{fmt.Errorf("--disabled %q: use true or false", disabled)}
			}
			users, err := c.AllUsers(cmd.Context(), filter)
			if err != nil {
				return err
			}
			if f.json {
				return printJSON(cmd.OutOrStdout(), nonNilSlice(users))
			}
			rows := make([][]string, 0, len(users))
			for _, u := range users {
				status := "active"
				switch {
				case u.Disabled:
					status = "disabled"
				case u.LockedUntil != nil:
					status = "locked"
				case u.MustChangePassword:
					status = "must change password"
				}
				rows = append(rows, []string{u.Username, u.ID, orDash(u.DisplayName), bindings(u.Roles), status, yesNo(u.TOTPEnabled), when(u.LastLoginAt)})
			}
			return table(cmd.OutOrStdout(), "USERNAME\tID\tNAME\tROLES\tSTATUS\tTOTP\tLAST LOGIN", rows)
		}),
	}
	list.Flags().StringVar(&filter.Query, "query", "", "only users whose username, name or email contains this")
	list.Flags().StringVar(&filter.Role, "role", "", "only users bound to this role")
	list.Flags().StringVar(&disabled, "disabled", "", "only disabled (true) or enabled (false) users")
	list.Flags().IntVar(&filter.Limit, "page-size", 0, "users per request (default: the server's)")

	get := &cobra.Command{
		Use: "get USER", Short: "Show a user (by username or ID)", Args: exactArgs(1, "the username or ID"),
		RunE: f.run(func(cmd *cobra.Command, args []string, c *apiclient.Client) error {
			u, err := c.GetUser(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			return printUser(cmd, f, u)
		}),
	}

	var create apiclient.CreateUserRequest
	var createRoles []string
	var createPasswordStdin, mustChange bool
	createCmd := &cobra.Command{
		Use: "create USERNAME", Short: "Create a user", Args: exactArgs(1, "the new username"),
		Long: `Create a user. Without --password-stdin the server generates a password,
printed once here, which the user must change at first login.`,
		RunE: f.run(func(cmd *cobra.Command, args []string, c *apiclient.Client) error {
			req := create
			req.Username = args[0]
			roles, err := parseBindings(createRoles)
			if err != nil {
				return err
			}
			req.Roles = roles
			if createPasswordStdin {
				if req.Password, err = newPrompter(cmd).line(); err != nil {
					return usageError{fmt.Errorf("--password-stdin: read the password: %w", err)}
				}
			}
			if cmd.Flags().Changed("must-change-password") {
				req.MustChangePassword = &mustChange
			}
			u, err := c.CreateUser(cmd.Context(), req)
			if err != nil {
				return err
			}
			if f.json {
				return printJSON(cmd.OutOrStdout(), u)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "Created user %s (%s) with roles %s\n", u.Username, u.ID, bindings(u.Roles))
			if u.InitialPassword != "" {
				fmt.Fprintf(cmd.OutOrStdout(), "Initial password: %s\n", u.InitialPassword)
				fmt.Fprintln(cmd.ErrOrStderr(), "It is shown only now; the user must change it at first login.")
			}
			return nil
		}),
	}
	createCmd.Flags().StringVar(&create.DisplayName, "display-name", "", "the user's full name")
	createCmd.Flags().StringVar(&create.Email, "email", "", "the user's email address")
	createCmd.Flags().StringArrayVar(&createRoles, "role", nil, `role to grant (repeat): a name such as viewer, or JSON {"role":…,"scope":{"tags":{…},"groups":[…]}}`)
	createCmd.Flags().BoolVar(&createPasswordStdin, "password-stdin", false, "read the password from the first line of standard input (default: generated)")
	createCmd.Flags().BoolVar(&mustChange, "must-change-password", true, "make the user change the password at first login")

	var displayName, email string
	var updateRoles []string
	var disable, enable bool
	update := &cobra.Command{
		Use: "update USER", Short: "Change a user's name, email, roles or disabled state", Args: exactArgs(1, "the username or ID"),
		RunE: f.run(func(cmd *cobra.Command, args []string, c *apiclient.Client) error {
			var req apiclient.UpdateUserRequest
			fl := cmd.Flags()
			if fl.Changed("display-name") {
				req.DisplayName = &displayName
			}
			if fl.Changed("email") {
				req.Email = &email
			}
			if fl.Changed("role") {
				roles, err := parseBindings(updateRoles)
				if err != nil {
					return err
				}
				req.Roles = &roles
			}
			if disable && enable {
				return usageError{errors.New("--disable and --enable contradict each other")}
			}
			if disable || enable {
				req.Disabled = &disable
			}
			if req == (apiclient.UpdateUserRequest{}) {
				return usageError{errors.New("nothing to change: give --display-name, --email, --role, --disable or --enable")}
			}
			u, err := c.UpdateUser(cmd.Context(), args[0], req)
			if err != nil {
				return err
			}
			return printUser(cmd, f, u)
		}),
	}
	update.Flags().StringVar(&displayName, "display-name", "", "new full name")
	update.Flags().StringVar(&email, "email", "", "new email address")
	update.Flags().StringArrayVar(&updateRoles, "role", nil, "replace the roles with these (repeat; see 'user create --help')")
	update.Flags().BoolVar(&disable, "disable", false, "disable the account (its sessions end)")
	update.Flags().BoolVar(&enable, "enable", false, "enable a disabled account")

	del := &cobra.Command{
		Use: "delete USER", Short: "Delete a user and end their sessions", Args: exactArgs(1, "the username or ID"),
		RunE: f.run(func(cmd *cobra.Command, args []string, c *apiclient.Client) error {
			if err := c.DeleteUser(cmd.Context(), args[0]); err != nil {
				return err
			}
			if !f.json {
				fmt.Fprintf(cmd.OutOrStdout(), "Deleted user %s\n", args[0])
			}
			return nil
		}),
	}

	var resetPasswordStdin bool
	resetPassword := &cobra.Command{
		Use: "reset-password USER", Short: "Set a new password that the user must change at next login", Args: exactArgs(1, "the username or ID"),
		Long: `Reset a user's password. Without --password-stdin the server generates one,
printed once here. Either way the user must change it at next login.`,
		RunE: f.run(func(cmd *cobra.Command, args []string, c *apiclient.Client) error {
			pw := ""
			if resetPasswordStdin {
				var err error
				if pw, err = newPrompter(cmd).line(); err != nil {
					return usageError{fmt.Errorf("--password-stdin: read the password: %w", err)}
				}
			}
			generated, err := c.ResetUserPassword(cmd.Context(), args[0], pw)
			if err != nil {
				return err
			}
			if f.json {
				return printJSON(cmd.OutOrStdout(), map[string]string{"password": generated})
			}
			fmt.Fprintf(cmd.OutOrStdout(), "Reset the password of %s; they must change it at next login\n", args[0])
			if generated != "" {
				fmt.Fprintf(cmd.OutOrStdout(), "New password: %s\n", generated)
			}
			return nil
		}),
	}
	resetPassword.Flags().BoolVar(&resetPasswordStdin, "password-stdin", false, "read the new password from the first line of standard input (default: generated)")

	unlock := &cobra.Command{
		Use: "unlock USER", Short: "End a user's lockout after failed logins", Args: exactArgs(1, "the username or ID"),
		RunE: f.run(func(cmd *cobra.Command, args []string, c *apiclient.Client) error {
			u, err := c.UnlockUser(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			if f.json {
				return printJSON(cmd.OutOrStdout(), u)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "Unlocked %s\n", u.Username)
			return nil
		}),
	}
	resetTOTP := &cobra.Command{
		Use: "reset-totp USER", Short: "Remove a user's second factor (they can enrol again)", Args: exactArgs(1, "the username or ID"),
		RunE: f.run(func(cmd *cobra.Command, args []string, c *apiclient.Client) error {
			u, err := c.ResetUserTOTP(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			if f.json {
				return printJSON(cmd.OutOrStdout(), u)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "Removed the second factor of %s\n", u.Username)
			return nil
		}),
	}
	cmd.AddCommand(list, get, createCmd, update, del, resetPassword, unlock, resetTOTP)
	return cmd
}

func printUser(cmd *cobra.Command, f *apiFlags, u apiclient.User) error {
	if f.json {
		return printJSON(cmd.OutOrStdout(), u)
	}
	rows := [][]string{
		{"Username:", u.Username},
		{"ID:", u.ID},
		{"Display name:", orDash(u.DisplayName)},
		{"Email:", orDash(u.Email)},
		{"Roles:", bindings(u.Roles)},
		{"Disabled:", yesNo(u.Disabled)},
		{"Locked until:", when(u.LockedUntil)},
		{"Must change password:", yesNo(u.MustChangePassword)},
		{"TOTP:", yesNo(u.TOTPEnabled)},
		{"Last login:", when(u.LastLoginAt)},
		{"Created:", when(&u.CreatedAt)},
	}
	for _, r := range rows {
		fmt.Fprintf(cmd.OutOrStdout(), "%-22s %s\n", r[0], r[1])
	}
	return nil
}

// --- role -------------------------------------------------------------------

func newRoleCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "role", Short: "Manage roles: named sets of permissions"}
	f := addAPIFlags(cmd)
	list := &cobra.Command{
		Use: "list", Short: "List the built-in and custom roles", Args: cobra.NoArgs,
		RunE: f.run(func(cmd *cobra.Command, _ []string, c *apiclient.Client) error {
			roles, err := c.ListRoles(cmd.Context())
			if err != nil {
				return err
			}
			if f.json {
				return printJSON(cmd.OutOrStdout(), nonNilSlice(roles))
			}
			rows := make([][]string, 0, len(roles))
			for _, r := range roles {
				kind := "custom"
				if r.Builtin {
					kind = "built-in"
				}
				perms := strings.Join(r.Permissions, ",")
				if len(r.Permissions) > 4 {
					perms = fmt.Sprintf("%d permissions", len(r.Permissions))
				}
				rows = append(rows, []string{r.Name, kind, perms, orDash(r.Description)})
			}
			return table(cmd.OutOrStdout(), "NAME\tKIND\tPERMISSIONS\tDESCRIPTION", rows)
		}),
	}
	get := &cobra.Command{
		Use: "get NAME", Short: "Show a role", Args: exactArgs(1, "the role name"),
		RunE: f.run(func(cmd *cobra.Command, args []string, c *apiclient.Client) error {
			r, err := c.GetRole(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			return printRole(cmd, f, r)
		}),
	}
	var description string
	var perms []string
	put := func(create bool) func(cmd *cobra.Command, args []string, c *apiclient.Client) error {
		return func(cmd *cobra.Command, args []string, c *apiclient.Client) error {
			if len(perms) == 0 {
				return usageError{errors.New("--permission is required: list what the role grants, e.g. --permission jobs:read (see 'opsconductor role permissions')")}
			}
			r := apiclient.Role{Name: args[0], Description: description, Permissions: perms}
			var err error
			if create {
				r, err = c.CreateRole(cmd.Context(), r)
			} else {
				r, err = c.UpdateRole(cmd.Context(), r)
			}
			if err != nil {
				return err
			}
			return printRole(cmd, f, r)
		}
	}
	createCmd := &cobra.Command{Use: "create NAME", Short: "Create a custom role", Args: exactArgs(1, "the role name"), RunE: f.run(put(true))}
	update := &cobra.Command{Use: "update NAME", Short: "Replace a custom role's permissions and description", Args: exactArgs(1, "the role name"), RunE: f.run(put(false))}
	for _, c := range []*cobra.Command{createCmd, update} {
		c.Flags().StringVar(&description, "description", "", "what the role is for")
		c.Flags().StringSliceVar(&perms, "permission", nil, "permission the role grants, as resource:verb (repeat or comma-separate)")
	}
	del := &cobra.Command{
		Use: "delete NAME", Short: "Delete a custom role", Args: exactArgs(1, "the role name"),
		RunE: f.run(func(cmd *cobra.Command, args []string, c *apiclient.Client) error {
			if err := c.DeleteRole(cmd.Context(), args[0]); err != nil {
				return err
			}
			if !f.json {
				fmt.Fprintf(cmd.OutOrStdout(), "Deleted role %s\n", args[0])
			}
			return nil
		}),
	}
	permissions := &cobra.Command{
		Use: "permissions", Short: "List every permission a role can grant", Args: cobra.NoArgs,
		RunE: f.run(func(cmd *cobra.Command, _ []string, c *apiclient.Client) error {
			ps, err := c.Permissions(cmd.Context())
			if err != nil {
				return err
			}
			if f.json {
				return printJSON(cmd.OutOrStdout(), nonNilSlice(ps))
			}
			for _, p := range ps {
				fmt.Fprintln(cmd.OutOrStdout(), p)
			}
			return nil
		}),
	}
	cmd.AddCommand(list, get, createCmd, update, del, permissions)
	return cmd
}

func printRole(cmd *cobra.Command, f *apiFlags, r apiclient.Role) error {
	if f.json {
		return printJSON(cmd.OutOrStdout(), r)
	}
	w := cmd.OutOrStdout()
	fmt.Fprintf(w, "Name:         %s\n", r.Name)
	fmt.Fprintf(w, "Built-in:     %s\n", yesNo(r.Builtin))
	fmt.Fprintf(w, "Description:  %s\n", orDash(r.Description))
	fmt.Fprintf(w, "Permissions:  %s\n", strings.Join(r.Permissions, ", "))
	return nil
}

// --- token ------------------------------------------------------------------

func newTokenCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "token", Short: "Manage API tokens for scripts and CI"}
	f := addAPIFlags(cmd)
	var all bool
	list := &cobra.Command{
		Use: "list", Short: "List your API tokens (metadata only; secrets are never shown again)", Args: cobra.NoArgs,
		RunE: f.run(func(cmd *cobra.Command, _ []string, c *apiclient.Client) error {
			toks, err := c.ListTokens(cmd.Context(), all)
			if err != nil {
				return err
			}
			if f.json {
				return printJSON(cmd.OutOrStdout(), nonNilSlice(toks))
			}
			rows := make([][]string, 0, len(toks))
			for _, t := range toks {
				state := "active"
				switch {
				case t.Revoked:
					state = "revoked"
				case t.Expired:
					state = "expired"
				}
				rows = append(rows, []string{t.ID, t.Name, t.OwnerID, bindings(t.Roles), when(&t.CreatedAt), when(t.ExpiresAt), state})
			}
			return table(cmd.OutOrStdout(), "ID\tNAME\tOWNER\tROLES\tCREATED\tEXPIRES\tSTATE", rows)
		}),
	}
	list.Flags().BoolVar(&all, "all", false, "every user's tokens (needs users:admin)")

	var req apiclient.CreateTokenRequest
	var roles []string
	create := &cobra.Command{
		Use: "create", Short: "Create an API token; its secret is printed once", Args: cobra.NoArgs,
		RunE: f.run(func(cmd *cobra.Command, _ []string, c *apiclient.Client) error {
			if strings.TrimSpace(req.Name) == "" {
				return usageError{errors.New("--name is required: say what the token is for")}
			}
			if len(roles) == 0 {
				return usageError{errors.New("--role is required: the token's roles (at most your own), e.g. --role viewer")}
			}
			r := req
			var err error
			if r.Roles, err = parseBindings(roles); err != nil {
				return err
			}
			t, err := c.CreateToken(cmd.Context(), r)
			if err != nil {
				return err
			}
			if f.json {
				return printJSON(cmd.OutOrStdout(), t)
			}
			fmt.Fprintln(cmd.OutOrStdout(), t.Token)
			fmt.Fprintf(cmd.ErrOrStderr(), "Created API token %s (%s) with roles %s, expires %s.\n"+
				"The secret above is shown only now: store it somewhere safe. Use it with --token or %s.\n",
				t.ID, t.Name, bindings(t.Roles), when(t.ExpiresAt), envToken)
			return nil
		}),
	}
	create.Flags().StringVar(&req.Name, "name", "", "what the token is for (required)")
	create.Flags().StringVar(&req.Description, "description", "", "a longer note")
	create.Flags().StringArrayVar(&roles, "role", nil, "role the token carries (repeat; at most your own; see 'user create --help' for scopes)")
	create.Flags().StringVar(&req.ExpiresIn, "expires-in", "", `lifetime such as "720h" (default: never expires)`)

	revoke := &cobra.Command{
		Use: "revoke ID", Short: "Revoke an API token", Args: exactArgs(1, "the token ID (tok_…)"),
		RunE: f.run(func(cmd *cobra.Command, args []string, c *apiclient.Client) error {
			t, err := c.RevokeToken(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			if f.json {
				return printJSON(cmd.OutOrStdout(), t)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "Revoked API token %s (%s)\n", t.ID, t.Name)
			return nil
		}),
	}
	cmd.AddCommand(list, create, revoke)
	return cmd
}

// --- session ----------------------------------------------------------------

func newSessionCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "session", Short: "List and end login sessions"}
	f := addAPIFlags(cmd)
	var all bool
	var user string
	list := &cobra.Command{
		Use: "list", Short: "List your sessions (or another user's with --user)", Args: cobra.NoArgs,
		RunE: f.run(func(cmd *cobra.Command, _ []string, c *apiclient.Client) error {
			ss, err := c.ListSessions(cmd.Context(), user, all)
			if err != nil {
				return err
			}
			if f.json {
				return printJSON(cmd.OutOrStdout(), nonNilSlice(ss))
			}
			rows := make([][]string, 0, len(ss))
			for _, s := range ss {
				id := s.ID
				if s.Current {
					id += " *"
				}
				state := "active"
				if !s.Active {
					state = orDash(s.RevokedReason)
					if s.RevokedAt == nil {
						state = "expired"
					}
				}
				rows = append(rows, []string{id, s.Username, orDash(s.SourceIP), when(&s.CreatedAt), when(&s.LastUsedAt), when(&s.ExpiresAt), state})
			}
			return table(cmd.OutOrStdout(), "ID\tUSER\tFROM\tCREATED\tLAST USED\tEXPIRES\tSTATE", rows)
		}),
	}
	list.Flags().BoolVar(&all, "all", false, "include ended sessions")
	list.Flags().StringVar(&user, "user", "", "list this user's sessions (needs users:admin)")

	var revokeUser string
	revoke := &cobra.Command{
		Use: "revoke [ID…]", Short: "End sessions by ID, or every session of --user", Args: cobra.ArbitraryArgs,
		RunE: f.run(func(cmd *cobra.Command, args []string, c *apiclient.Client) error {
			switch {
			case revokeUser != "" && len(args) > 0:
				return usageError{errors.New("give session IDs or --user, not both")}
			case revokeUser != "":
				ids, err := c.RevokeUserSessions(cmd.Context(), revokeUser)
				if err != nil {
					return err
				}
				return printRevoked(cmd, f, ids)
			case len(args) == 0:
				return usageError{errors.New("session revoke needs session IDs (see 'opsconductor session list') or --user")}
			}
			for _, id := range args {
				if err := c.RevokeSession(cmd.Context(), id); err != nil {
					return fmt.Errorf("revoke %s: %w", id, err)
				}
			}
			return printRevoked(cmd, f, args)
		}),
	}
	revoke.Flags().StringVar(&revokeUser, "user", "", "end every session of this user (needs users:admin)")
	others := &cobra.Command{
		Use: "revoke-others", Short: "End all your sessions except this one", Args: cobra.NoArgs,
		RunE: f.run(func(cmd *cobra.Command, _ []string, c *apiclient.Client) error {
			ids, err := c.RevokeOtherSessions(cmd.Context())
			if err != nil {
				return err
			}
			return printRevoked(cmd, f, ids)
		}),
	}
	cmd.AddCommand(list, revoke, others)
	return cmd
}

func printRevoked(cmd *cobra.Command, f *apiFlags, ids []string) error {
	if f.json {
		return printJSON(cmd.OutOrStdout(), map[string][]string{"revoked": nonNilSlice(ids)})
	}
	if len(ids) == 0 {
		fmt.Fprintln(cmd.OutOrStdout(), "No sessions to end")
		return nil
	}
	fmt.Fprintf(cmd.OutOrStdout(), "Ended %d session(s): %s\n", len(ids), strings.Join(ids, ", "))
	return nil
}

// nonNilSlice makes an empty list print as [] rather than null.
func nonNilSlice[T any](s []T) []T {
	if s == nil {
		return []T{}
	}
	return s
}
