package inbound_test

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"

	"github.com/opsconductor/opsconductor/controller/communication/inbound"
)

type keyring map[string]string

func (k keyring) Secret(_ context.Context, ref string) (string, error) { return k[ref], nil }

// A GitHub push to main starts the deploy job with the pushed commit.
func ExampleHandler_Handle() {
	trig := inbound.Trigger{
		ID: "deploy-on-push", Name: "Deploy on push", Job: "deploy",
		Auth: inbound.AuthHMACGitHub, SecretRef: "github-deploy-hook", Enabled: true,
		Filter:   `headers["x-github-event"] == "push" && payload.ref == "refs/heads/main"`,
		ParamMap: map[string]string{"commit": "payload.after", "repository": "payload.repository.full_name"},
	}
	if err := trig.Validate(); err != nil {
		fmt.Println(err)
		return
	}
	h, err := inbound.NewHandler(inbound.Config{Secrets: keyring{"github-deploy-hook": "It's a Secret to Everybody"}})
	if err != nil {
		fmt.Println(err)
		return
	}

	body := `{"ref":"refs/heads/main","after":"9f3c2e1","repository":{"full_name":"acme/shop"}}`
	mac := hmac.New(sha256.New, []byte("It's a Secret to Everybody"))
	mac.Write([]byte(body))
	req := httptest.NewRequest(http.MethodPost, "/api/v1/hooks/deploy-on-push", strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("X-GitHub-Event", "push")
	req.Header.Set("X-GitHub-Delivery", "72d3162e-cc78-11e3-81ab-4c9367dc0958")
	req.Header.Set("X-Hub-Signature-256", "sha256="+hex.EncodeToString(mac.Sum(nil)))

	out, err := h.Handle(context.Background(), trig, req)
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(out.DeliveryID, out.Skipped, out.Params["commit"], out.Params["repository"])
	// Output: 72d3162e-cc78-11e3-81ab-4c9367dc0958 false 9f3c2e1 acme/shop
}
