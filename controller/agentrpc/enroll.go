package agentrpc

import (
	"context"
	"crypto/x509"
	"errors"
	"maps"
	"slices"
	"strings"

	"github.com/opsconductor/opsconductor/controller/problem"
)

// EnrollRequest is what an agent sends to enrol (the proto message,
// decoded).
type EnrollRequest struct {
	Token   string
	CSRDER  []byte
	Name    string
	Tags    map[string]string
	Version string
	Facts   Facts
}

// Enrolled is what an agent receives.
type Enrolled struct {
	Agent   Agent
	CertDER []byte
	CADER   []byte
}

// errBadToken is the one answer for every refused join token, so that a
// caller cannot tell an unknown token from an expired, used-up or revoked
// one. The reason goes to the log.
var errBadToken = problem.New(problem.KindUnauthenticated, "join_token_invalid",
	"the join token is invalid, expired, used up or revoked: create a new one with `opsconductor agent join-token create`")

// Enroll checks the join token and the CSR, signs the agent's certificate
// and commits the agent. The token's use is counted in the FSM.
func (s *Service) Enroll(ctx context.Context, req EnrollRequest, peer string) (Enrolled, error) {
	log := s.log.With("peer", peer)
	tokenID, secret, err := parseJoinToken(req.Token)
	if err != nil {
		log.Warn("enrolment refused", "reason", "malformed token: "+err.Error())
		return Enrolled{}, errBadToken
	}
	log = log.With("join_token_id", tokenID)
	var errs problem.List
	csr, err := checkCSR(req.CSRDER)
	if err != nil {
		errs.Add("csr_der", "%s", strings.TrimPrefix(err.Error(), "csr_der: "))
	}
	for _, msg := range validateTags("tags", req.Tags) {
		path, m, _ := strings.Cut(msg, ": ")
		errs.Add(path, "%s", m)
	}
	if len(req.Name) > 255 {
		errs.Add("name", "at most 255 characters")
	}
	if err := errs.Err(); err != nil {
		log.Warn("enrolment refused", "reason", err.Error())
		return Enrolled{}, err
	}
	a, err := s.authority()
	if err != nil {
		return Enrolled{}, err
	}
	id, err := newAgentID()
	if err != nil {
		return Enrolled{}, err
	}
	name := sanitizeName(req.Name)
	if name == "" {
		name = sanitizeName(req.Facts.Hostname)
	}
	if name == "" {
		name = "agent"
	}
	cert, err := a.signAgentCert(id, csr, s.now(), s.cfg.CertTTL)
	if err != nil {
		return Enrolled{}, err
	}
	facts := req.Facts
	facts.Addresses = slices.Clone(facts.Addresses)
	facts.Extra = maps.Clone(facts.Extra)
	row := Agent{ID: id, Name: name, Tags: maps.Clone(req.Tags), Facts: facts, Version: req.Version,
		CertSerial: cert.SerialNumber.Text(16), CertNotAfter: cert.NotAfter}
	var res enrollResult
	if err := s.apply(ctx, cmdEnroll, enrollPayload{TokenID: tokenID, SecretHash: hashSecret(secret), Agent: row}, &res); err != nil {
		return Enrolled{}, err
	}
	if res.Outcome != enrollOK {
		log.Warn("enrolment refused", "reason", res.Reason)
		return Enrolled{}, errBadToken
	}
	log.Info("agent enrolled", "agent_id", res.Agent.ID, "name", res.Agent.Name, "not_after", cert.NotAfter)
	return Enrolled{Agent: res.Agent, CertDER: cert.Raw, CADER: a.der}, nil
}

func mustParse(der []byte) *x509.Certificate {
	c, err := x509.ParseCertificate(der)
	if err != nil {
		panic(errors.New("agentrpc: a certificate this process made does not parse"))
	}
	return c
}

func sortNewestFirst(items []JoinTokenView) {
	slices.SortFunc(items, func(a, b JoinTokenView) int {
		if c := b.CreatedAt.Compare(a.CreatedAt); c != 0 {
			return c
		}
		return strings.Compare(a.ID, b.ID)
	})
}
