package session

import (
	"crypto/ecdsa"
	"time"

	"google.golang.org/grpc"

	"github.com/opsconductor/opsconductor/agent/enroll"
	agentv1 "github.com/opsconductor/opsconductor/proto/agent/v1"
)

// renewal is the state of the certificate's rotation: the key of the
// request in flight, and whether cached connections must be redialled to
// present a renewed certificate.
type renewal struct {
	key    *ecdsa.PrivateKey
	sentAt time.Time
	redial bool
}

// requestRenewal sends a CertificateRequest for a fresh key once the
// current certificate has used two thirds of its life, unless a request
// went out less than RenewCheck ago. Only a failed Send is returned: a
// renewal that cannot be prepared is logged and tried at the next check,
// and never ends the stream.
func (s *Session) requestRenewal(stream grpc.BidiStreamingClient[agentv1.AgentMessage, agentv1.ControllerMessage]) error {
	id := s.cfg.Identity
	if id.DataDir == "" || time.Now().Before(id.RenewAt()) {
		return nil
	}
	if s.renew.key != nil && time.Since(s.renew.sentAt) < s.cfg.RenewCheck {
		return nil
	}
	key, csr, err := enroll.NewRenewalRequest(id.Name)
	if err != nil {
		s.log.Warn("certificate renewal not requested; retrying later", "error", err)
		return nil
	}
	s.renew.key, s.renew.sentAt = key, time.Now()
	s.log.Info("requesting a new certificate", "renew_at", id.RenewAt())
	return stream.Send(&agentv1.AgentMessage{Msg: &agentv1.AgentMessage_CertificateRequest{
		CertificateRequest: &agentv1.CertificateRequest{CsrDer: csr}}})
}

// installRenewed checks and stores a certificate the controller issued
// for the key in flight; the next connection presents it. A failure is
// logged, and the next check asks again with a new key.
func (s *Session) installRenewed(c *agentv1.CertificateIssued) {
	key := s.renew.key
	if key == nil {
		s.log.Warn("ignoring a certificate this agent did not request")
		return
	}
	if err := s.cfg.Identity.InstallRenewed(key, c.GetCertificateDer()); err != nil {
		// The key stays in flight until a good answer or the next request.
		s.log.Warn("certificate renewal failed; retrying later", "error", err)
		return
	}
	s.renew.key, s.renew.redial = nil, true
	s.update(func(st *Status) { st.Renewals++ })
	s.log.Info("certificate renewed", "not_after", c.GetNotAfter().AsTime(), "renew_at", s.cfg.Identity.RenewAt())
}
