package agentrpc

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/keepalive"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/opsconductor/opsconductor/controller/problem"
	agentv1 "github.com/opsconductor/opsconductor/proto/agent/v1"
)

// enrollMethod is the one method a peer may call without a certificate.
const enrollMethod = "/opsconductor.agent.v1.AgentService/Enroll"

// TLSConfig is the agent listener's TLS: 1.3 only, the listener
// certificate with the CA as its chain, and client certificates verified
// against the agent CA when given (Enroll comes without one). It reads the
// CA per handshake, so a listener started before the leader made the CA
// begins to serve once it exists. Session tickets are sealed with keys
// the whole cluster shares (tickets.go), so reconnecting agents resume.
func (s *Service) TLSConfig() *tls.Config {
	return &tls.Config{
		MinVersion: tls.VersionTLS13,
		GetConfigForClient: func(*tls.ClientHelloInfo) (*tls.Config, error) {
			a, err := s.authority()
			if err != nil {
				return nil, err
			}
			tk, err := s.tickets(a)
			if err != nil {
				return nil, err
			}
			keys, err := tk.at(s.now())
			if err != nil {
				return nil, err
			}
			cfg := &tls.Config{
				MinVersion:   tls.VersionTLS13,
				Certificates: []tls.Certificate{*a.server},
				ClientAuth:   tls.VerifyClientCertIfGiven,
				ClientCAs:    a.pool,
				NextProtos:   []string{"h2"},
			}
			cfg.SetSessionTicketKeys(keys)
			return cfg, nil
		},
	}
}

// tickets returns the session ticket keys of the opened CA a.
func (s *Service) tickets(a *authority) (*ticketKeys, error) {
	a.ticketsOnce.Do(func() {
		keyBytes, err := a.key.Bytes()
		if err != nil {
			a.ticketsErr = fmt.Errorf("session ticket secret: %w", err)
			return
		}
		a.tickets = newTicketKeys(keyBytes)
	})
	return a.tickets, a.ticketsErr
}

// Serve runs the gRPC server on ln until ctx ends, then stops it
// gracefully, cutting streams that outlive the grace period.
func (s *Service) Serve(ctx context.Context, ln net.Listener, grace time.Duration) error {
	srv := grpc.NewServer(
		grpc.Creds(credentials.NewTLS(s.TLSConfig())),
		grpc.UnaryInterceptor(s.unaryAuth),
		grpc.StreamInterceptor(s.streamAuth),
		grpc.MaxRecvMsgSize(4<<20),
		// No read buffer of gRPC's own: the connection is a tls.Conn,
		// which already reads whole records into its buffer, so the
		// default 32 KiB bufio.Reader per connection only added a copy,
		// and 320 MiB at 10,000 idle agents (bench/agentidle). Writes
		// use gRPC's shared write buffer (the default), held only while
		// a connection flushes.
		grpc.ReadBufferSize(0),
		// Agents ping every 30 s so that a controller host that vanished
		// without closing TCP is noticed; gRPC's default policy (one ping
		// per 5 min) would answer those pings with GOAWAY too_many_pings.
		grpc.KeepaliveEnforcementPolicy(keepalive.EnforcementPolicy{MinTime: 20 * time.Second, PermitWithoutStream: true}),
		// And the controller pings idle agents, to drop dead connections.
		grpc.KeepaliveParams(keepalive.ServerParameters{Time: time.Minute, Timeout: 20 * time.Second}),
	)
	agentv1.RegisterAgentServiceServer(srv, &rpcServer{svc: s})
	done := make(chan struct{})
	stopped := make(chan struct{})
	go func() {
		defer close(stopped)
		select {
		case <-ctx.Done():
		case <-done:
			return
		}
		// Agent streams never end on their own: close them so that
		// agents move to another controller while unary calls finish.
		s.reg.stopLeading(errShutdown)
		t := time.AfterFunc(grace, srv.Stop)
		srv.GracefulStop()
		t.Stop()
	}()
	err := srv.Serve(ln)
	close(done)
	<-stopped
	if errors.Is(err, grpc.ErrServerStopped) {
		err = nil
	}
	return err
}

func (s *Service) unaryAuth(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
	if info.FullMethod != enrollMethod {
		if err := s.authenticate(ctx); err != nil {
			return nil, err
		}
	}
	return handler(ctx, req)
}

func (s *Service) streamAuth(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
	if info.FullMethod != enrollMethod {
		if err := s.authenticate(ss.Context()); err != nil {
			return err
		}
	}
	return handler(srv, ss)
}

// authenticate accepts a peer whose verified certificate names a known,
// non-revoked agent.
func (s *Service) authenticate(ctx context.Context) error {
	p, ok := peer.FromContext(ctx)
	if !ok {
		return status.Error(codes.Unauthenticated, "no peer information")
	}
	info, ok := p.AuthInfo.(credentials.TLSInfo)
	if !ok || len(info.State.VerifiedChains) == 0 || len(info.State.VerifiedChains[0]) == 0 {
		return status.Error(codes.Unauthenticated, "a client certificate from the agent CA is required: enrol with `opsconductor-agent join` first")
	}
	id, ok := agentIDFromCert(info.State.VerifiedChains[0][0])
	if !ok {
		return status.Error(codes.Unauthenticated, "the client certificate names no agent")
	}
	// A controller that has not yet replayed its state (just restarted,
	// or catching up) would find no agent at all and refuse every one
	// as revoked; it asks them to retry instead.
	if s.ready != nil {
		if err := s.ready(); err != nil {
			return status.Errorf(codes.Unavailable, "this controller is not ready yet (%v): retry", err)
		}
	}
	if _, err := s.agentKnown(id); err != nil {
		s.log.Warn("agent refused", "agent_id", id, "peer", p.Addr.String(), "reason", err.Error())
		return status.Errorf(codes.PermissionDenied, "agent %s is revoked or unknown: enrol it again", id)
	}
	return nil
}

// rpcServer is the AgentService implementation.
type rpcServer struct {
	agentv1.UnimplementedAgentServiceServer
	svc *Service
}

func (r *rpcServer) Enroll(ctx context.Context, req *agentv1.EnrollRequest) (*agentv1.EnrollResponse, error) {
	addr := ""
	if p, ok := peer.FromContext(ctx); ok {
		addr = p.Addr.String()
	}
	f := req.GetFacts()
	res, err := r.svc.Enroll(ctx, EnrollRequest{
		Token: req.GetToken(), CSRDER: req.GetCsrDer(), Name: req.GetName(), Tags: req.GetTags(), Version: req.GetVersion(),
		Facts: Facts{Hostname: f.GetHostname(), OS: f.GetOs(), OSVersion: f.GetOsVersion(), Kernel: f.GetKernel(), Arch: f.GetArch(),
			CPUs: int(f.GetCpus()), MemoryBytes: f.GetMemoryBytes(), Addresses: f.GetAddresses(), Extra: f.GetExtra()},
	}, addr)
	if err != nil {
		if _, ok := problem.As(err); !ok {
			r.svc.log.Error("enrolment failed", "peer", addr, "error", err)
		}
		return nil, grpcError(err)
	}
	return &agentv1.EnrollResponse{AgentId: res.Agent.ID, Name: res.Agent.Name, CertificateDer: res.CertDER, CaDer: res.CADER,
		NotAfter: timestamppb.New(res.Agent.CertNotAfter)}, nil
}

func (r *rpcServer) Connect(stream agentv1.AgentService_ConnectServer) error {
	return r.svc.connect(stream)
}

// grpcError maps a domain error onto a gRPC status; anything not a
// problem is internal and its detail stays in the log.
func grpcError(err error) error {
	p, ok := problem.As(err)
	if !ok {
		if errors.Is(err, context.DeadlineExceeded) {
			return status.Error(codes.DeadlineExceeded, "the controller did not answer in time; try again")
		}
		return status.Error(codes.Internal, "internal error; the controller log has the detail")
	}
	code := codes.Internal
	switch p.Kind {
	case problem.KindInvalid, problem.KindTooLarge, problem.KindUnsupported:
		code = codes.InvalidArgument
	case problem.KindUnauthenticated:
		code = codes.Unauthenticated
	case problem.KindForbidden:
		code = codes.PermissionDenied
	case problem.KindNotFound:
		code = codes.NotFound
	case problem.KindConflict:
		code = codes.AlreadyExists
	case problem.KindRateLimited:
		code = codes.ResourceExhausted
	case problem.KindUnavailable:
		code = codes.Unavailable
	case problem.KindTimeout:
		code = codes.DeadlineExceeded
	}
	return status.Error(code, p.Error())
}
