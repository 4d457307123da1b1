package main

import (
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/opsconductor/opsconductor/controller/apiclient"
)

func newLoginCmd() *cobra.Command {
	var username, totp string
	var passwordStdin bool
	cmd := &cobra.Command{
		Use:   "login",
		Short: "Log in to a controller and keep the tokens for later commands",
		Long: `Log in with a username and password (and a TOTP code when the account has a
second factor). The access and refresh tokens are stored, readable by you only,
in the opsconductor directory of your configuration directory
(~/.config/opsconductor/credentials.json on Linux; OPSCONDUCTOR_CONFIG_DIR
overrides it), one login per controller address. Later commands use them and
refresh the access token when it expires.

Scripts pass the password on standard input:
  opsconductor login --username admin --password-stdin < password-file`,
		Args: cobra.NoArgs,
	}
	f := addAPIFlags(cmd)
	cmd.Flags().StringVar(&username, "username", "", "user to log in as (prompted for when standard input is a terminal)")
	cmd.Flags().BoolVar(&passwordStdin, "password-stdin", false, "read the password from the first line of standard input")
	cmd.Flags().StringVar(&totp, "totp", "", "the 6-digit code of your authenticator app, or a recovery code")
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		ctx := cmd.Context()
		c, err := apiclient.New(f.resolvedAddress())
		if err != nil {
			return usageError{err}
		}
		store, err := apiclient.DefaultCredentialStore()
		if err != nil {
			return err
		}
		p := newPrompter(cmd)
		interactive := !passwordStdin && p.interactive()
		if username == "" {
			if !interactive {
				return usageError{errors.New("--username is required when the password comes from --password-stdin or standard input is not a terminal")}
			}
			if username, err = p.ask("Username: "); err != nil {
				return err
			}
		}
		var password string
		switch {
		case passwordStdin:
			if password, err = p.line(); err != nil {
				return usageError{fmt.Errorf("--password-stdin: read the password: %w", err)}
			}
		case interactive:
			if password, err = p.secret("Password for " + username + ": "); err != nil {
				return err
			}
		default:
			return usageError{errors.New("--password-stdin is required when standard input is not a terminal")}
		}
		req := apiclient.LoginRequest{Username: username, Password: password, TOTP: totp}
		tokens, err := c.Login(ctx, req)
		if code(err) == "totp_required" && totp == "" && interactive {
			if req.TOTP, err = p.ask("TOTP code (or a recovery code): "); err != nil {
				return err
			}
			tokens, err = c.Login(ctx, req)
		}
		if err != nil {
			return loginError(err, c.Address(), username)
		}
		if err := store.Put(c.Address(), apiclient.CredentialsFrom(username, tokens, time.Now())); err != nil {
			return err
		}
		fmt.Fprintf(cmd.OutOrStdout(), "Logged in to %s as %s (session %s)\n", c.Address(), username, tokens.SessionID)
		if !tokens.MustChangePassword {
			return nil
		}
		fmt.Fprintln(cmd.ErrOrStderr(), "Your password must be changed before you can do anything else.")
		if !interactive {
			fmt.Fprintf(cmd.ErrOrStderr(), "Change it with: opsconductor password --address %s\n", c.Address())
			return nil
		}
		authed, err := apiclient.New(c.Address(), apiclient.WithStoredCredentials(store))
		if err != nil {
			return err
		}
		return f.explain(changePasswordInteractively(cmd, p, authed, password), c.Address())
	}
	return cmd
}

// changePasswordInteractively asks for a new password until the server
// accepts one (a few tries: the policy may refuse it).
func changePasswordInteractively(cmd *cobra.Command, p *prompter, c *apiclient.Client, current string) error {
	var err error
	for range 3 {
		var next string
		if next, err = p.newPassword(); err != nil {
			return err
		}
		if err = c.ChangePassword(cmd.Context(), current, next); err == nil {
			fmt.Fprintln(cmd.OutOrStdout(), "Password changed")
			return nil
		}
		var apiErr *apiclient.Error
		if !errors.As(err, &apiErr) || apiErr.Status != http.StatusBadRequest {
			return err
		}
		fmt.Fprintf(cmd.ErrOrStderr(), "Not accepted: %v\n", err)
	}
	return err
}

// code is the API error code of err, or "".
func code(err error) string {
	var apiErr *apiclient.Error
	if errors.As(err, &apiErr) {
		return apiErr.Code
	}
	return ""
}

// loginError says what a failed login means and what to do.
func loginError(err error, addr, username string) error {
	err = fmt.Errorf("log in to %s as %s: %w", addr, username, err)
	switch code(err) {
	case "totp_required":
		return fmt.Errorf("%w\n  this account has a second factor: pass --totp CODE (or a recovery code)", err)
	case "account_locked":
		return fmt.Errorf("%w\n  too many failed logins: wait, or ask an administrator to run 'opsconductor user unlock %s'", err, username)
	}
	return err
}

func newLogoutCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "logout",
		Short: "End the stored login's session and forget its tokens",
		Args:  cobra.NoArgs,
	}
	f := addAPIFlags(cmd)
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		c, err := apiclient.New(f.resolvedAddress())
		if err != nil {
			return usageError{err}
		}
		store, err := apiclient.DefaultCredentialStore()
		if err != nil {
			return err
		}
		creds, ok, err := store.Get(c.Address())
		if err != nil {
			return err
		}
		if !ok {
			fmt.Fprintf(cmd.OutOrStdout(), "Not logged in to %s\n", c.Address())
			return nil
		}
		// Ending the session with the refresh token needs no live access
		// token. A session the server has already ended is as good.
		lerr := c.LogoutRefreshToken(cmd.Context(), creds.RefreshToken)
		var apiErr *apiclient.Error
		if errors.As(lerr, &apiErr) && apiErr.Status == http.StatusUnauthorized {
			lerr = nil
		}
		if _, err := store.Delete(c.Address()); err != nil {
			return err
		}
		if lerr != nil {
			return fmt.Errorf("forgot the stored login for %s, but the server did not end the session %s (it lapses by itself): %w", c.Address(), creds.SessionID, lerr)
		}
		fmt.Fprintf(cmd.OutOrStdout(), "Logged out of %s\n", c.Address())
		return nil
	}
	return cmd
}

func newWhoamiCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "whoami", Short: "Show who you are authenticated as, your roles and permissions", Args: cobra.NoArgs}
	f := addAPIFlags(cmd)
	cmd.RunE = f.run(func(cmd *cobra.Command, _ []string, c *apiclient.Client) error {
		me, err := c.Me(cmd.Context())
		if err != nil {
			return err
		}
		if f.json {
			return printJSON(cmd.OutOrStdout(), me)
		}
		u := me.User
		rows := [][]string{
			{"Username:", u.Username + " (" + u.ID + ")"},
			{"Controller:", c.Address()},
		}
		if u.DisplayName != "" {
			rows = append(rows, []string{"Display name:", u.DisplayName})
		}
		if u.Email != "" {
			rows = append(rows, []string{"Email:", u.Email})
		}
		rows = append(rows, []string{"Roles:", bindings(u.Roles)})
		switch {
		case me.TokenID != "":
			rows = append(rows, []string{"Via:", "API token " + me.TokenID})
		case me.SessionID != "":
			rows = append(rows, []string{"Via:", "session " + me.SessionID})
		}
		if u.TOTPEnabled {
			rows = append(rows, []string{"Second factor:", "TOTP"})
		}
		if u.MustChangePassword {
			rows = append(rows, []string{"Password:", "must be changed (opsconductor password)"})
		}
		rows = append(rows, []string{"Permissions:", strings.Join(me.Permissions, ", ")})
		w := cmd.OutOrStdout()
		for _, r := range rows {
			fmt.Fprintf(w, "%-15s %s\n", r[0], r[1])
		}
		return nil
	})
	return cmd
}

func newPasswordCmd() *cobra.Command {
	var passwordStdin bool
	cmd := &cobra.Command{
		Use:   "password",
		Short: "Change your own password",
		Long: `Change your password. It asks for the current and the new password; with
--password-stdin it reads the current password from the first line of standard
input and the new one from the second. Your other sessions end; this one stays.`,
		Args: cobra.NoArgs,
	}
	f := addAPIFlags(cmd)
	cmd.Flags().BoolVar(&passwordStdin, "password-stdin", false, "read the current and the new password from the first two lines of standard input")
	cmd.RunE = f.run(func(cmd *cobra.Command, _ []string, c *apiclient.Client) error {
		p := newPrompter(cmd)
		if passwordStdin {
			current, err := p.line()
			if err != nil {
				return usageError{fmt.Errorf("--password-stdin: read the current password: %w", err)}
			}
			next, err := p.line()
			if err != nil {
				return usageError{fmt.Errorf("--password-stdin: read the new password (the second line): %w", err)}
			}
			if err := c.ChangePassword(cmd.Context(), current, next); err != nil {
				return err
			}
			fmt.Fprintln(cmd.OutOrStdout(), "Password changed")
			return nil
		}
		if !p.interactive() {
			return usageError{errors.New("--password-stdin is required when standard input is not a terminal")}
		}
		current, err := p.secret("Current password: ")
		if err != nil {
			return err
		}
		return changePasswordInteractively(cmd, p, c, current)
	})
	return cmd
}

// bindings formats role bindings for a table cell.
func bindings(bs []apiclient.RoleBinding) string {
	if len(bs) == 0 {
		return "-"
	}
	s := make([]string, len(bs))
	for i, b := range bs {
		s[i] = b.String()
	}
	return strings.Join(s, ", ")
}
