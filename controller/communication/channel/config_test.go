package channel

import (
	"encoding/json"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/opsconductor/opsconductor/controller/problem"
)

// problemFields lists the field paths of every problem in err.
func problemFields(t *testing.T, err error) []string {
	t.Helper()
	if err == nil {
		return nil
	}
	p, ok := problem.As(err)
	if !ok {
		t.Fatalf("error %v is not a problem", err)
	}
	if p.Kind != problem.KindInvalid {
		t.Errorf("problem kind = %s, want invalid", p.Kind)
	}
	if len(p.Details) == 0 {
		return []string{p.Field}
	}
	var out []string
	for _, d := range p.Details {
		out = append(out, d.Field)
	}
	return out
}

func TestDecodeConfigReportsEveryProblemWithItsField(t *testing.T) {
	cases := []struct {
		name string
		json string
		want []string // field paths, in order; nil means valid
	}{
		{name: "a STARTTLS mail channel is valid",
			json: `{"kind":"email","email":{"host":"smtp.example.com","port":587,"tls":"starttls","username":"u","from":"ops@example.com","to":["a@example.com"],"cc":["b@example.com"],"template":"run-failed/email","timeout":"30s"}}`},
		{name: "clear text to localhost is valid",
			json: `{"kind":"email","email":{"host":"localhost","port":25,"tls":"none","from":"ops@example.com","to":["a@example.com"]}}`},
		{name: "clear text to ::1 is valid",
			json: `{"kind":"email","email":{"host":"::1","port":25,"tls":"none","from":"ops@example.com","to":["a@example.com"]}}`},
		{name: "a webhook with custom headers is valid",
			json: `{"kind":"webhook","webhook":{"url":"https://hooks.example.com/x?a=1","headers":{"Authorization":"Bearer t","X-Team":"ops"},"timeout":"5s"}}`},
		{name: "a Teams chat channel is valid",
			json: `{"kind":"chat","chat":{"flavor":"teams","url":"https://prod.example.logic.azure.com/workflows/1"}}`},
		{name: "a mail channel with every field wrong names each field",
			json: `{"kind":"email","email":{"host":"bad host!","port":70000,"tls":"sometimes","from":"not-an-address","to":[],"cc":["x"],"template":"a b","timeout":"1h"}}`,
			want: []string{"email.host", "email.port", "email.tls", "email.from", "email.to", "email.cc[0]", "email.template", "email.timeout"}},
		{name: "clear text to a remote relay is refused",
			json: `{"kind":"email","email":{"host":"smtp.example.com","port":25,"tls":"none","from":"ops@example.com","to":["a@example.com"]}}`,
			want: []string{"email.tls"}},
		{name: "a bad recipient is named by its index",
			json: `{"kind":"email","email":{"host":"smtp.example.com","port":465,"tls":"implicit","from":"ops@example.com","to":["a@example.com","nope"]}}`,
			want: []string{"email.to[1]"}},
		{name: "a header injection in an address is refused",
			json: `{"kind":"email","email":{"host":"smtp.example.com","port":465,"tls":"implicit","from":"ops@example.com\r\nBcc: x@evil.example","to":["a@example.com"]}}`,
			want: []string{"email.from"}},
		{name: "a webhook to another scheme is refused",
			json: `{"kind":"webhook","webhook":{"url":"file:///etc/passwd"}}`,
			want: []string{"webhook.url"}},
		{name: "a webhook URL with credentials is refused",
			json: `{"kind":"webhook","webhook":{"url":"https://user:pw@hooks.example.com/"}}`,
			want: []string{"webhook.url"}},
		{name: "hop-by-hop, reserved and malformed headers are refused",
			json: `{"kind":"webhook","webhook":{"url":"https://h.example.com","headers":{"Connection":"close","Transfer-Encoding":"chunked","X-OpsConductor-Signature":"sha256=0","idempotency-key":"x","Bad Name":"v","X-Split":"a\r\nb"}}}`,
			want: []string{`webhook.headers["Bad Name"]`, `webhook.headers["Connection"]`, `webhook.headers["Transfer-Encoding"]`,
				`webhook.headers["X-OpsConductor-Signature"]`, `webhook.headers["X-Split"]`, `webhook.headers["idempotency-key"]`}},
		{name: "a chat channel needs a known flavor and a URL",
			json: `{"kind":"chat","chat":{"flavor":"irc"}}`,
			want: []string{"chat.flavor", "chat.url"}},
		{name: "the kind is required",
			json: `{}`,
			want: []string{"kind"}},
		{name: "an unknown kind is refused",
			json: `{"kind":"pager"}`,
			want: []string{"kind"}},
		{name: "the section of the kind is required",
			json: `{"kind":"webhook"}`,
			want: []string{"webhook"}},
		{name: "a second section is refused",
			json: `{"kind":"chat","chat":{"flavor":"slack","url":"https://hooks.slack.com/services/T/B/X"},"webhook":{"url":"https://x.example.com"}}`,
			want: []string{"kind"}},
		{name: "an unknown field is named",
			json: `{"kind":"email","email":{"hots":"x"}}`,
			want: []string{"hots"}},
		{name: "a timeout that is not a duration is named by its path",
			json: `{"kind":"webhook","webhook":{"url":"https://h.example.com","timeout":"soon"}}`,
			want: []string{"webhook.timeout"}},
		{name: "a numeric timeout is named by its path",
			json: `{"kind":"chat","chat":{"flavor":"slack","url":"https://h.example.com","timeout":30}}`,
			want: []string{"chat.timeout"}},
		{name: "an unknown kind with a section reports the kind once",
			json: `{"kind":"pager","chat":{"flavor":"slack","url":"https://h.example.com"}}`,
			want: []string{"kind"}},
		{name: "a wrong type is named by its path",
			json: `{"kind":"email","email":{"port":"25"}}`,
			want: []string{"email.port"}},
		{name: "a password in the configuration is an unknown field",
			json: `{"kind":"email","email":{"host":"h","port":25,"tls":"none","from":"a@b.c","to":["a@b.c"],"password":"x"}}`,
			want: []string{"password"}},
		{name: "trailing data is refused",
			json: `{"kind":"chat","chat":{"flavor":"slack","url":"https://h.example.com"}} {}`,
			want: []string{""}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := DecodeConfig([]byte(tc.json))
			got := problemFields(t, err)
			if !slices.Equal(got, tc.want) {
				t.Errorf("problem fields = %q, want %q (error: %v)", got, tc.want, err)
			}
		})
	}
}

func TestConfigRoundTripsThroughJSON(t *testing.T) {
	in := Config{Kind: KindWebhook, Webhook: &WebhookConfig{URL: "https://h.example.com/x",
		Headers: map[string]string{"X-A": "1"}, Timeout: Duration(3 * time.Second)}}
	data, err := json.Marshal(in)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(data), `"timeout":"3s"`) {
		t.Errorf("timeout not written as text: %s", data)
	}
	out, err := DecodeConfig(data)
	if err != nil {
		t.Fatal(err)
	}
	if out.Timeout() != 3*time.Second || out.Webhook.URL != in.Webhook.URL || out.Webhook.Headers["X-A"] != "1" {
		t.Errorf("round trip = %+v, want %+v", out.Webhook, in.Webhook)
	}
	if got := (Config{Kind: KindChat, Chat: &ChatConfig{}}).Timeout(); got != DefaultTimeout {
		t.Errorf("default timeout = %s, want %s", got, DefaultTimeout)
	}
}

func FuzzConfig(f *testing.F) {
	for _, seed := range []string{
		`{"kind":"email","email":{"host":"smtp.example.com","port":587,"tls":"starttls","from":"ops@example.com","to":["a@example.com"]}}`,
		`{"kind":"webhook","webhook":{"url":"https://h.example.com","headers":{"X-A":"1"},"timeout":"5s"}}`,
		`{"kind":"chat","chat":{"flavor":"slack","url":"https://hooks.slack.com/services/T/B/X"}}`,
		`{"kind":"webhook","webhook":{"url":"http://[::1]:80/%zz","headers":{"Connection":"x"}}}`,
		`{"kind":"email","email":{"host":"::1","port":25,"tls":"none","from":"\"A\" <a@b>","to":["<@>"],"timeout":"-1s"}}`,
		`{"kind":"chat","chat":{"flavor":"teams","url":"https://x","timeout":"9999999999h"}}`,
		`[]`, `null`, `{"kind":1}`, ``,
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		cfg, err := DecodeConfig(data)
		if err != nil {
			if _, ok := problem.As(err); !ok {
				t.Fatalf("DecodeConfig error %v is not a problem", err)
			}
			return
		}
		// What was accepted must validate again, survive a round trip and
		// stay within the limits Send relies on.
		if err := cfg.Validate(); err != nil {
			t.Fatalf("accepted config fails Validate: %v", err)
		}
		again, err := json.Marshal(cfg)
		if err != nil {
			t.Fatalf("marshal accepted config: %v", err)
		}
		if _, err := DecodeConfig(again); err != nil {
			t.Fatalf("accepted config %s does not decode again: %v", again, err)
		}
		if d := cfg.Timeout(); d <= 0 || d > MaxTimeout {
			t.Fatalf("timeout %s outside (0, %s]", d, MaxTimeout)
		}
	})
}
