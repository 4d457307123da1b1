package main

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"
	"golang.org/x/term"

	"github.com/opsconductor/opsconductor/controller/apiclient"
	"github.com/opsconductor/opsconductor/controller/config"
)

// envToken holds an API token or access JWT for the API commands, as
// --token does.
const envToken = "OPSCONDUCTOR_TOKEN"

// apiFlags are the flags every command that calls the REST API shares:
// where the controller is and how to authenticate.
type apiFlags struct {
	flags   *cobra.Command
	address string
	token   string
	json    bool
}

// addAPIFlags adds --address, --token and --json to cmd and its
// subcommands.
func addAPIFlags(cmd *cobra.Command) *apiFlags {
	f := &apiFlags{flags: cmd}
	pf := cmd.PersistentFlags()
	pf.StringVar(&f.address, "address", apiclient.DefaultAddress, "controller API address (env "+config.EnvName("addr")+")")
	pf.StringVar(&f.token, "token", "", "API token (oct_…) or access token to authenticate with instead of the stored login (env "+envToken+")")
	pf.BoolVar(&f.json, "json", false, "print JSON instead of text, for scripts")
	return f
}

// resolvedAddress is --address, else OPSCONDUCTOR_ADDR, else the default.
func (f *apiFlags) resolvedAddress() string {
	if !f.flags.PersistentFlags().Changed("address") {
		if v, ok := os.LookupEnv(config.EnvName("addr")); ok && v != "" {
			return v
		}
	}
	return f.address
}

func (f *apiFlags) resolvedToken() string {
	if f.flags.PersistentFlags().Changed("token") {
		return f.token
	}
	return os.Getenv(envToken)
}

// client returns a client for the address, authenticated with --token or
// OPSCONDUCTOR_TOKEN when given, else with the stored login.
func (f *apiFlags) client() (*apiclient.Client, error) {
	addr := f.resolvedAddress()
	if tok := f.resolvedToken(); tok != "" {
		c, err := apiclient.New(addr, apiclient.WithToken(tok))
		if err != nil {
			return nil, usageError{err}
		}
		return c, nil
	}
	store, err := apiclient.DefaultCredentialStore()
	if err != nil {
		return nil, err
	}
	c, err := apiclient.New(addr, apiclient.WithStoredCredentials(store))
	if err != nil {
		return nil, usageError{err}
	}
	return c, nil
}

// run wraps a command body with a client and turns authentication errors
// into advice.
func (f *apiFlags) run(fn func(cmd *cobra.Command, args []string, c *apiclient.Client) error) func(*cobra.Command, []string) error {
	return func(cmd *cobra.Command, args []string) error {
		c, err := f.client()
		if err != nil {
			return err
		}
		return f.explain(fn(cmd, args, c), c.Address())
	}
}

// explain adds what to do next to the errors a person can act on.
func (f *apiFlags) explain(err error, addr string) error {
	if err == nil {
		return nil
	}
	var lre *apiclient.LoginRequiredError
	if errors.As(err, &lre) {
		return fmt.Errorf("%w\n  log in again: opsconductor login --address %s", err, addr)
	}
	var apiErr *apiclient.Error
	if !errors.As(err, &apiErr) {
		return err
	}
	switch {
	case apiErr.Status == http.StatusUnauthorized && f.resolvedToken() != "":
		src := "--token"
		if !f.flags.PersistentFlags().Changed("token") {
			src = envToken
		}
		return fmt.Errorf("%w\n  the token from %s was refused: check it, or unset it to use your stored login", err, src)
	case apiErr.Status == http.StatusUnauthorized:
		return fmt.Errorf("%w\n  not logged in to %s: run 'opsconductor login --address %s', or pass an API token with --token (env %s)", err, addr, addr, envToken)
	case apiErr.Code == "password_change_required":
		return fmt.Errorf("%w\n  change it with: opsconductor password --address %s", err, addr)
	}
	return err
}

// printJSON writes v as indented JSON.
func printJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// table writes a header and rows through a tabwriter.
func table(w io.Writer, header string, rows [][]string) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, header)
	for _, r := range rows {
		fmt.Fprintln(tw, strings.Join(r, "\t"))
	}
	return tw.Flush()
}

// --- reading secrets ---------------------------------------------------------

// prompter reads answers from the command's standard input: with echo off
// for secrets when it is a terminal, line by line otherwise.
type prompter struct {
	cmd *cobra.Command
	in  *bufio.Reader
}

func newPrompter(cmd *cobra.Command) *prompter {
	return &prompter{cmd: cmd, in: bufio.NewReader(cmd.InOrStdin())}
}

// interactive reports whether standard input is a terminal a person can
// answer prompts on.
func (p *prompter) interactive() bool {
	f, ok := p.cmd.InOrStdin().(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}

// line reads one line of standard input, without its line ending.
func (p *prompter) line() (string, error) {
	s, err := p.in.ReadString('\n')
	if err != nil && (err != io.EOF || s == "") {
		if err == io.EOF {
			return "", errors.New("standard input ended")
		}
		return "", err
	}
	return strings.TrimRight(s, "\r\n"), nil
}

// ask prompts on stderr and reads a visible answer.
func (p *prompter) ask(prompt string) (string, error) {
	fmt.Fprint(p.cmd.ErrOrStderr(), prompt)
	return p.line()
}

// secret prompts on stderr and reads an answer without echo.
func (p *prompter) secret(prompt string) (string, error) {
	fmt.Fprint(p.cmd.ErrOrStderr(), prompt)
	f := p.cmd.InOrStdin().(*os.File)
	b, err := term.ReadPassword(int(f.Fd()))
	fmt.Fprintln(p.cmd.ErrOrStderr())
	if err != nil {
		return "", fmt.Errorf("read password: %w", err)
	}
	return string(b), nil
}

// newPassword prompts twice for a new password until both agree.
func (p *prompter) newPassword() (string, error) {
	for range 3 {
		pw, err := p.secret("New password (at least 12 characters): ")
		if err != nil {
			return "", err
		}
		again, err := p.secret("Repeat the new password: ")
		if err != nil {
			return "", err
		}
		if pw == again && pw != "" {
			return pw, nil
		}
		fmt.Fprintln(p.cmd.ErrOrStderr(), "The passwords differ (or are empty); try again.")
	}
	return "", errors.New("the new password was not confirmed")
}
