package agentrpc

import (
	"context"
	"log/slog"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	agentv1 "github.com/opsconductor/opsconductor/proto/agent/v1"
)

// renewInterval is the least time between two renewals of one agent's
// certificate: an agent that asks in a loop costs one signature and one
// Raft entry a minute, no more.
const renewInterval = time.Minute

// renewCert answers a CertificateRequest on a live stream: it signs a
// new certificate for the stream's agent (never another ID: the ID comes
// from the verified peer certificate), commits its serial and expiry,
// and only then sends it. Every refusal is logged and answered with
// nothing; the agent tries again later with its current certificate.
func (s *Service) renewCert(ctx context.Context, ls *liveStream, req *agentv1.CertificateRequest, log *slog.Logger) {
	id := ls.agentID
	csr, err := checkCSR(req.GetCsrDer())
	if err != nil {
		log.Warn("certificate renewal refused", "reason", err.Error())
		return
	}
	now := s.now()
	s.renewMu.Lock()
	last, seen := s.renewedAt[id]
	if seen && now.Sub(last) < renewInterval {
		s.renewMu.Unlock()
		log.Warn("certificate renewal refused", "reason", "renewed less than a minute ago", "last_renewal", last)
		return
	}
	s.renewedAt[id] = now
	s.renewMu.Unlock()

	a, err := s.authority()
	if err != nil {
		log.Warn("certificate renewal failed", "error", err)
		return
	}
	cert, err := a.signAgentCert(id, csr, now, s.cfg.CertTTL)
	if err != nil {
		log.Warn("certificate renewal failed", "error", err)
		return
	}
	// The FSM refuses a revoked agent, so a certificate is never sent to
	// one revoked since its stream opened.
	var row Agent
	if err := s.apply(ctx, cmdAgentCert, agentCertPayload{ID: id, CertSerial: cert.SerialNumber.Text(16), CertNotAfter: cert.NotAfter}, &row); err != nil {
		log.Warn("certificate renewal not committed", "error", err)
		return
	}
	ls.enqueue(&agentv1.ControllerMessage{Msg: &agentv1.ControllerMessage_Certificate{Certificate: &agentv1.CertificateIssued{
		CertificateDer: cert.Raw, NotAfter: timestamppb.New(cert.NotAfter)}}})
	log.Info("agent certificate renewed", "cert_serial", row.CertSerial, "not_after", cert.NotAfter)
}
