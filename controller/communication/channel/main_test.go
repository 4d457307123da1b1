package channel

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain fails the package if a test leaves a goroutine behind: an SMTP
// or HTTP server not shut down, or a Sender whose connections stay open.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// newTestSender is NewSender whose kept-alive connections close with the test.
func newTestSender(t testing.TB) *Sender {
	s := NewSender()
	t.Cleanup(s.CloseIdle)
	return s
}
