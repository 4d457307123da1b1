package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"net/http"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/opsconductor/opsconductor/controller/apiclient"
)

func newNotifyCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "notify",
		Short: "Send notifications: channels, templates, rules and their deliveries (needs notifications:read; notifications:write to change)",
		Long: `Rules match events (run.failed, agent.down, …) and send them through channels
(email, signed webhooks, chat) rendered by templates. Every notification is a
delivery, tried until it is delivered or dead; dead ones can be sent again.`}
	f := addAPIFlags(cmd)
	// --output json is --json, for those who know it from other tools.
	var output string
	cmd.PersistentFlags().StringVarP(&output, "output", "o", "text", "text (tables) or json; --json is --output json")
	cmd.PersistentPreRunE = func(cmd *cobra.Command, _ []string) error {
		switch output {
		case "text", "table":
		case "json":
			f.json = true
		default:
			return usageError{fmt.Errorf("--output %q: want text or json", output)}
		}
		return nil
	}
	cmd.AddCommand(newNotifyChannelCmd(f), newNotifyTemplateCmd(f), newNotifyRuleCmd(f), newNotifyDeliveryCmd(f),
		newNotifyTestCmd(f, "test CHANNEL", "Send a sample event through a channel and wait for the outcome (as 'channel test')"),
		newNotifyEventsCmd(f))
	return cmd
}

func newNotifyEventsCmd(f *apiFlags) *cobra.Command {
	return &cobra.Command{
		Use: "events", Short: "List the event types rules and templates can name", Args: exactArgs(0, ""),
		RunE: f.run(func(cmd *cobra.Command, _ []string, c *apiclient.Client) error {
			evs, err := c.NotifyEventTypes(cmd.Context())
			if err != nil {
				return err
			}
			if f.json {
				return printJSON(cmd.OutOrStdout(), nonNilSlice(evs))
			}
			rows := make([][]string, 0, len(evs))
			for _, e := range evs {
				var s struct {
					Severity string `json:"severity"`
					Summary  string `json:"summary"`
				}
				_ = json.Unmarshal(e.Sample, &s)
				rows = append(rows, []string{e.Type, orDash(s.Severity), orDash(s.Summary)})
			}
			return table(cmd.OutOrStdout(), "EVENT\tSEVERITY\tSAMPLE", rows)
		}),
	}
}

// --- reading JSON bodies from files -------------------------------------------

// readBodyFile decodes the JSON object in path ("-": standard input) into
// into, after dropping the fields the controller writes (so that what
// `show --json` printed can be edited and sent back). A field into does
// not know is refused, naming the file.
func readBodyFile(cmd *cobra.Command, path string, into any, readOnly ...string) error {
	var (
		raw []byte
		err error
	)
	if path == "-" {
		raw, err = io.ReadAll(io.LimitReader(cmd.InOrStdin(), 4<<20))
	} else {
		raw, err = os.ReadFile(path)
	}
	if err != nil {
		return usageError{fmt.Errorf("--from-file: %w", err)}
	}
	var m map[string]json.RawMessage
	if err := json.Unmarshal(raw, &m); err != nil {
		return usageError{fmt.Errorf("--from-file %s: not a JSON object: %w", path, err)}
	}
	for _, k := range readOnly {
		delete(m, k)
	}
	clean, _ := json.Marshal(m)
	dec := json.NewDecoder(bytes.NewReader(clean))
	dec.DisallowUnknownFields()
	if err := dec.Decode(into); err != nil {
		return usageError{fmt.Errorf("--from-file %s: %s", path, strings.TrimPrefix(err.Error(), "json: "))}
	}
	return nil
}

// sameName fills an input's name from the argument. Creating, the
// argument names the copy of what the file holds; updating, a file that
// names another object is refused.
func sameName(arg string, name *string, create bool) error {
	if !create && *name != "" && *name != arg {
		return usageError{fmt.Errorf("--from-file names %q but the argument is %q", *name, arg)}
	}
	*name = arg
	return nil
}

// splitList reads repeatable, comma-separated flag values ("a,b" "c").
func splitList(values []string) []string {
	var out []string
	for _, v := range values {
		for p := range strings.SplitSeq(v, ",") {
			if p = strings.TrimSpace(p); p != "" {
				out = append(out, p)
			}
		}
	}
	return out
}

// flagFields maps the controller's field paths to the flags that set them,
// so that a refused body names the flag to fix.
type flagFields map[string]string

// name rewrites a validation error's field paths to "--flag (path)".
func (ff flagFields) name(err error) error {
	var apiErr *apiclient.Error
	if !errors.As(err, &apiErr) || apiErr.Status != http.StatusBadRequest {
		return err
	}
	out := *apiErr
	rename := func(field string) string {
		base := field
		if i := strings.IndexAny(base, "[\""); i > 0 {
			base = base[:i]
		}
		if flag, ok := ff[base]; ok {
			return "--" + flag + " (" + field + ")"
		}
		return field
	}
	out.Field = rename(out.Field)
	out.Details = make([]apiclient.ErrorDetail, len(apiErr.Details))
	for i, d := range apiErr.Details {
		out.Details[i] = apiclient.ErrorDetail{Field: rename(d.Field), Message: d.Message}
	}
	return &out
}

// --- channels -----------------------------------------------------------------

func newNotifyChannelCmd(f *apiFlags) *cobra.Command {
	cmd := &cobra.Command{Use: "channel", Aliases: []string{"channels"},
		Short: "Where notifications go: email (SMTP), webhook (signed JSON POST) or chat (Slack, Mattermost, Teams)"}
	cmd.AddCommand(newChannelListCmd(f), newChannelShowCmd(f), newChannelCreateCmd(f), newChannelUpdateCmd(f),
		newChannelDeleteCmd(f), newNotifyTestCmd(f, "test NAME", "Send a sample event through the channel and wait for the outcome; exit 1 when it was not delivered"))
	return cmd
}

// channelFlags are the flags create and update share.
type channelFlags struct {
	kind, url, secretFile, smtpHost, tls, username, from, flavor, timeout, template, description, fromFile string
	headers, unsetHeaders, to, cc                                                                          []string
	smtpPort, maxAttempts                                                                                  int
	secretStdin, removeSecret                                                                              bool
}

// channelFlagKinds says which kind each kind-specific flag belongs to.
var channelFlagKinds = map[string][]string{
	"url": {"webhook", "chat"}, "header": {"webhook"}, "unset-header": {"webhook"},
	"smtp-host": {"email"}, "smtp-port": {"email"}, "tls": {"email"}, "username": {"email"}, "from": {"email"}, "to": {"email"}, "cc": {"email"},
	"flavor": {"chat"},
}

var channelFields = flagFields{
	"name": "NAME", "description": "description", "secret": "secret-file", "max_attempts": "max-attempts", "config.kind": "kind",
	"config.webhook.url": "url", "config.webhook.headers": "header", "config.webhook.template": "template", "config.webhook.timeout": "timeout",
	"config.chat.url": "url", "config.chat.flavor": "flavor", "config.chat.template": "template", "config.chat.timeout": "timeout",
	"config.email.host": "smtp-host", "config.email.port": "smtp-port", "config.email.tls": "tls", "config.email.username": "username",
	"config.email.from": "from", "config.email.to": "to", "config.email.cc": "cc", "config.email.template": "template", "config.email.timeout": "timeout",
}

func (cf *channelFlags) add(cmd *cobra.Command, update bool) {
	fl := cmd.Flags()
	fl.StringVar(&cf.kind, "kind", "", "email, webhook or chat")
	fl.StringVar(&cf.url, "url", "", "webhook or chat: the URL to POST to")
	fl.StringArrayVar(&cf.headers, "header", nil, "webhook: an extra header NAME=VALUE (repeatable)")
	fl.StringVar(&cf.secretFile, "secret-file", "", "the webhook signing secret (at least 16 bytes) or the SMTP password, from this file's first line")
	fl.BoolVar(&cf.secretStdin, "secret-stdin", false, "read the secret from the first line of standard input")
	fl.StringVar(&cf.smtpHost, "smtp-host", "", "email: the SMTP relay")
	fl.IntVar(&cf.smtpPort, "smtp-port", 0, "email: the relay's port (default 587 with starttls, 465 with implicit, 25 with none)")
	fl.StringVar(&cf.tls, "tls", "", "email: starttls (default), implicit, or none (a loopback relay only)")
	fl.StringVar(&cf.username, "username", "", "email: the SMTP login; its password is the secret")
	fl.StringVar(&cf.from, "from", "", "email: the sender address")
	fl.StringArrayVar(&cf.to, "to", nil, "email: a recipient (repeatable, or comma-separated)")
	fl.StringArrayVar(&cf.cc, "cc", nil, "email: a copy recipient (repeatable, or comma-separated)")
	fl.StringVar(&cf.flavor, "flavor", "", "chat: slack, mattermost or teams")
	fl.IntVar(&cf.maxAttempts, "max-attempts", 0, "tries before a delivery is dead, 1-100 (default 8)")
	fl.StringVar(&cf.timeout, "timeout", "", "the time one attempt may take, e.g. 10s (default 10s, at most 2m)")
	fl.StringVar(&cf.template, "template", "", "the template this channel renders with (default: the built-in one per event)")
	fl.StringVar(&cf.description, "description", "", "what the channel is for")
	fl.StringVar(&cf.fromFile, "from-file", "", "read the channel as JSON ({description, config, secret, max_attempts}, or what 'show --json' prints); flags given too override it")
	if update {
		fl.StringArrayVar(&cf.unsetHeaders, "unset-header", nil, "webhook: drop a stored header (repeatable)")
		fl.BoolVar(&cf.removeSecret, "remove-secret", false, "drop the stored secret")
	}
}

// apply changes in by the flags given. create says whether fields a new
// channel needs must be there.
func (cf *channelFlags) apply(cmd *cobra.Command, in *apiclient.NotifyChannelInput, create bool) error {
	fl := cmd.Flags()
	cfg := &in.Config
	if fl.Changed("kind") {
		switch cf.kind {
		case "email", "webhook", "chat":
		default:
			return usageError{fmt.Errorf("--kind %q: want email, webhook or chat", cf.kind)}
		}
		if cfg.Kind != cf.kind {
			*cfg = apiclient.NotifyChannelConfig{Kind: cf.kind}
		}
	}
	if cfg.Kind == "" {
		return usageError{errors.New("--kind is required: email, webhook or chat")}
	}
	for flag, kinds := range channelFlagKinds {
		if fl.Changed(flag) && !slices.Contains(kinds, cfg.Kind) {
			return usageError{fmt.Errorf("--%s is for %s channels, not %s", flag, strings.Join(kinds, " and "), cfg.Kind)}
		}
	}
	if cf.secretStdin && cf.secretFile != "" {
		return usageError{errors.New("--secret-file and --secret-stdin: give one")}
	}
	if cf.removeSecret && (cf.secretStdin || cf.secretFile != "") {
		return usageError{errors.New("--remove-secret and a new secret: give one")}
	}
	if fl.Changed("timeout") && cf.timeout != "" {
		if d, err := time.ParseDuration(cf.timeout); err != nil || d < 0 {
			return usageError{fmt.Errorf("--timeout %q: want a duration such as 10s", cf.timeout)}
		}
	}
	set := func(flag string, dst *string, v string) {
		if fl.Changed(flag) {
			*dst = v
		}
	}
	set("description", &in.Description, cf.description)
	if fl.Changed("max-attempts") {
		if cf.maxAttempts < 1 || cf.maxAttempts > 100 {
			return usageError{fmt.Errorf("--max-attempts %d: want 1 to 100", cf.maxAttempts)}
		}
		in.MaxAttempts = cf.maxAttempts
	}
	switch cfg.Kind {
	case "webhook":
		if cfg.Webhook == nil {
			cfg.Webhook = &apiclient.NotifyWebhookConfig{}
		}
		w := cfg.Webhook
		set("url", &w.URL, cf.url)
		set("template", &w.Template, cf.template)
		set("timeout", &w.Timeout, cf.timeout)
		for _, name := range cf.unsetHeaders {
			delete(w.Headers, name)
		}
		for _, h := range cf.headers {
			k, v, ok := strings.Cut(h, "=")
			if !ok || strings.TrimSpace(k) == "" {
				return usageError{fmt.Errorf("--header %q: want NAME=VALUE", h)}
			}
			if w.Headers == nil {
				w.Headers = map[string]string{}
			}
			w.Headers[strings.TrimSpace(k)] = v
		}
		if len(w.Headers) == 0 {
			w.Headers = nil
		}
		if create && w.URL == "" {
			return usageError{errors.New("a webhook channel needs --url")}
		}
	case "chat":
		if cfg.Chat == nil {
			cfg.Chat = &apiclient.NotifyChatConfig{}
		}
		ch := cfg.Chat
		if !create && !fl.Changed("url") && cf.fromFile == "" {
			// The controller shows a chat URL cut to its host (the URL is
			// the credential), so what was read cannot be sent back.
			return usageError{errors.New("--url is required to update a chat channel: the controller does not show the stored URL (it is the credential), so give it again")}
		}
		set("url", &ch.URL, cf.url)
		set("flavor", &ch.Flavor, cf.flavor)
		set("template", &ch.Template, cf.template)
		set("timeout", &ch.Timeout, cf.timeout)
		if create && (ch.URL == "" || ch.Flavor == "") {
			return usageError{errors.New("a chat channel needs --flavor (slack, mattermost or teams) and --url")}
		}
	case "email":
		if cfg.Email == nil {
			cfg.Email = &apiclient.NotifyEmailConfig{}
		}
		e := cfg.Email
		set("smtp-host", &e.Host, cf.smtpHost)
		set("tls", &e.TLS, cf.tls)
		set("username", &e.Username, cf.username)
		set("from", &e.From, cf.from)
		set("template", &e.Template, cf.template)
		set("timeout", &e.Timeout, cf.timeout)
		if fl.Changed("tls") {
			switch cf.tls {
			case "starttls", "implicit", "none":
			default:
				return usageError{fmt.Errorf("--tls %q: want starttls, implicit or none", cf.tls)}
			}
		}
		if e.TLS == "" {
			e.TLS = "starttls"
		}
		if fl.Changed("smtp-port") {
			if cf.smtpPort < 1 || cf.smtpPort > 65535 {
				return usageError{fmt.Errorf("--smtp-port %d: want 1 to 65535", cf.smtpPort)}
			}
			e.Port = cf.smtpPort
		}
		if e.Port == 0 {
			e.Port = map[string]int{"starttls": 587, "implicit": 465, "none": 25}[e.TLS]
		}
		if fl.Changed("to") {
			e.To = splitList(cf.to)
		}
		if fl.Changed("cc") {
			e.Cc = splitList(cf.cc)
		}
		if create {
			var missing []string
			for flag, v := range map[string]string{"smtp-host": e.Host, "from": e.From} {
				if v == "" {
					missing = append(missing, "--"+flag)
				}
			}
			if len(e.To) == 0 {
				missing = append(missing, "--to")
			}
			if len(missing) > 0 {
				slices.Sort(missing)
				return usageError{fmt.Errorf("an email channel needs %s", strings.Join(missing, ", "))}
			}
		}
	}
	return cf.readSecret(cmd, in, create)
}

// readSecret sets the input's secret from --secret-file, --secret-stdin,
// --remove-secret or, for a new channel that needs one, a prompt.
func (cf *channelFlags) readSecret(cmd *cobra.Command, in *apiclient.NotifyChannelInput, create bool) error {
	var (
		s   string
		err error
	)
	switch {
	case cf.removeSecret:
		empty := ""
		in.Secret = &empty
		return nil
	case cf.secretFile != "":
		s, err = readSecretFile("secret-file", cf.secretFile, true)
	case cf.secretStdin:
		s, err = readSecret(cmd.InOrStdin(), "standard input", true)
	case !create || in.Secret != nil:
		return nil
	default:
		need := ""
		switch {
		case in.Config.Kind == "webhook":
			need = "Signing secret for the webhook (at least 16 bytes): "
		case in.Config.Kind == "email" && in.Config.Email.Username != "":
			need = "SMTP password of " + in.Config.Email.Username + ": "
		}
		if need == "" {
			return nil
		}
		p := newPrompter(cmd)
		if !p.interactive() {
			what := "a webhook channel needs a signing secret"
			if in.Config.Kind == "email" {
				what = "an SMTP --username needs its password"
			}
			return usageError{fmt.Errorf("%s: give --secret-file or --secret-stdin, or run on a terminal to be prompted", what)}
		}
		if s, err = p.secret(need); err == nil && s == "" {
			err = usageError{errors.New("the secret is empty")}
		}
	}
	if err != nil {
		return err
	}
	if in.Config.Kind == "webhook" && len(s) < 16 {
		return usageError{fmt.Errorf("the webhook signing secret is %d bytes: it needs at least 16", len(s))}
	}
	in.Secret = &s
	return nil
}

// channelReadOnly are the fields of a shown channel the controller writes.
var channelReadOnly = []string{"kind", "has_secret", "created_by", "created_at", "updated_at"}

func newChannelCreateCmd(f *apiFlags) *cobra.Command {
	var cf channelFlags
	cmd := &cobra.Command{
		Use:   "create NAME --kind email|webhook|chat [flags]",
		Short: "Create a channel",
		Example: `  opsconductor notify channel create ops-hook --kind webhook --url https://hooks.example.com/ops --secret-file hook.secret
  opsconductor notify channel create oncall --kind email --smtp-host smtp.example.com --username alerts \
      --from alerts@example.com --to oncall@example.com --secret-stdin < smtp.pass
  opsconductor notify channel create team-chat --kind chat --flavor slack --url https://hooks.slack.com/services/… `,
		Args: exactArgs(1, "the channel name"),
		RunE: f.run(func(cmd *cobra.Command, args []string, c *apiclient.Client) error {
			var in apiclient.NotifyChannelInput
			if cf.fromFile != "" {
				if err := readBodyFile(cmd, cf.fromFile, &in, append(channelReadOnly, "revision")...); err != nil {
					return err
				}
			}
			if err := sameName(args[0], &in.Name, true); err != nil {
				return err
			}
			if err := cf.apply(cmd, &in, true); err != nil {
				return err
			}
			ch, err := c.CreateNotifyChannel(cmd.Context(), in)
			if err != nil {
				return channelFields.name(err)
			}
			return printChannel(cmd.OutOrStdout(), f, ch, "Created")
		}),
	}
	cf.add(cmd, false)
	return cmd
}

func newChannelUpdateCmd(f *apiFlags) *cobra.Command {
	var cf channelFlags
	cmd := &cobra.Command{
		Use:   "update NAME [flags]",
		Short: "Change a channel: the flags given replace those settings, the rest (and the secret) stay",
		Args:  exactArgs(1, "the channel name"),
		RunE: f.run(func(cmd *cobra.Command, args []string, c *apiclient.Client) error {
			cur, err := c.GetNotifyChannel(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			// Read, change, write at the revision read: a concurrent
			// change is refused (409) rather than silently undone.
			in := cur.Input()
			if cf.fromFile != "" {
				in = apiclient.NotifyChannelInput{}
				if err := readBodyFile(cmd, cf.fromFile, &in, channelReadOnly...); err != nil {
					return err
				}
				if in.Revision == nil {
					in.Revision = &cur.Revision
				}
			}
			if err := sameName(args[0], &in.Name, false); err != nil {
				return err
			}
			if err := cf.apply(cmd, &in, false); err != nil {
				return err
			}
			ch, err := c.UpdateNotifyChannel(cmd.Context(), args[0], in)
			if err != nil {
				return channelFields.name(err)
			}
			return printChannel(cmd.OutOrStdout(), f, ch, "Updated")
		}),
	}
	cf.add(cmd, true)
	return cmd
}

func newChannelListCmd(f *apiFlags) *cobra.Command {
	return &cobra.Command{
		Use: "list", Short: "List channels", Args: exactArgs(0, ""),
		RunE: f.run(func(cmd *cobra.Command, _ []string, c *apiclient.Client) error {
			chs, err := c.ListNotifyChannels(cmd.Context())
			if err != nil {
				return err
			}
			if f.json {
				return printJSON(cmd.OutOrStdout(), nonNilSlice(chs))
			}
			rows := make([][]string, 0, len(chs))
			for _, ch := range chs {
				rows = append(rows, []string{ch.Name, ch.Kind, channelTarget(ch.Config), yesNo(ch.HasSecret), strconv.Itoa(ch.MaxAttempts),
					orDash(ch.Description)})
			}
			return table(cmd.OutOrStdout(), "NAME\tKIND\tSENDS TO\tSECRET\tMAX ATTEMPTS\tDESCRIPTION", rows)
		}),
	}
}

// channelTarget says where a channel sends, in one cell.
func channelTarget(cfg apiclient.NotifyChannelConfig) string {
	switch {
	case cfg.Webhook != nil:
		return cfg.Webhook.URL
	case cfg.Chat != nil:
		return cfg.Chat.Flavor + " " + cfg.Chat.URL
	case cfg.Email != nil:
		return strings.Join(append(slices.Clone(cfg.Email.To), cfg.Email.Cc...), ",") + " via " + cfg.Email.Host + ":" + strconv.Itoa(cfg.Email.Port)
	}
	return "-"
}

func newChannelShowCmd(f *apiFlags) *cobra.Command {
	return &cobra.Command{
		Use: "show NAME", Short: "Show a channel (never its secret)", Args: exactArgs(1, "the channel name"),
		RunE: f.run(func(cmd *cobra.Command, args []string, c *apiclient.Client) error {
			ch, err := c.GetNotifyChannel(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			return printChannel(cmd.OutOrStdout(), f, ch, "")
		}),
	}
}

func newChannelDeleteCmd(f *apiFlags) *cobra.Command {
	return &cobra.Command{
		Use: "delete NAME", Short: "Delete a channel no rule uses", Args: exactArgs(1, "the channel name"),
		RunE: f.run(func(cmd *cobra.Command, args []string, c *apiclient.Client) error {
			if err := c.DeleteNotifyChannel(cmd.Context(), args[0]); err != nil {
				return err
			}
			_, err := fmt.Fprintf(cmd.OutOrStdout(), "Deleted channel %s\n", args[0])
			return err
		}),
	}
}

func printChannel(w io.Writer, f *apiFlags, ch apiclient.NotifyChannel, verb string) error {
	if f.json {
		return printJSON(w, ch)
	}
	if verb != "" {
		fmt.Fprintf(w, "%s channel %s (revision %d)\n", verb, ch.Name, ch.Revision)
	}
	rows := [][]string{{"name", ch.Name}, {"kind", ch.Kind}, {"description", orDash(ch.Description)}}
	timeout, tmplName := "", ""
	switch cfg := ch.Config; {
	case cfg.Webhook != nil:
		rows = append(rows, []string{"url", cfg.Webhook.URL})
		for _, k := range slices.Sorted(maps.Keys(cfg.Webhook.Headers)) {
			rows = append(rows, []string{"header", k + ": " + cfg.Webhook.Headers[k]})
		}
		timeout, tmplName = cfg.Webhook.Timeout, cfg.Webhook.Template
	case cfg.Chat != nil:
		rows = append(rows, []string{"flavor", cfg.Chat.Flavor}, []string{"url", cfg.Chat.URL + " (shown cut: the URL is the credential)"})
		timeout, tmplName = cfg.Chat.Timeout, cfg.Chat.Template
	case cfg.Email != nil:
		e := cfg.Email
		rows = append(rows, []string{"smtp", fmt.Sprintf("%s:%d (tls %s)", e.Host, e.Port, e.TLS)}, []string{"username", orDash(e.Username)},
			[]string{"from", e.From}, []string{"to", strings.Join(e.To, ", ")})
		if len(e.Cc) > 0 {
			rows = append(rows, []string{"cc", strings.Join(e.Cc, ", ")})
		}
		timeout, tmplName = e.Timeout, e.Template
	}
	if timeout == "" {
		timeout = "10s (default)"
	}
	if tmplName == "" {
		tmplName = "built-in per event"
	}
	secret := "none"
	if ch.HasSecret {
		secret = "set (never shown)"
	}
	rows = append(rows, []string{"template", tmplName}, []string{"timeout", timeout}, []string{"max attempts", strconv.Itoa(ch.MaxAttempts)},
		[]string{"secret", secret}, []string{"revision", strconv.FormatUint(ch.Revision, 10)},
		[]string{"created", when(&ch.CreatedAt) + " by " + orDash(ch.CreatedBy)}, []string{"updated", when(&ch.UpdatedAt)})
	return table(w, "FIELD\tVALUE", rows)
}

func newNotifyTestCmd(f *apiFlags, use, short string) *cobra.Command {
	var in apiclient.NotifyTestInput
	cmd := &cobra.Command{
		Use: use + " [--event TYPE] [--template NAME]", Short: short, Args: exactArgs(1, "the channel name"),
		RunE: f.run(func(cmd *cobra.Command, args []string, c *apiclient.Client) error {
			d, err := c.TestNotifyChannel(cmd.Context(), args[0], in, true)
			if err != nil {
				return (flagFields{"event": "event", "template": "template"}).name(err)
			}
			if f.json {
				if err := printJSON(cmd.OutOrStdout(), d); err != nil {
					return err
				}
			} else if err := printOutcome(cmd.OutOrStdout(), "test delivery", d); err != nil {
				return err
			}
			if d.State != apiclient.DeliveryDelivered {
				return exitCodeError{1}
			}
			return nil
		}),
	}
	cmd.Flags().StringVar(&in.Event, "event", "", "the sample event to send (default run.failed; see 'opsconductor notify events')")
	cmd.Flags().StringVar(&in.Template, "template", "", "render with this stored template instead of the channel's")
	return cmd
}

// printOutcome says how a delivery ended:
//
//	test delivery dlv_7 to ops-hook: delivered (code 200) in 14ms
//	delivery dlv_9 to ops-hook: dead after 3 attempts (code 500): webhook answered 500
func printOutcome(w io.Writer, what string, d apiclient.NotifyDelivery) error {
	var b strings.Builder
	fmt.Fprintf(&b, "%s %s to %s: ", what, d.ID, d.Channel)
	last := apiclient.NotifyAttempt{}
	if len(d.History) > 0 {
		last = d.History[len(d.History)-1]
	}
	switch d.State {
	case apiclient.DeliveryDelivered:
		b.WriteString("delivered")
		if d.LastCode != 0 {
			fmt.Fprintf(&b, " (code %d)", d.LastCode)
		}
		if last.Duration != "" {
			fmt.Fprintf(&b, " in %s", roundDuration(last.Duration))
		}
		if d.Attempts > 1 {
			fmt.Fprintf(&b, " on attempt %d", d.Attempts)
		}
	case apiclient.DeliveryDead:
		fmt.Fprintf(&b, "dead after %d %s", d.Attempts, plural(d.Attempts, "attempt"))
		if d.LastCode != 0 {
			fmt.Fprintf(&b, " (code %d)", d.LastCode)
		}
		fmt.Fprintf(&b, ": %s", orDash(d.LastError))
	default:
		fmt.Fprintf(&b, "still %s, %s; see opsconductor notify delivery show %s", d.State, nextAttempt(d, time.Now()), d.ID)
	}
	b.WriteString("\n")
	if d.State == apiclient.DeliveryDead && last.Response != "" {
		fmt.Fprintf(&b, "  response: %s\n", oneLine(last.Response, 200))
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// roundDuration shows an attempt's duration ("29.521363ms") to the
// millisecond, or the microsecond below one.
func roundDuration(s string) string {
	d, err := time.ParseDuration(s)
	switch {
	case err != nil:
		return s
	case d >= time.Millisecond:
		return d.Round(time.Millisecond).String()
	}
	return d.Round(time.Microsecond).String()
}

func plural(n int, word string) string {
	if n == 1 {
		return word
	}
	return word + "s"
}

// oneLine squeezes s into one line of at most n runes.
func oneLine(s string, n int) string {
	s = strings.Join(strings.Fields(s), " ")
	if r := []rune(s); len(r) > n {
		return string(r[:n-1]) + "…"
	}
	return s
}

// nextAttempt says where a pending delivery is: "attempt 2 of 8, next in
// 3s" or "attempt 1 of 8, sending".
func nextAttempt(d apiclient.NotifyDelivery, now time.Time) string {
	s := fmt.Sprintf("attempt %d of %d", d.Attempts+1, d.MaxAttempts)
	if wait := d.NextAttemptAt.Sub(now); wait >= time.Second {
		return s + ", next in " + wait.Round(time.Second).String()
	}
	return s + ", sending"
}

// --- templates ----------------------------------------------------------------

func newNotifyTemplateCmd(f *apiFlags) *cobra.Command {
	cmd := &cobra.Command{Use: "template", Aliases: []string{"templates"},
		Short: "Templates that render notifications (Go text/template; HTML mail with html/template), checked on save"}
	cmd.AddCommand(newTemplateListCmd(f), newTemplateShowCmd(f), newTemplateSaveCmd(f, true), newTemplateSaveCmd(f, false),
		newTemplateDeleteCmd(f), newTemplatePreviewCmd(f))
	return cmd
}

// templateFlags are the flags create, update and preview share.
type templateFlags struct {
	channel, subject, textFile, htmlFile, bodyFile, fromFile, description string
	events                                                                []string
}

func (tf *templateFlags) add(cmd *cobra.Command, preview bool) {
	fl := cmd.Flags()
	fl.StringVar(&tf.channel, "channel", "", "the kind of channel it renders for: email, webhook or chat")
	fl.StringSliceVar(&tf.events, "events", nil, "the event types it is for, comma-separated (default every type)")
	fl.StringVar(&tf.subject, "subject", "", "email: the subject; chat: the heading")
	fl.StringVar(&tf.textFile, "text-file", "", "email: the plain-text part; chat: the message (- for standard input)")
	fl.StringVar(&tf.htmlFile, "html-file", "", "email: the HTML part (- for standard input)")
	fl.StringVar(&tf.bodyFile, "body-file", "", "webhook: the JSON body; chat: a whole payload such as a Teams card (- for standard input)")
	fl.StringVar(&tf.fromFile, "from-file", "", "read the template as JSON ({channel, events, subject, text, html, body, description}, or what 'show --json' prints); flags given too override it")
	if !preview {
		fl.StringVar(&tf.description, "description", "", "what the template is for")
	}
}

var templateFields = flagFields{"name": "NAME", "channel": "channel", "events": "events", "subject": "subject", "text": "text-file",
	"html": "html-file", "body": "body-file", "description": "description"}

// apply changes in by the flags given.
func (tf *templateFlags) apply(cmd *cobra.Command, in *apiclient.NotifyTemplateInput) error {
	fl := cmd.Flags()
	stdin := 0
	for _, p := range []string{tf.textFile, tf.htmlFile, tf.bodyFile, tf.fromFile} {
		if p == "-" {
			stdin++
		}
	}
	if stdin > 1 {
		return usageError{errors.New("only one of --text-file, --html-file, --body-file and --from-file can read standard input")}
	}
	if fl.Changed("channel") {
		switch tf.channel {
		case "email", "webhook", "chat":
		default:
			return usageError{fmt.Errorf("--channel %q: want email, webhook or chat", tf.channel)}
		}
		in.Channel = tf.channel
	}
	if fl.Changed("events") {
		in.Events = splitList(tf.events)
	}
	if fl.Changed("subject") {
		in.Subject = tf.subject
	}
	if fl.Changed("description") {
		in.Description = tf.description
	}
	for _, part := range []struct {
		flag, path string
		dst        *string
	}{{"text-file", tf.textFile, &in.Text}, {"html-file", tf.htmlFile, &in.HTML}, {"body-file", tf.bodyFile, &in.Body}} {
		if !fl.Changed(part.flag) {
			continue
		}
		var (
			b   []byte
			err error
		)
		if part.path == "-" {
			b, err = io.ReadAll(io.LimitReader(cmd.InOrStdin(), 1<<20))
		} else {
			b, err = os.ReadFile(part.path)
		}
		if err != nil {
			return usageError{fmt.Errorf("--%s: %w", part.flag, err)}
		}
		*part.dst = string(b)
	}
	if in.Channel == "" {
		return usageError{errors.New("--channel is required: email, webhook or chat")}
	}
	return nil
}

var templateReadOnly = []string{"created_at", "updated_at"}

func newTemplateSaveCmd(f *apiFlags, create bool) *cobra.Command {
	var tf templateFlags
	use, short := "create NAME --channel email|webhook|chat [flags]", "Create a template; it is checked by rendering the sample of each event it is for"
	if !create {
		use, short = "update NAME [flags]", "Change a template: the flags given replace those parts, the rest stay"
	}
	cmd := &cobra.Command{
		Use: use, Short: short, Args: exactArgs(1, "the template name"),
		Example: `  opsconductor notify template create failed-mail --channel email --events run.failed \
      --subject 'Run {{.Run.ID}} of {{.Run.Job}} failed' --text-file failed.txt --html-file failed.html`,
		RunE: f.run(func(cmd *cobra.Command, args []string, c *apiclient.Client) error {
			var in apiclient.NotifyTemplateInput
			var cur apiclient.NotifyTemplate
			if strings.HasPrefix(args[0], "builtin/") {
				return usageError{fmt.Errorf("%s is built in and read-only: save a copy under your own name with "+
					"'opsconductor notify template show %s --json > t.json' and 'opsconductor notify template create NAME --from-file t.json'", args[0], args[0])}
			}
			if !create {
				var err error
				if cur, err = c.GetNotifyTemplate(cmd.Context(), args[0]); err != nil {
					return err
				}
				in = cur.Input()
			}
			if tf.fromFile != "" {
				drop := templateReadOnly
				if create {
					drop = append(slices.Clone(drop), "revision")
				}
				in = apiclient.NotifyTemplateInput{}
				if err := readBodyFile(cmd, tf.fromFile, &in, drop...); err != nil {
					return err
				}
				if !create && in.Revision == nil {
					in.Revision = &cur.Revision
				}
			}
			if err := sameName(args[0], &in.Name, create); err != nil {
				return err
			}
			if err := tf.apply(cmd, &in); err != nil {
				return err
			}
			var (
				t   apiclient.NotifyTemplate
				err error
			)
			verb := "Created"
			if create {
				t, err = c.CreateNotifyTemplate(cmd.Context(), in)
			} else {
				verb = "Updated"
				t, err = c.UpdateNotifyTemplate(cmd.Context(), args[0], in)
			}
			if err != nil {
				if probs := templateProblems(err); probs != nil {
					return fmt.Errorf("template %s was not saved:\n%s", args[0], strings.Join(probs, "\n"))
				}
				return templateFields.name(err)
			}
			if f.json {
				return printJSON(cmd.OutOrStdout(), t)
			}
			_, err = fmt.Fprintf(cmd.OutOrStdout(), "%s template %s (%s, revision %d)\n", verb, t.Name, t.Channel, t.Revision)
			return err
		}),
	}
	tf.add(cmd, false)
	return cmd
}

// diagLine reads "line 3, column 5: message" as the controller writes a
// template problem.
var diagLine = regexp.MustCompile(`^line (\d+)(?:, column (\d+))?: (.*)$`)

// templateProblems returns a template error's problems as
// "field:line: message" lines (the column, when known, follows the
// message), or nil when err is not a template error.
func templateProblems(err error) []string {
	var apiErr *apiclient.Error
	if !errors.As(err, &apiErr) || apiErr.Status != http.StatusBadRequest {
		return nil
	}
	details := apiErr.Details
	if len(details) == 0 {
		details = []apiclient.ErrorDetail{{Field: apiErr.Field, Message: apiErr.Message}}
	}
	out := make([]string, 0, len(details))
	for _, d := range details {
		field := d.Field
		if field == "" {
			field = "template"
		}
		if m := diagLine.FindStringSubmatch(d.Message); m != nil {
			msg := m[3]
			if m[2] != "" {
				msg += " (column " + m[2] + ")"
			}
			out = append(out, field+":"+m[1]+": "+msg)
		} else {
			out = append(out, field+": "+d.Message)
		}
	}
	return out
}

func newTemplateListCmd(f *apiFlags) *cobra.Command {
	var builtin bool
	cmd := &cobra.Command{
		Use: "list [--builtin]", Short: "List stored templates (and, with --builtin, the built-in ones)", Args: exactArgs(0, ""),
		RunE: f.run(func(cmd *cobra.Command, _ []string, c *apiclient.Client) error {
			ts, err := c.ListNotifyTemplates(cmd.Context(), builtin)
			if err != nil {
				return err
			}
			if f.json {
				return printJSON(cmd.OutOrStdout(), nonNilSlice(ts))
			}
			rows := make([][]string, 0, len(ts))
			for _, t := range ts {
				events := "all"
				if len(t.Events) > 0 {
					events = strings.Join(t.Events, ",")
				}
				rows = append(rows, []string{t.Name, t.Channel, events, orDash(t.Description)})
			}
			return table(cmd.OutOrStdout(), "NAME\tCHANNEL\tEVENTS\tDESCRIPTION", rows)
		}),
	}
	cmd.Flags().BoolVar(&builtin, "builtin", false, "also list the built-in templates (builtin/<event>/<channel>, read-only)")
	return cmd
}

func newTemplateShowCmd(f *apiFlags) *cobra.Command {
	return &cobra.Command{
		Use: "show NAME", Short: "Show a template's source (built-in ones are builtin/<event>/<channel>)", Args: exactArgs(1, "the template name"),
		RunE: f.run(func(cmd *cobra.Command, args []string, c *apiclient.Client) error {
			t, err := c.GetNotifyTemplate(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			if f.json {
				return printJSON(cmd.OutOrStdout(), t)
			}
			var b strings.Builder
			events := "all"
			if len(t.Events) > 0 {
				events = strings.Join(t.Events, ", ")
			}
			fmt.Fprintf(&b, "%s  channel %s  events %s  revision %d\n", t.Name, t.Channel, events, t.Revision)
			if t.Description != "" {
				fmt.Fprintf(&b, "%s\n", t.Description)
			}
			writeParts(&b, [][2]string{{"subject", t.Subject}, {"text", t.Text}, {"html", t.HTML}, {"body", t.Body}})
			_, err = io.WriteString(cmd.OutOrStdout(), b.String())
			return err
		}),
	}
}

// writeParts writes each non-empty part under a "--- name ---" rule.
func writeParts(b *strings.Builder, parts [][2]string) {
	for _, p := range parts {
		if p[1] == "" {
			continue
		}
		fmt.Fprintf(b, "--- %s ---\n%s", p[0], p[1])
		if !strings.HasSuffix(p[1], "\n") {
			b.WriteString("\n")
		}
	}
}

func newTemplateDeleteCmd(f *apiFlags) *cobra.Command {
	return &cobra.Command{
		Use: "delete NAME", Short: "Delete a template no rule uses", Args: exactArgs(1, "the template name"),
		RunE: f.run(func(cmd *cobra.Command, args []string, c *apiclient.Client) error {
			if strings.HasPrefix(args[0], "builtin/") {
				return usageError{fmt.Errorf("%s is built in and cannot be deleted", args[0])}
			}
			if err := c.DeleteNotifyTemplate(cmd.Context(), args[0]); err != nil {
				return err
			}
			_, err := fmt.Fprintf(cmd.OutOrStdout(), "Deleted template %s\n", args[0])
			return err
		}),
	}
}

func newTemplatePreviewCmd(f *apiFlags) *cobra.Command {
	var (
		tf    templateFlags
		event string
	)
	cmd := &cobra.Command{
		Use:   "preview [NAME | --from-file F | --channel KIND …] [--event TYPE]",
		Short: "Render a template with a sample event without saving it; a template error prints field:line: message and exits 1",
		Long: `Render a stored template (NAME), one in a file (--from-file) or one given by
flags as for create, with the sample event of --event (default the template's
first event, else run.failed). With NAME, flags given too change the stored
template before it is rendered, so edits can be tried before 'update'.`,
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) > 1 {
				return usageError{fmt.Errorf("%s takes at most one argument (the template name), got %d", cmd.CommandPath(), len(args))}
			}
			return nil
		},
		RunE: f.run(func(cmd *cobra.Command, args []string, c *apiclient.Client) error {
			var in apiclient.NotifyTemplateInput
			if len(args) == 1 {
				if tf.fromFile != "" {
					return usageError{errors.New("give a template NAME or --from-file, not both")}
				}
				t, err := c.GetNotifyTemplate(cmd.Context(), args[0])
				if err != nil {
					return err
				}
				in = t.Input()
			} else if tf.fromFile != "" {
				if err := readBodyFile(cmd, tf.fromFile, &in, append(templateReadOnly, "revision", "description")...); err != nil {
					return err
				}
			}
			if err := tf.apply(cmd, &in); err != nil {
				return err
			}
			r, err := c.PreviewNotifyTemplate(cmd.Context(), apiclient.NotifyPreviewTemplate{Name: in.Name, Channel: in.Channel, Events: in.Events,
				Subject: in.Subject, Text: in.Text, HTML: in.HTML, Body: in.Body}, event)
			if err != nil {
				if probs := templateProblems(err); probs != nil {
					fmt.Fprintln(cmd.ErrOrStderr(), strings.Join(probs, "\n"))
					return exitCodeError{1}
				}
				return err
			}
			if f.json {
				return printJSON(cmd.OutOrStdout(), r)
			}
			body := ""
			if len(r.Body) > 0 {
				var pretty bytes.Buffer
				if json.Indent(&pretty, r.Body, "", "  ") == nil {
					body = pretty.String()
				} else {
					body = string(r.Body)
				}
			}
			var b strings.Builder
			writeParts(&b, [][2]string{{"subject", r.Subject}, {"text", r.Text}, {"html", r.HTML}, {"body", body}})
			if b.Len() == 0 {
				b.WriteString("the template rendered nothing\n")
			}
			_, err = io.WriteString(cmd.OutOrStdout(), b.String())
			return err
		}),
	}
	tf.add(cmd, true)
	cmd.Flags().StringVar(&event, "event", "", "the sample event to render (see 'opsconductor notify events')")
	return cmd
}

// --- rules --------------------------------------------------------------------

func newNotifyRuleCmd(f *apiFlags) *cobra.Command {
	cmd := &cobra.Command{Use: "rule", Aliases: []string{"rules"},
		Short: "Rules: which events (filtered by job, tags, groups, severity) go to which channels, throttled into digests"}
	cmd.AddCommand(newRuleListCmd(f), newRuleShowCmd(f), newRuleSaveCmd(f, true), newRuleSaveCmd(f, false), newRuleDeleteCmd(f))
	return cmd
}

type ruleFlags struct {
	events, channels, jobs, tags, groups                   []string
	minSeverity, template, throttle, description, fromFile string
	enabled, disabled                                      bool
}

var ruleFields = flagFields{"name": "NAME", "description": "description", "events": "event", "channels": "channel", "filter.jobs": "job",
	"filter.tags": "tag", "filter.groups": "group", "filter.min_severity": "min-severity", "template": "template",
	"throttle.max": "throttle", "throttle.window": "throttle"}

func (rf *ruleFlags) add(cmd *cobra.Command) {
	fl := cmd.Flags()
	fl.StringArrayVar(&rf.events, "event", nil, "an event type to match (repeatable or comma-separated; see 'opsconductor notify events')")
	fl.StringArrayVar(&rf.channels, "channel", nil, "a channel to send to (repeatable or comma-separated)")
	fl.StringArrayVar(&rf.jobs, "job", nil, "only events of jobs matching this name or glob, e.g. deploy-* (repeatable)")
	fl.StringArrayVar(&rf.tags, "tag", nil, "only events whose target or agent has tag KEY=VALUE (repeatable; all must match)")
	fl.StringArrayVar(&rf.groups, "group", nil, "only events whose target is in this group (repeatable; any may match)")
	fl.StringVar(&rf.minSeverity, "min-severity", "", "drop events below info, warning or critical")
	fl.StringVar(&rf.template, "template", "", "render with this stored template (default: the built-in one per event and channel)")
	fl.StringVar(&rf.throttle, "throttle", "", "at most N notifications per window, the rest folded into a digest: N/WINDOW such as 5/1m; 'off' removes it")
	fl.BoolVar(&rf.enabled, "enabled", false, "turn the rule on (a new rule is on unless --disabled)")
	fl.BoolVar(&rf.disabled, "disabled", false, "turn the rule off")
	fl.StringVar(&rf.description, "description", "", "what the rule is for")
	fl.StringVar(&rf.fromFile, "from-file", "", "read the rule as JSON (what 'show --json' prints); flags given too override it")
}

// parseThrottle reads "5/1m"; "off", "none" and "0" remove the throttle.
func parseThrottle(s string) (apiclient.NotifyThrottle, error) {
	switch s {
	case "off", "none", "0":
		return apiclient.NotifyThrottle{}, nil
	}
	n, w, ok := strings.Cut(s, "/")
	count, err := strconv.Atoi(n)
	d, derr := time.ParseDuration(w)
	if !ok || err != nil || count < 1 || derr != nil || d < time.Second || d > 24*time.Hour {
		return apiclient.NotifyThrottle{}, usageError{fmt.Errorf("--throttle %q: want N/WINDOW, at least 1 per window of 1s to 24h (5/1m), or off", s)}
	}
	return apiclient.NotifyThrottle{Max: count, Window: d.String()}, nil
}

func (rf *ruleFlags) apply(cmd *cobra.Command, in *apiclient.NotifyRuleInput) error {
	fl := cmd.Flags()
	if rf.enabled && rf.disabled {
		return usageError{errors.New("--enabled and --disabled: give one")}
	}
	var errs []error
	if fl.Changed("min-severity") {
		switch rf.minSeverity {
		case "", "info", "warning", "critical":
			in.Filter.MinSeverity = rf.minSeverity
		default:
			errs = append(errs, fmt.Errorf("--min-severity %q: want info, warning or critical", rf.minSeverity))
		}
	}
	if fl.Changed("throttle") {
		t, err := parseThrottle(rf.throttle)
		if err != nil {
			errs = append(errs, err)
		}
		in.Throttle = t
	}
	if fl.Changed("tag") {
		tags := map[string]string{}
		for _, v := range rf.tags {
			k, val, ok := strings.Cut(v, "=")
			if !ok || strings.TrimSpace(k) == "" {
				errs = append(errs, fmt.Errorf("--tag %q: want KEY=VALUE", v))
				continue
			}
			tags[strings.TrimSpace(k)] = val
		}
		in.Filter.Tags = tags
		if len(tags) == 0 {
			in.Filter.Tags = nil
		}
	}
	if err := errors.Join(errs...); err != nil {
		return usageError{err}
	}
	if fl.Changed("event") {
		in.Events = splitList(rf.events)
	}
	if fl.Changed("channel") {
		in.Channels = splitList(rf.channels)
	}
	if fl.Changed("job") {
		in.Filter.Jobs = splitList(rf.jobs)
	}
	if fl.Changed("group") {
		in.Filter.Groups = splitList(rf.groups)
	}
	if fl.Changed("template") {
		in.Template = rf.template
	}
	if fl.Changed("description") {
		in.Description = rf.description
	}
	switch {
	case rf.enabled:
		in.Enabled = true
	case rf.disabled:
		in.Enabled = false
	}
	var missing []string
	if len(in.Events) == 0 {
		missing = append(missing, "--event")
	}
	if len(in.Channels) == 0 {
		missing = append(missing, "--channel")
	}
	if len(missing) > 0 {
		return usageError{fmt.Errorf("a rule needs %s", strings.Join(missing, " and "))}
	}
	return nil
}

var ruleReadOnly = []string{"created_at", "updated_at"}

func newRuleSaveCmd(f *apiFlags, create bool) *cobra.Command {
	var rf ruleFlags
	use, short := "create NAME --event TYPE --channel NAME [flags]", "Create a rule (on unless --disabled)"
	if !create {
		use, short = "update NAME [flags]", "Change a rule: the flags given replace those settings (a repeated flag replaces its whole list), the rest stay"
	}
	cmd := &cobra.Command{
		Use: use, Short: short, Args: exactArgs(1, "the rule name"),
		Example: `  opsconductor notify rule create deploy-failures --event run.failed --event step.failed --job 'deploy-*' \
      --channel ops-hook --channel oncall --min-severity warning --throttle 5/10m`,
		RunE: f.run(func(cmd *cobra.Command, args []string, c *apiclient.Client) error {
			in := apiclient.NotifyRuleInput{Enabled: true}
			var cur apiclient.NotifyRule
			if !create {
				var err error
				if cur, err = c.GetNotifyRule(cmd.Context(), args[0]); err != nil {
					return err
				}
				in = cur.Input()
			}
			if rf.fromFile != "" {
				drop := ruleReadOnly
				if create {
					drop = append(slices.Clone(drop), "revision")
				}
				// A file without "enabled" makes an enabled rule, as flags do.
				in = apiclient.NotifyRuleInput{Enabled: true}
				if err := readBodyFile(cmd, rf.fromFile, &in, drop...); err != nil {
					return err
				}
				if !create && in.Revision == nil {
					in.Revision = &cur.Revision
				}
			}
			if err := sameName(args[0], &in.Name, create); err != nil {
				return err
			}
			if err := rf.apply(cmd, &in); err != nil {
				return err
			}
			var (
				r   apiclient.NotifyRule
				err error
			)
			verb := "Created"
			if create {
				r, err = c.CreateNotifyRule(cmd.Context(), in)
			} else {
				verb = "Updated"
				r, err = c.UpdateNotifyRule(cmd.Context(), args[0], in)
			}
			if err != nil {
				return ruleFields.name(err)
			}
			return printRule(cmd.OutOrStdout(), f, r, verb)
		}),
	}
	rf.add(cmd)
	return cmd
}

func newRuleListCmd(f *apiFlags) *cobra.Command {
	return &cobra.Command{
		Use: "list", Short: "List rules", Args: exactArgs(0, ""),
		RunE: f.run(func(cmd *cobra.Command, _ []string, c *apiclient.Client) error {
			rs, err := c.ListNotifyRules(cmd.Context())
			if err != nil {
				return err
			}
			if f.json {
				return printJSON(cmd.OutOrStdout(), nonNilSlice(rs))
			}
			rows := make([][]string, 0, len(rs))
			for _, r := range rs {
				rows = append(rows, []string{r.Name, strings.Join(r.Events, ","), strings.Join(r.Channels, ","), ruleFilter(r.Filter),
					orDash(r.Template), throttleText(r.Throttle), yesNo(r.Enabled)})
			}
			return table(cmd.OutOrStdout(), "NAME\tEVENTS\tCHANNELS\tFILTER\tTEMPLATE\tTHROTTLE\tENABLED", rows)
		}),
	}
}

// ruleFilter says what a filter matches in one cell:
// "job=deploy-* tag=env=prod group=web severity>=warning".
func ruleFilter(fl apiclient.NotifyRuleFilter) string {
	var parts []string
	for _, j := range fl.Jobs {
		parts = append(parts, "job="+j)
	}
	for _, k := range slices.Sorted(maps.Keys(fl.Tags)) {
		parts = append(parts, "tag="+k+"="+fl.Tags[k])
	}
	for _, g := range fl.Groups {
		parts = append(parts, "group="+g)
	}
	if fl.MinSeverity != "" {
		parts = append(parts, "severity>="+fl.MinSeverity)
	}
	if len(parts) == 0 {
		return "-"
	}
	return strings.Join(parts, " ")
}

func throttleText(t apiclient.NotifyThrottle) string {
	if t.Max == 0 {
		return "-"
	}
	w := t.Window
	if d, err := time.ParseDuration(w); err == nil {
		w = shortDuration(d)
	}
	return fmt.Sprintf("%d/%s", t.Max, w)
}

// shortDuration writes 1m0s as 1m and 1h0m0s as 1h.
func shortDuration(d time.Duration) string {
	s := d.String()
	if strings.HasSuffix(s, "m0s") {
		s = strings.TrimSuffix(s, "0s")
	}
	if strings.HasSuffix(s, "h0m") {
		s = strings.TrimSuffix(s, "0m")
	}
	return s
}

func newRuleShowCmd(f *apiFlags) *cobra.Command {
	return &cobra.Command{
		Use: "show NAME", Short: "Show a rule", Args: exactArgs(1, "the rule name"),
		RunE: f.run(func(cmd *cobra.Command, args []string, c *apiclient.Client) error {
			r, err := c.GetNotifyRule(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			return printRule(cmd.OutOrStdout(), f, r, "")
		}),
	}
}

func newRuleDeleteCmd(f *apiFlags) *cobra.Command {
	return &cobra.Command{
		Use: "delete NAME", Short: "Delete a rule; events it held back for a digest are still sent", Args: exactArgs(1, "the rule name"),
		RunE: f.run(func(cmd *cobra.Command, args []string, c *apiclient.Client) error {
			if err := c.DeleteNotifyRule(cmd.Context(), args[0]); err != nil {
				return err
			}
			_, err := fmt.Fprintf(cmd.OutOrStdout(), "Deleted rule %s\n", args[0])
			return err
		}),
	}
}

func printRule(w io.Writer, f *apiFlags, r apiclient.NotifyRule, verb string) error {
	if f.json {
		return printJSON(w, r)
	}
	if verb != "" {
		fmt.Fprintf(w, "%s rule %s (revision %d)\n", verb, r.Name, r.Revision)
	}
	tmplName := r.Template
	if tmplName == "" {
		tmplName = "built-in per event and channel"
	}
	rows := [][]string{{"name", r.Name}, {"description", orDash(r.Description)}, {"enabled", yesNo(r.Enabled)},
		{"events", strings.Join(r.Events, ", ")}, {"channels", strings.Join(r.Channels, ", ")}, {"filter", ruleFilter(r.Filter)},
		{"template", tmplName}, {"throttle", throttleText(r.Throttle)}, {"revision", strconv.FormatUint(r.Revision, 10)},
		{"updated", when(&r.UpdatedAt)}}
	return table(w, "FIELD\tVALUE", rows)
}

// --- deliveries ---------------------------------------------------------------

func newNotifyDeliveryCmd(f *apiFlags) *cobra.Command {
	cmd := &cobra.Command{Use: "delivery", Aliases: []string{"deliveries"},
		Short: "Deliveries: each notification to each channel, its attempts, dead letters and redelivery"}
	cmd.AddCommand(newDeliveryListCmd(f), newDeliveryShowCmd(f), newDeliveryRedeliverCmd(f))
	return cmd
}

func newDeliveryListCmd(f *apiFlags) *cobra.Command {
	var q apiclient.NotifyDeliveryFilter
	cmd := &cobra.Command{
		Use: "list [--state pending|delivered|dead] [--rule R] [--channel C] [--limit N]", Short: "List deliveries, newest first (dead letters: --state dead)",
		Args: exactArgs(0, ""),
		RunE: f.run(func(cmd *cobra.Command, _ []string, c *apiclient.Client) error {
			var errs []error
			switch q.State {
			case "", apiclient.DeliveryPending, apiclient.DeliveryDelivered, apiclient.DeliveryDead:
			default:
				errs = append(errs, fmt.Errorf("--state %q: want pending, delivered or dead", q.State))
			}
			if cmd.Flags().Changed("limit") && (q.Limit < 1 || q.Limit > 1000) {
				errs = append(errs, fmt.Errorf("--limit %d: want 1 to 1000", q.Limit))
			}
			if err := errors.Join(errs...); err != nil {
				return usageError{err}
			}
			ds, err := c.ListNotifyDeliveries(cmd.Context(), q)
			if err != nil {
				return err
			}
			if f.json {
				return printJSON(cmd.OutOrStdout(), nonNilSlice(ds))
			}
			rows := make([][]string, 0, len(ds))
			for _, d := range ds {
				rule := d.Rule
				if d.Test {
					rule = "(test)"
				}
				rows = append(rows, []string{d.ID, d.State, d.Event.Type, orDash(rule), d.Channel, fmt.Sprintf("%d/%d", d.Attempts, d.MaxAttempts),
					lastResult(d), when(&d.CreatedAt)})
			}
			return table(cmd.OutOrStdout(), "ID\tSTATE\tEVENT\tRULE\tCHANNEL\tATTEMPTS\tLAST\tCREATED", rows)
		}),
	}
	cmd.Flags().StringVar(&q.State, "state", "", "only pending, delivered or dead deliveries")
	cmd.Flags().StringVar(&q.Rule, "rule", "", "only deliveries of this rule")
	cmd.Flags().StringVar(&q.Channel, "channel", "", "only deliveries to this channel")
	cmd.Flags().IntVar(&q.Limit, "limit", 0, "at most this many, 1-1000 (default 100)")
	return cmd
}

// lastResult says how the last attempt went: "200", "500 server error…".
func lastResult(d apiclient.NotifyDelivery) string {
	var parts []string
	if d.LastCode != 0 {
		parts = append(parts, strconv.Itoa(d.LastCode))
	}
	if d.LastError != "" {
		parts = append(parts, oneLine(d.LastError, 60))
	}
	if len(parts) == 0 {
		return "-"
	}
	return strings.Join(parts, " ")
}

func newDeliveryShowCmd(f *apiFlags) *cobra.Command {
	return &cobra.Command{
		Use: "show ID", Short: "Show a delivery and its attempt history", Args: exactArgs(1, "the delivery ID"),
		RunE: f.run(func(cmd *cobra.Command, args []string, c *apiclient.Client) error {
			d, err := c.GetNotifyDelivery(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			if f.json {
				return printJSON(cmd.OutOrStdout(), d)
			}
			return printDelivery(cmd.OutOrStdout(), d, time.Now())
		}),
	}
}

func printDelivery(w io.Writer, d apiclient.NotifyDelivery, now time.Time) error {
	var b strings.Builder
	rule := "rule " + orDash(d.Rule)
	if d.Test {
		rule = "channel test"
	}
	fmt.Fprintf(&b, "%s  %s  %s to channel %s\n", d.ID, d.State, rule, d.Channel)
	fmt.Fprintf(&b, "event %s %s (%s): %s\n", d.Event.ID, d.Event.Type, d.Event.Severity, d.Event.Summary)
	tmplName := d.Template
	if tmplName == "" {
		tmplName = "the channel's"
	}
	fmt.Fprintf(&b, "template %s; created %s", tmplName, when(&d.CreatedAt))
	if d.FinishedAt != nil {
		fmt.Fprintf(&b, ", finished %s", when(d.FinishedAt))
	}
	if d.Round > 0 {
		fmt.Fprintf(&b, "; redelivered %d %s", d.Round, plural(d.Round, "time"))
	}
	b.WriteString("\n")
	switch d.State {
	case apiclient.DeliveryPending:
		fmt.Fprintf(&b, "pending: %s\n", nextAttempt(d, now))
	case apiclient.DeliveryDead:
		fmt.Fprintf(&b, "dead after %d of %d attempts: %s\n", d.Attempts, d.MaxAttempts, orDash(d.LastError))
	default:
		fmt.Fprintf(&b, "%s after %d of %d attempts\n", d.State, d.Attempts, d.MaxAttempts)
	}
	if _, err := io.WriteString(w, b.String()); err != nil {
		return err
	}
	if len(d.History) == 0 {
		_, err := io.WriteString(w, "no attempts yet\n")
		return err
	}
	// The history keeps the last attempts of every round; the last
	// d.Attempts of them are this round's.
	rows := make([][]string, 0, len(d.History))
	for i, a := range d.History {
		n := "earlier"
		if k := d.Attempts - (len(d.History) - 1 - i); k > 0 {
			n = strconv.Itoa(k)
		}
		code := "-"
		if a.Code != 0 {
			code = strconv.Itoa(a.Code)
		}
		result := "ok"
		switch {
		case a.Error != "" && a.Response != "":
			result = oneLine(a.Error, 80) + " — " + oneLine(a.Response, 60)
		case a.Error != "":
			result = oneLine(a.Error, 120)
		case a.Response != "":
			result = "ok — " + oneLine(a.Response, 60)
		}
		rows = append(rows, []string{n, a.At.UTC().Format(time.RFC3339), code, orDash(roundDuration(a.Duration)), result})
	}
	return table(w, "ATTEMPT\tAT\tCODE\tDURATION\tRESULT", rows)
}

func newDeliveryRedeliverCmd(f *apiFlags) *cobra.Command {
	var (
		wait          bool
		poll, timeout time.Duration
	)
	cmd := &cobra.Command{
		Use:   "redeliver ID [--wait]",
		Short: "Send a dead (or delivered) delivery again from attempt one; with --wait, exit 0 when delivered and 1 when dead",
		Args:  exactArgs(1, "the delivery ID"),
		RunE: f.run(func(cmd *cobra.Command, args []string, c *apiclient.Client) error {
			if poll <= 0 {
				return usageError{fmt.Errorf("--poll %s: want a positive duration", poll)}
			}
			d, err := c.RedeliverNotify(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			if !wait {
				if f.json {
					return printJSON(out, d)
				}
				_, err := fmt.Fprintf(out, "delivery %s to %s queued again: %s\n", d.ID, d.Channel, nextAttempt(d, time.Now()))
				return err
			}
			ctx := cmd.Context()
			if timeout > 0 {
				var cancel context.CancelFunc
				ctx, cancel = context.WithTimeout(ctx, timeout)
				defer cancel()
			}
			final, err := waitDelivery(ctx, c, d, poll, newWaitProgress(cmd.ErrOrStderr(), isTerminal(cmd.ErrOrStderr())))
			if err != nil {
				return fmt.Errorf("stopped waiting for delivery %s (it goes on; see opsconductor notify delivery show %s): %w", d.ID, d.ID, err)
			}
			if f.json {
				err = printJSON(out, final)
			} else {
				err = printOutcome(out, "delivery", final)
			}
			if err != nil {
				return err
			}
			if final.State != apiclient.DeliveryDelivered {
				return exitCodeError{1}
			}
			return nil
		}),
	}
	cmd.Flags().BoolVar(&wait, "wait", false, "wait until it is delivered or dead, showing each attempt")
	cmd.Flags().DurationVar(&poll, "poll", 500*time.Millisecond, "with --wait: how often to ask for the delivery")
	cmd.Flags().DurationVar(&timeout, "timeout", 0, "with --wait: give up waiting after this long (default: no limit)")
	return cmd
}

// waitDelivery asks for the delivery every poll until it is no longer
// pending, showing where it is.
func waitDelivery(ctx context.Context, c *apiclient.Client, d apiclient.NotifyDelivery, poll time.Duration, show func(apiclient.NotifyDelivery)) (apiclient.NotifyDelivery, error) {
	for d.State == apiclient.DeliveryPending {
		show(d)
		t := time.NewTimer(poll)
		select {
		case <-ctx.Done():
			t.Stop()
			return d, fmt.Errorf("%w (last: %s)", ctx.Err(), nextAttempt(d, time.Now()))
		case <-t.C:
		}
		next, err := c.GetNotifyDelivery(ctx, d.ID)
		if err != nil {
			return d, err
		}
		d = next
	}
	show(d)
	return d, nil
}

// waitProgress shows "waiting for delivery dlv_… — attempt 2 of 8, next
// in 3s": redrawn in place on a terminal, a line per attempt otherwise.
type waitProgress struct {
	w     io.Writer
	tty   bool
	last  string
	drawn bool
}

func newWaitProgress(w io.Writer, tty bool) func(apiclient.NotifyDelivery) {
	p := &waitProgress{w: w, tty: tty}
	return p.show
}

func (p *waitProgress) show(d apiclient.NotifyDelivery) {
	if d.State != apiclient.DeliveryPending {
		if p.tty && p.drawn {
			fmt.Fprint(p.w, "\r\x1b[K")
		}
		return
	}
	line := fmt.Sprintf("waiting for delivery %s — %s", d.ID, nextAttempt(d, time.Now()))
	if p.tty {
		if line != p.last {
			fmt.Fprint(p.w, "\r\x1b[K"+line)
			p.drawn = true
		}
		p.last = line
		return
	}
	// Off a terminal, one line per attempt: the countdown would repeat it.
	key := fmt.Sprintf("%d/%d", d.Attempts, d.MaxAttempts)
	if key != p.last {
		fmt.Fprintln(p.w, line)
		p.last = key
	}
}
