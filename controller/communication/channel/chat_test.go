package channel

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"unicode/utf8"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/")

var chatMessage = Message{
	Subject:    "Run #42 failed — nightly-backup",
	Text:       "Step *dump* failed on db-1 (exit 2).\nOutput: <!channel> & more @here",
	DeliveryID: "dlv-7",
	Event:      "run.failed",
}

// golden compares got with testdata/name, or rewrites it under -update.
func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("read golden file (run with -update to create it): %v", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s differs from the golden file:\n got: %s\nwant: %s", name, got, want)
	}
}

func TestChatPayloadsMatchTheGoldenFiles(t *testing.T) {
	for _, flavor := range []ChatFlavor{FlavorSlack, FlavorMattermost, FlavorTeams} {
		t.Run(string(flavor), func(t *testing.T) {
			raw, err := ChatPayload(flavor, chatMessage)
			if err != nil {
				t.Fatal(err)
			}
			var out bytes.Buffer
			if err := json.Indent(&out, raw, "", "  "); err != nil {
				t.Fatal(err)
			}
			out.WriteByte('\n')
			golden(t, filepath.Join("chat", string(flavor)+".json"), out.Bytes())
		})
	}
}

func TestChatPayloadsCutLongTextWithinTheServiceLimits(t *testing.T) {
	long := Message{Subject: strings.Repeat("é", 400), Text: strings.Repeat("ü", 50_000)}
	raw, err := ChatPayload(FlavorSlack, long)
	if err != nil {
		t.Fatal(err)
	}
	var p slackMessage
	if err := json.Unmarshal(raw, &p); err != nil {
		t.Fatal(err)
	}
	if n := utf8.RuneCountInString(p.Blocks[0].Text.Text); n != slackHeaderMax {
		t.Errorf("header has %d runes, want %d", n, slackHeaderMax)
	}
	if n := utf8.RuneCountInString(p.Blocks[1].Text.Text); n != slackSectionMax || !strings.HasSuffix(p.Blocks[1].Text.Text, truncationMarker) {
		t.Errorf("section has %d runes (want %d ending in the marker)", n, slackSectionMax)
	}
	if !utf8.ValidString(p.Text) {
		t.Error("fallback text is not valid UTF-8 after cutting")
	}
}

func TestChatIsPostedUnsigned(t *testing.T) {
	got := make(chan *http.Request, 1)
	bodies := make(chan []byte, 1)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		got <- r
		bodies <- b
		_, _ = io.WriteString(w, "ok")
	}))
	defer srv.Close()
	cfg := Config{Kind: KindChat, Chat: &ChatConfig{Flavor: FlavorMattermost, URL: srv.URL + "/hooks/abc"}}
	r := newTestSender(t).Send(context.Background(), cfg, "ignored", chatMessage)
	if r.Err != nil || r.Code != 200 {
		t.Fatalf("Send = %+v, want 200", r)
	}
	req, body := <-got, <-bodies
	if req.Header.Get(HeaderSignature) != "" || req.Header.Get(HeaderTimestamp) != "" {
		t.Error("chat request carries the webhook signature headers")
	}
	want, _ := ChatPayload(FlavorMattermost, chatMessage)
	if !bytes.Equal(body, want) {
		t.Errorf("body = %s, want %s", body, want)
	}
}
