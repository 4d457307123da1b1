package session

import (
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"time"
	"unicode/utf8"

	"google.golang.org/protobuf/types/known/durationpb"

	agentv1 "github.com/opsconductor/opsconductor/proto/agent/v1"
)

// action is what the stream loop must do after a message.
type action struct {
	welcome  bool
	nodeID   string
	interval time.Duration

	redirect      bool
	leaderAddress string // "" while there is no leader (or it was unusable)

	send *agentv1.AgentMessage // a reply to send at once (after a Welcome)

	issued *agentv1.CertificateIssued // a renewed certificate to check and store
}

// handle applies one controller message to the session's state. Whatever
// the bytes on the wire said, it must not panic (FuzzHandle): a
// controller message is outside input even over mutual TLS.
func (s *Session) handle(m *agentv1.ControllerMessage) action {
	switch msg := m.GetMsg().(type) {
	case *agentv1.ControllerMessage_Welcome:
		w := msg.Welcome
		interval := clampInterval(w.GetHeartbeatInterval())
		lease := durationOrZero(w.GetLease())
		nodeID := printable(w.GetNodeId())
		s.update(func(st *Status) {
			if !st.Connected {
				st.Connects++
			}
			st.Connected, st.NodeID, st.HeartbeatInterval, st.Lease = true, nodeID, interval, lease
		})
		s.log.Info("connected to the leader", "node_id", nodeID, "heartbeat_interval", interval, "lease", lease)
		return action{welcome: true, nodeID: nodeID, interval: interval}
	case *agentv1.ControllerMessage_Redirect:
		r := msg.Redirect
		addr := r.GetLeaderAddress()
		if addr != "" {
			if _, _, err := net.SplitHostPort(addr); err != nil {
				s.log.Warn("ignoring a redirect to an unusable address", "leader_address", printable(addr), "error", err)
				addr = ""
			}
		}
		leader := printable(r.GetLeaderNodeId())
		s.update(func(st *Status) { st.Redirects++; st.Connected = false })
		if addr == "" {
			s.log.Info("redirected, but there is no leader yet")
			s.cfg.Progress("the controller knows no leader yet; retrying")
		} else {
			s.log.Info("redirected to the leader", "node_id", leader, "leader_address", addr)
			s.cfg.Progress(fmt.Sprintf("redirected to leader %s at %s", leader, addr))
		}
		return action{redirect: true, leaderAddress: addr}
	case *agentv1.ControllerMessage_Drain:
		draining := msg.Drain.GetDraining()
		s.update(func(st *Status) { st.Draining = draining })
		if draining {
			s.log.Info("draining: taking no new work")
		} else {
			s.log.Info("drain lifted: taking work again")
		}
		return action{}
	case *agentv1.ControllerMessage_Assignment:
		a := msg.Assignment
		if ex := s.cfg.Executor; ex != nil {
			if ack := ex.Assign(a, s.Status().Draining); ack != nil {
				return action{send: &agentv1.AgentMessage{Msg: &agentv1.AgentMessage_AssignmentAck{AssignmentAck: ack}}}
			}
			return action{}
		}
		// Never log params or secrets: they may carry credentials.
		s.log.Warn("rejecting assignment: this agent does not execute steps yet",
			"attempt_id", printable(a.GetAttemptId()), "run_id", printable(a.GetRunId()),
			"kind", printable(a.GetKind()), "problems", errString(checkAssignment(a)))
		return action{}
	case *agentv1.ControllerMessage_Cancel:
		if ex := s.cfg.Executor; ex != nil {
			ex.Cancel(msg.Cancel.GetAttemptId())
		}
		return action{}
	case *agentv1.ControllerMessage_Ack:
		if ex := s.cfg.Executor; ex != nil {
			ex.Ack(msg.Ack)
		}
		return action{}
	case *agentv1.ControllerMessage_Certificate:
		if msg.Certificate == nil {
			return action{}
		}
		return action{issued: msg.Certificate}
	case nil:
		s.log.Debug("ignoring a controller message of a kind this agent does not know")
		return action{}
	default:
		s.log.Debug("ignoring a controller message this agent does not handle yet", "type", fmt.Sprintf("%T", msg))
		return action{}
	}
}

// checkAssignment returns every problem with an assignment at once.
func checkAssignment(a *agentv1.Assignment) error {
	var errs []error
	if a.GetAttemptId() == "" {
		errs = append(errs, errors.New("attempt_id: empty"))
	}
	if a.GetKind() == "" {
		errs = append(errs, errors.New("kind: empty"))
	}
	if p := a.GetParamsJson(); len(p) > 0 {
		var obj map[string]json.RawMessage
		if err := json.Unmarshal(p, &obj); err != nil {
			errs = append(errs, fmt.Errorf("params_json: not a JSON object: %w", err))
		}
	}
	if t := a.GetTimeout(); t != nil {
		if err := t.CheckValid(); err != nil {
			errs = append(errs, fmt.Errorf("timeout: %w", err))
		} else if t.AsDuration() <= 0 {
			errs = append(errs, errors.New("timeout: not positive"))
		}
	}
	return errors.Join(errs...)
}

func clampInterval(d *durationpb.Duration) time.Duration {
	if d == nil || d.CheckValid() != nil || d.AsDuration() <= 0 {
		return DefaultHeartbeatInterval
	}
	return min(max(d.AsDuration(), minHeartbeatInterval), maxHeartbeatInterval)
}

func durationOrZero(d *durationpb.Duration) time.Duration {
	if d == nil || d.CheckValid() != nil || d.AsDuration() < 0 {
		return 0
	}
	return d.AsDuration()
}

// printable bounds a controller-supplied string before it reaches a log
// line or a terminal: valid UTF-8, no control characters, at most 128 runes.
func printable(s string) string {
	const maxRunes = 128
	out := make([]rune, 0, min(len(s), maxRunes))
	for _, r := range s {
		if len(out) == maxRunes {
			out = append(out, '…')
			break
		}
		if r == utf8.RuneError || r < 0x20 || r == 0x7f {
			r = '?'
		}
		out = append(out, r)
	}
	return string(out)
}
