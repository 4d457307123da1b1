package server

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"net/http"
	"path/filepath"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"

	"github.com/opsconductor/opsconductor/controller/apiclient"
	"github.com/opsconductor/opsconductor/controller/cluster"
	"github.com/opsconductor/opsconductor/controller/config"
	"github.com/opsconductor/opsconductor/controller/history/postgres/pgtest"
	agentv1 "github.com/opsconductor/opsconductor/proto/agent/v1"
)

// startCluster runs three real controllers sharing one cluster CA and one
// PostgreSQL history store (skipped without one): the first bootstraps,
// the others join it.
func startCluster(t *testing.T) []*running {
	t.Helper()
	history := pgtest.NewDatabase(t) // several controllers share one history store
	caDir := t.TempDir()
	if _, err := cluster.CreateCA(caDir); err != nil {
		t.Fatal(err)
	}
	cfg := func() config.Server {
		c := testConfig(t.TempDir())
		c.TLSCACert, c.TLSCAKey = filepath.Join(caDir, cluster.CAFileName), filepath.Join(caDir, cluster.CAKeyFileName)
		c.Advertise, c.History = "127.0.0.1", history
		return c
	}
	first := start(t, cfg())
	nodes := []*running{first}
	for range 2 {
		c := cfg()
		c.RetryJoin = []string{first.ready.RaftAddr}
		nodes = append(nodes, start(t, c))
	}
	return nodes
}

// dialAgent connects to an agent listener as the enrolled agent (or, with
// no certificate, to enrol); the listener's certificate is not checked
// here, the agent runtime's pin check is tested elsewhere.
func dialAgent(t *testing.T, addr string, cert *tls.Certificate) agentv1.AgentServiceClient {
	t.Helper()
	cfg := &tls.Config{InsecureSkipVerify: true, MinVersion: tls.VersionTLS13}
	if cert != nil {
		cfg.Certificates = []tls.Certificate{*cert}
	}
	conn, err := grpc.NewClient("passthrough:///"+addr, grpc.WithTransportCredentials(credentials.NewTLS(cfg)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return agentv1.NewAgentServiceClient(conn)
}

// say opens a stream, says hello and returns the controller's answer.
func say(t *testing.T, addr, id string, cert *tls.Certificate) (agentv1.AgentService_ConnectClient, *agentv1.ControllerMessage, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	stream, err := dialAgent(t, addr, cert).Connect(ctx)
	if err != nil {
		return nil, nil, err
	}
	if err := stream.Send(&agentv1.AgentMessage{Msg: &agentv1.AgentMessage_Hello{Hello: &agentv1.Hello{AgentId: id, Version: "1.0.0"}}}); err != nil {
		return nil, nil, err
	}
	m, err := stream.Recv()
	return stream, m, err
}

func TestAgentStreamsFollowTheLeaderAcrossAFailover(t *testing.T) {
	nodes := startCluster(t)
	ctx := context.Background()
	tok, err := nodes[0].client.CreateJoinToken(ctx, apiclient.CreateJoinTokenRequest{})
	if err != nil {
		t.Fatal(err)
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	csr, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{}, key)
	if err != nil {
		t.Fatal(err)
	}
	// Enrol through a follower or the leader alike.
	var enrolled *agentv1.EnrollResponse
	waitUntil(t, "the agent CA to replicate and enrolment to succeed", func() bool {
		enrolled, err = dialAgent(t, nodes[2].ready.AgentAddr, nil).Enroll(ctx, &agentv1.EnrollRequest{Token: tok.Token, CsrDer: csr, Name: "web01"})
		return err == nil
	})
	cert := &tls.Certificate{Certificate: [][]byte{enrolled.CertificateDer}, PrivateKey: key}
	id := enrolled.AgentId

	// Every node either welcomes the agent (the leader) or redirects it
	// to the leader's agent address.
	byID := map[string]*running{}
	for _, n := range nodes {
		byID[n.ready.NodeID] = n
	}
	var leader *running
	var live agentv1.AgentService_ConnectClient
	for _, n := range nodes {
		stream, m, err := say(t, n.ready.AgentAddr, id, cert)
		if err != nil {
			t.Fatalf("%s: %v", n.ready.NodeID, err)
		}
		switch {
		case m.GetWelcome() != nil:
			if m.GetWelcome().GetNodeId() != n.ready.NodeID {
				t.Fatalf("welcome from %s names %s", n.ready.NodeID, m.GetWelcome().GetNodeId())
			}
			leader, live = n, stream
		case m.GetRedirect() != nil:
			to := byID[m.GetRedirect().GetLeaderNodeId()]
			if to == nil || to == n || m.GetRedirect().GetLeaderAddress() != to.ready.AgentAddr {
				t.Fatalf("%s redirected to %v; nodes %v", n.ready.NodeID, m.GetRedirect(), byID)
			}
		default:
			t.Fatalf("%s answered %v", n.ready.NodeID, m)
		}
	}
	if leader == nil {
		t.Fatal("no node welcomed the agent")
	}
	a, err := getAgent(leader, id)
	if err != nil || a.Status != "up" || a.ConnectedTo != leader.ready.NodeID {
		t.Fatalf("agent after hello = %+v, %v", a, err)
	}

	// The leader goes away: its streams close, and the agent finds the new
	// leader through whichever node it asks.
	if err := leader.stop(); err != nil {
		t.Fatalf("stop the leader: %v", err)
	}
	if _, err := live.Recv(); err == nil {
		t.Fatal("the old leader's stream survived its shutdown")
	}
	var survivor *running
	for _, n := range nodes {
		if n != leader {
			survivor = n
		}
	}
	addr := survivor.ready.AgentAddr
	var newLeader string
	waitUntil(t, "a welcome from the new leader", func() bool {
		_, m, err := say(t, addr, id, cert)
		switch {
		case err != nil:
			// A redirect can still name the stopped leader while the
			// survivors elect; ask a survivor again, as agents do.
			addr = survivor.ready.AgentAddr
			return false
		case m.GetRedirect().GetLeaderAddress() != "":
			addr = m.GetRedirect().GetLeaderAddress()
			return false
		case m.GetWelcome() != nil:
			newLeader = m.GetWelcome().GetNodeId()
			return true
		}
		return false
	})
	if newLeader == leader.ready.NodeID {
		t.Fatalf("welcomed by the stopped leader %s", newLeader)
	}
	waitUntil(t, "the agent up on the new leader", func() bool {
		a, err := getAgent(survivor, id)
		return err == nil && a.Status == "up" && a.ConnectedTo == newLeader
	})
}

// waitUntil polls cond with a deadline.
func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// agentDoc is the part of GET /api/v1/agents/{id} these tests read.
type agentDoc struct {
	Status      string `json:"status"`
	ConnectedTo string `json:"connected_to"`
}

func getAgent(n *running, id string) (agentDoc, error) {
	req, err := http.NewRequest(http.MethodGet, "http://"+n.ready.HTTPAddr+"/api/v1/agents/"+id+"?consistent=true", nil)
	if err != nil {
		return agentDoc{}, err
	}
	req.Header.Set("Authorization", "Bearer "+n.token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return agentDoc{}, err
	}
	defer resp.Body.Close()
	var a agentDoc
	if resp.StatusCode != http.StatusOK {
		return a, fmt.Errorf("GET agent: %s", resp.Status)
	}
	return a, json.NewDecoder(resp.Body).Decode(&a)
}
