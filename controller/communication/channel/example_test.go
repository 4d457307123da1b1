package channel_test

import (
	"fmt"
	"io"
	"net/http"
	"time"

	"github.com/opsconductor/opsconductor/controller/communication/channel"
)

// A receiver of OpsConductor webhooks checks the signature and the
// timestamp before it trusts the body, and drops deliveries whose
// Idempotency-Key it has already handled.
func ExampleVerifySignature() {
	secret := "the channel's secret"
	handler := func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(io.LimitReader(r.Body, 1<<20))
		if err != nil {
			http.Error(w, "read error", http.StatusBadRequest)
			return
		}
		err = channel.VerifySignature(secret, r.Header.Get(channel.HeaderTimestamp), body,
			r.Header.Get(channel.HeaderSignature), time.Now(), 5*time.Minute)
		if err != nil {
			http.Error(w, err.Error(), http.StatusUnauthorized)
			return
		}
		// ... skip if r.Header.Get(channel.HeaderIdempotencyKey) was seen ...
		w.WriteHeader(http.StatusNoContent)
	}
	_ = handler

	// What the sender computes for a body sent at Unix time 1700000000:
	fmt.Println(channel.Sign("key", "1700000000", []byte("{}")))
	// Output: sha256=9d713ed406bb7076d4123f0dc2c39d2df5c654ed4b0cd56b52c8b4c940bd63ae
}
