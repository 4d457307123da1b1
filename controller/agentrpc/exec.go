package agentrpc

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"maps"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/opsconductor/opsconductor/controller/history"
	"github.com/opsconductor/opsconductor/controller/problem"
	"github.com/opsconductor/opsconductor/controller/state"
	"github.com/opsconductor/opsconductor/plugins/builtin"
	"github.com/opsconductor/opsconductor/plugins/schema"
	"github.com/opsconductor/opsconductor/plugins/sdk"
	agentv1 "github.com/opsconductor/opsconductor/proto/agent/v1"
)

// HistoryWriter stores records durably and says when (history.Writer).
type HistoryWriter interface {
	Submit(ctx context.Context, recs []history.Record) (*history.Ticket, error)
	// Barrier settles once everything submitted before it is stored.
	Barrier() *history.Ticket
}

// HistoryReader reads stored records back (history.Store).
type HistoryReader interface {
	Read(ctx context.Context, stream string, from, to uint64, limit int) ([]history.Record, error)
	Tail(ctx context.Context, stream string, n int) ([]history.Record, error)
}

// Command limits.
const (
	DefaultCommandTimeout = time.Hour
	MaxCommandTimeout     = 24 * time.Hour
	// KindCommand is the built-in command runner.
	KindCommand = "command"
	// LogKind is the history kind of attempt output.
	LogKind = "automation.log"
)

// LogStream is the history stream holding an attempt's output.
func LogStream(attemptID string) string { return "automation/attempt/" + attemptID + "/log" }

// CommandSpec is what to run: exactly one of Argv and Shell.
type CommandSpec struct {
	Argv  []string          `json:"argv,omitempty"`
	Shell string            `json:"shell,omitempty"`
	Env   map[string]string `json:"env,omitempty"`
	Dir   string            `json:"dir,omitempty"`
	// Timeout is a Go duration ("30s", "5m"); empty means an hour.
	Timeout string `json:"timeout,omitempty"`
	// Credentials maps an alias to a credential name, as for a step. The
	// command gets each field as the environment variable
	// OPSCONDUCTOR_SECRET_<ALIAS>_<FIELD> (upper case), masked in its
	// output; the caller resolves them (RunCommandWith).
	Credentials map[string]string `json:"credentials,omitempty"`
}

// commandParams is the Assignment's params_json for KindCommand.
type commandParams struct {
	Argv  []string          `json:"argv,omitempty"`
	Shell string            `json:"shell,omitempty"`
	Env   map[string]string `json:"env,omitempty"`
	Dir   string            `json:"dir,omitempty"`
}

func (c CommandSpec) check() (commandParams, time.Duration, error) {
	var errs problem.List
	switch {
	case len(c.Argv) == 0 && c.Shell == "":
		errs.Add("argv", "give exactly one of argv and shell; both are empty")
	case len(c.Argv) > 0 && c.Shell != "":
		errs.Add("shell", "give exactly one of argv and shell, not both")
	case len(c.Argv) > 0 && c.Argv[0] == "":
		errs.Add("argv[0]", "must name the program")
	}
	for i, a := range c.Argv {
		if strings.ContainsRune(a, 0) {
			errs.Add(fmt.Sprintf("argv[%d]", i), "must not contain NUL")
		}
	}
	for k, v := range c.Env {
		if k == "" || strings.ContainsAny(k, "=\x00") || strings.ContainsRune(v, 0) {
			errs.Add("env."+k, "names must be non-empty without '=' or NUL, values without NUL")
		}
	}
	if strings.ContainsRune(c.Shell, 0) || strings.ContainsRune(c.Dir, 0) {
		errs.Add("shell", "shell and dir must not contain NUL")
	}
	timeout, err := parseTimeout(c.Timeout)
	if err != nil {
		errs = append(errs, err)
	}
	return commandParams{Argv: c.Argv, Shell: c.Shell, Env: c.Env, Dir: c.Dir}, timeout, errs.Err()
}

// parseTimeout reads an attempt's timeout: empty is an hour.
func parseTimeout(v string) (time.Duration, *problem.Error) {
	if v == "" {
		return DefaultCommandTimeout, nil
	}
	d, err := time.ParseDuration(v)
	switch {
	case err != nil:
		return 0, problem.Invalid("timeout", "must be a duration such as 30s or 5m, got %q", v)
	case d < time.Second || d > MaxCommandTimeout:
		return 0, problem.Invalid("timeout", "must be from 1s to %s, got %s", MaxCommandTimeout, d)
	}
	return d, nil
}

var (
	errNotLeaderAPI = problem.Unavailable("not_leader", "agent streams end on the Raft leader: send this request to the leader")
	errNotConnected = func(id string) error {
		return problem.New(problem.KindConflict, "agent_not_connected", "agent %s has no live stream to this controller: nothing is queued, try again once it is up", id)
	}
	errDraining = func(id string) error {
		return problem.New(problem.KindConflict, "agent_draining", "agent %s is draining and takes no new work", id)
	}
	errNoHistory = problem.Unavailable("history_missing", "this controller has no history store to take attempt output")
)

// RunCommand creates an attempt to run spec on the agent and sends it
// down the agent's live stream. Nothing is queued: an agent that is not
// connected to this (leading) controller, or is draining, is refused.
func (s *Service) RunCommand(ctx context.Context, agentID string, spec CommandSpec, actor string) (Attempt, error) {
	return s.RunCommandWith(ctx, agentID, spec, actor, nil)
}

// RunCommandWith is RunCommand with the resolver for the command's
// credentials.
func (s *Service) RunCommandWith(ctx context.Context, agentID string, spec CommandSpec, actor string, secrets SecretsFunc) (Attempt, error) {
	params, timeout, err := spec.check()
	errs := checkCredentials(spec.Credentials, secrets != nil)
	if err != nil {
		if p, ok := problem.As(err); ok {
			errs = append(errs, p)
		}
	}
	if err := errs.Err(); err != nil {
		return Attempt{}, err
	}
	raw, err := json.Marshal(params)
	if err != nil {
		return Attempt{}, err
	}
	if len(spec.Credentials) == 0 {
		secrets = nil
	}
	return s.dispatch(ctx, agentID, KindCommand, raw, timeout, actor, maps.Clone(spec.Credentials), secrets)
}

// checkCredentials checks the credentials an attempt declares.
func checkCredentials(creds map[string]string, canResolve bool) problem.List {
	var errs problem.List
	if len(creds) > maxStepCredentials {
		errs.Add("credentials", "at most %d credentials per attempt", maxStepCredentials)
	}
	for _, alias := range slices.Sorted(maps.Keys(creds)) {
		if !credentialAliasRE.MatchString(alias) {
			errs.Add("credentials."+alias, "an alias must be a letter or _ then letters, digits or _ (at most 63)")
		}
		if creds[alias] == "" {
			errs.Add("credentials."+alias, "must name a credential")
		}
	}
	if len(creds) > 0 && !canResolve {
		errs.Add("credentials", "this controller cannot resolve credentials")
	}
	return errs
}

// StepSpec is one step to run on an agent: a built-in step or a plugin,
// as a job names it.
type StepSpec struct {
	// Uses is "name" or "name@version" ("http", "disk-usage@1").
	Uses string `json:"uses"`
	// With is the step's parameters, a JSON object.
	With json.RawMessage `json:"with,omitempty"`
	// Timeout is a Go duration ("30s"); empty means an hour.
	Timeout string `json:"timeout,omitempty"`
	// Credentials maps an alias to a credential name. Each credential's
	// fields reach the step as secrets named alias.field (db.username,
	// db.password, ssh.private_key …), masked in its output; the caller
	// resolves them (RunStepWith) when the attempt's ID is known.
	Credentials map[string]string `json:"credentials,omitempty"`
}

// SecretsFunc resolves the secrets an attempt declared, given its ID,
// before anything is committed: a refusal leaves no attempt behind. The
// values go to the agent in the assignment and nowhere else.
type SecretsFunc func(ctx context.Context, attemptID string) (map[string]string, error)

// maxStepCredentials bounds the credentials one step may declare.
const maxStepCredentials = 16

var credentialAliasRE = regexp.MustCompile(`^[a-zA-Z_][a-zA-Z0-9_]{0,62}$`)

// StepCatalog describes the steps a StepSpec may use (built-ins and the
// plugin registry), so that bad parameters are refused before anything
// is sent.
type StepCatalog interface {
	Describe(ctx context.Context, uses string) (sdk.Description, error)
}

var stepRefRE = regexp.MustCompile(`^[a-z][a-z0-9-]{0,62}(@[0-9A-Za-z.+-]{1,64})?$`)

// RunStep is RunCommand for a step: it checks the reference and the
// parameters against the step's schema, then dispatches it. A step that
// declares credentials needs RunStepWith.
func (s *Service) RunStep(ctx context.Context, agentID string, spec StepSpec, actor string) (Attempt, error) {
	return s.RunStepWith(ctx, agentID, spec, actor, nil)
}

// RunStepWith is RunStep with the resolver for the step's credentials.
func (s *Service) RunStepWith(ctx context.Context, agentID string, spec StepSpec, actor string, secrets SecretsFunc) (Attempt, error) {
	kind, with, timeout, err := s.checkStep(ctx, spec, secrets != nil, nil)
	if err != nil {
		return Attempt{}, err
	}
	if len(spec.Credentials) == 0 {
		secrets = nil
	}
	return s.dispatch(ctx, agentID, kind, with, timeout, actor, maps.Clone(spec.Credentials), secrets)
}

// checkStep checks a step's reference, parameters, credentials and
// timeout, and returns the attempt's kind, its parameters and timeout. A
// plugin reference ("disk-usage", "disk-usage@1") becomes the exact
// version the catalog resolved it to, so that the attempt records what it
// ran and the agent fetches that build. described caches the catalog's
// answers across the steps of one batch (nil: no cache).
func (s *Service) checkStep(ctx context.Context, spec StepSpec, canResolve bool, described map[string]sdk.Description) (string, json.RawMessage, time.Duration, error) {
	errs := checkCredentials(spec.Credentials, canResolve)
	if !stepRefRE.MatchString(spec.Uses) || spec.Uses == KindCommand {
		errs.Add("uses", "must be a step name or name@version such as http or disk-usage@1, got %q", spec.Uses)
	}
	with := bytes.TrimSpace(spec.With)
	if len(with) == 0 || string(with) == "null" {
		with = []byte("{}")
	}
	if with[0] != '{' || !json.Valid(with) {
		errs.Add("with", "must be a JSON object of the step's parameters")
	}
	timeout, terr := parseTimeout(spec.Timeout)
	if terr != nil {
		errs = append(errs, terr)
	}
	if err := errs.Err(); err != nil {
		return "", nil, 0, err
	}
	kind := spec.Uses
	if s.steps != nil {
		d, ok := described[spec.Uses]
		if !ok {
			var err error
			if d, err = s.steps.Describe(ctx, spec.Uses); err != nil {
				return "", nil, 0, err
			}
			if described != nil {
				described[spec.Uses] = d
			}
		}
		if err := schema.Validate(d.Params, with); err != nil {
			return "", nil, 0, err
		}
		if name, _, _ := strings.Cut(spec.Uses, "@"); !isBuiltin(name) && d.Version != "" {
			kind = name + "@" + d.Version
		}
	}
	return kind, json.RawMessage(with), timeout, nil
}

// isBuiltin reports whether name is a step every agent has built in.
func isBuiltin(name string) bool {
	_, ok := builtin.Lookup(name)
	return ok
}

// admit refuses work for an agent that cannot take it now.
func (s *Service) admit(txn reader, agentID string) error {
	a, err := getAgent(txn, agentID)
	if err != nil {
		return err
	}
	switch {
	case a.Revoked:
		return problem.New(problem.KindConflict, "agent_revoked", "agent %s is revoked", agentID)
	case a.Draining:
		return errDraining(agentID)
	case s.reg.stream(agentID) == nil:
		return errNotConnected(agentID)
	case s.hist == nil || s.histRead == nil:
		return errNoHistory
	}
	return nil
}

// StepDispatch is one attempt the run engine sends: a step for one target
// of a run, under an ID the caller chose (NewAttemptID) so that it could
// record credential use against it and resolve Secrets first.
type StepDispatch struct {
	ID      string
	AgentID string
	Spec    StepSpec
	Actor   string
	Run     RunRef
	Secrets map[string]string
	// Stored, when set, is what the attempt keeps of the parameters: Spec.With
	// with the secret values in it masked. Spec.With goes to the agent only.
	Stored json.RawMessage
}

// DispatchResult is what became of one StepDispatch: the attempt as
// created, or why nothing was created (or the assignment not sent, in
// which case the attempt exists and is marked failed).
type DispatchResult struct {
	Attempt Attempt
	Err     error
}

// dispatchChunk bounds the attempts created by one Raft entry.
const dispatchChunk = 1024

// DispatchSteps creates many attempts in as few Raft entries as it can and
// sends their assignments, so that a run fanned out over a thousand
// agents costs one round trip rather than a thousand. Results are in the
// order of ds.
func (s *Service) DispatchSteps(ctx context.Context, ds []StepDispatch) []DispatchResult {
	out, _ := s.DispatchStepsWith(ctx, nil, ds)
	return out
}

// DispatchStepsWith is DispatchSteps that commits the caller's own
// commands (a run's status) ahead of the attempts, in the same Raft entry:
// one durable write instead of two on a run's critical path. It returns
// the extra commands' results (or the error that kept them out) too.
func (s *Service) DispatchStepsWith(ctx context.Context, extra []state.Command, ds []StepDispatch) ([]DispatchResult, []state.Result) {
	out := make([]DispatchResult, len(ds))
	if !s.reg.isLeader() {
		for i := range out {
			out[i].Err = errNotLeaderAPI
		}
		return out, nil
	}
	txn := s.txn()
	described := map[string]sdk.Description{}
	var cmds []state.Command
	var idx []int
	for i, d := range ds {
		kind, with, timeout, err := s.checkStep(ctx, d.Spec, true, described)
		if err == nil {
			err = s.admit(txn, d.AgentID)
		}
		if err == nil && d.ID == "" {
			err = problem.Invalid("id", "the attempt needs an ID from NewAttemptID")
		}
		var cmd state.Command
		if err == nil {
			stored := with
			if d.Stored != nil {
				stored = d.Stored
			}
			cmd, err = state.NewCommand(cmdAttemptCreate, 1, attemptCreatePayload{Attempt: Attempt{ID: d.ID, AgentID: d.AgentID,
				Kind: kind, Params: stored, Timeout: timeout.String(), CreatedBy: d.Actor,
				Credentials: maps.Clone(d.Spec.Credentials), RunRef: d.Run}})
		}
		if err != nil {
			out[i].Err = err
			continue
		}
		cmds, idx = append(cmds, cmd), append(idx, i)
	}
	var extraRes []state.Result
	if len(extra) > 0 {
		// The extra commands ride in the first entry; they take no part in
		// the attempts' results.
		n := min(len(cmds), max(0, dispatchChunk-len(extra)))
		res, err := s.applier.Apply(ctx, append(slices.Clone(extra), cmds[:n]...)...)
		if err != nil {
			for _, c := range extra {
				extraRes = append(extraRes, state.Result{Err: &problem.Error{Kind: problem.KindUnavailable, Code: "not_committed",
					Message: fmt.Sprintf("%s: %v", c.Type, err)}})
			}
		} else {
			extraRes = res[:len(extra)]
		}
		s.sent(ctx, ds, out, idx[:n], cmds[:n], res, err, len(extra))
		cmds, idx = cmds[n:], idx[n:]
	}
	for start := 0; start < len(cmds); start += dispatchChunk {
		end := min(start+dispatchChunk, len(cmds))
		res, err := s.applier.Apply(ctx, cmds[start:end]...)
		s.sent(ctx, ds, out, idx[start:end], cmds[start:end], res, err, 0)
	}
	return out, extraRes
}

// sent records the results of one entry of attempt creates (res[skip:]
// answer cmds, for ds[idx[k]]) and sends the assignments of those created.
func (s *Service) sent(ctx context.Context, ds []StepDispatch, out []DispatchResult, idx []int, cmds []state.Command, res []state.Result, err error, skip int) {
	var unsent []state.Command
	for k := range cmds {
		i := idx[k]
		if err != nil {
			out[i].Err = fmt.Errorf("create attempt: %w", err)
			continue
		}
		var att Attempt
		if out[i].Err = res[k+skip].Decode(&att); out[i].Err != nil {
			continue
		}
		out[i].Attempt = att
		ls := s.reg.stream(att.AgentID)
		s.trips.start(att.ID, time.Now())
		sent := att
		if ds[i].Stored != nil {
			// The agent gets the parameters as rendered; the state keeps them masked.
			sent.Params = json.RawMessage(bytes.TrimSpace(ds[i].Spec.With))
		}
		if ls == nil || !ls.enqueue(assignmentMsg(&sent, ds[i].Secrets)) {
			s.trips.forget(att.ID)
			out[i].Err = errNotConnected(att.AgentID)
			if c, err := state.NewCommand(cmdAttemptFinished, 1, attemptFinishedPayload{ID: att.ID, Status: AttemptError,
				Error: "the agent's stream ended before the assignment was sent"}); err == nil {
				unsent = append(unsent, c)
			}
		}
	}
	if len(unsent) > 0 {
		if _, err := s.applier.Apply(ctx, unsent...); err != nil {
			s.log.Warn("attempts whose assignment was not sent are not marked failed", "attempts", len(unsent), "error", err)
		}
	}
}

// dispatch creates an attempt of kind and sends it to the agent, with the
// secrets resolved for it (creds names them, by alias) when secrets is set.
func (s *Service) dispatch(ctx context.Context, agentID, kind string, params json.RawMessage, timeout time.Duration, actor string,
	creds map[string]string, secrets SecretsFunc) (Attempt, error) {
	if !s.reg.isLeader() {
		return Attempt{}, errNotLeaderAPI
	}
	if err := s.admit(s.txn(), agentID); err != nil {
		return Attempt{}, err
	}
	id, err := NewAttemptID()
	if err != nil {
		return Attempt{}, err
	}
	var values map[string]string
	if secrets != nil {
		if values, err = secrets(ctx, id); err != nil {
			return Attempt{}, err
		}
	}
	var att Attempt
	if err := s.apply(ctx, cmdAttemptCreate, attemptCreatePayload{Attempt: Attempt{ID: id, AgentID: agentID, Kind: kind,
		Params: params, Timeout: timeout.String(), CreatedBy: actor, Credentials: creds}}, &att); err != nil {
		return Attempt{}, err
	}
	log := s.log.With("attempt_id", id, "agent_id", agentID)
	ls := s.reg.stream(agentID)
	s.trips.start(id, time.Now())
	if ls == nil || !ls.enqueue(assignmentMsg(&att, values)) {
		s.trips.forget(id)
		// The stream went between the check and the send: say so now
		// rather than leave the attempt pending until the lease runs out.
		var res attemptFinishedResult
		if err := s.apply(ctx, cmdAttemptFinished, attemptFinishedPayload{ID: id, Status: AttemptError,
			Error: "the agent's stream ended before the assignment was sent"}, &res); err != nil {
			log.Warn("attempt not marked failed", "error", err)
		}
		return Attempt{}, errNotConnected(agentID)
	}
	log.Info("sent an assignment", "kind", kind, "created_by", actor, "timeout", timeout)
	return att, nil
}

// assignmentMsg is the Assignment that runs an attempt, with its secrets.
func assignmentMsg(a *Attempt, secrets map[string]string) *agentv1.ControllerMessage {
	timeout, err := time.ParseDuration(a.Timeout)
	if err != nil || timeout <= 0 {
		timeout = DefaultCommandTimeout
	}
	return &agentv1.ControllerMessage{Msg: &agentv1.ControllerMessage_Assignment{Assignment: &agentv1.Assignment{
		AttemptId: a.ID, Kind: a.Kind, ParamsJson: a.Params, Timeout: durationpb.New(timeout), Secrets: secrets}}}
}

func cancelMsg(id string) *agentv1.ControllerMessage {
	return &agentv1.ControllerMessage{Msg: &agentv1.ControllerMessage_Cancel{Cancel: &agentv1.Cancel{
		AttemptId: id, Reason: "canceled by request"}}}
}

// GetAttempt returns one attempt.
func (s *Service) GetAttempt(_ context.Context, id string) (Attempt, error) {
	a, err := getAttempt(s.txn(), id)
	if err != nil {
		return Attempt{}, err
	}
	return *a.clone(), nil
}

// CancelAttempt records that the attempt should stop and tells its agent
// if it is connected here. The agent's result (canceled) decides it.
func (s *Service) CancelAttempt(ctx context.Context, id string) (Attempt, error) {
	// Only the leader holds the stream the Cancel must go down.
	if !s.reg.isLeader() {
		return Attempt{}, errNotLeaderAPI
	}
	var a Attempt
	if err := s.apply(ctx, cmdAttemptCancel, attemptCancelPayload{ID: id}, &a); err != nil {
		return Attempt{}, err
	}
	sent := false
	if ls := s.reg.stream(a.AgentID); ls != nil {
		sent = ls.enqueue(cancelMsg(id))
	}
	s.log.Info("requested an attempt's cancellation", "attempt_id", id, "agent_id", a.AgentID, "sent", sent)
	return a, nil
}

// LogLine is one chunk of an attempt's output.
type LogLine struct {
	Seq    uint64    `json:"seq"`
	Stream string    `json:"stream"`
	Data   string    `json:"data"`
	Time   time.Time `json:"time"`
}

// LogPage is output after a sequence number; Next is the after to ask
// with next time (the last seq returned, or the one asked with).
type LogPage struct {
	Items []LogLine `json:"items"`
	Next  uint64    `json:"next"`
}

// AttemptLog reads an attempt's output with seq > after from history.
func (s *Service) AttemptLog(ctx context.Context, id string, after uint64, limit int) (LogPage, error) {
	if _, err := getAttempt(s.txn(), id); err != nil {
		return LogPage{}, err
	}
	if s.histRead == nil {
		return LogPage{}, errNoHistory
	}
	page := LogPage{Items: []LogLine{}, Next: after}
	if after >= history.MaxSeq {
		return page, nil
	}
	recs, err := s.histRead.Read(ctx, LogStream(id), after+1, history.MaxSeq, limit)
	if err != nil {
		return LogPage{}, fmt.Errorf("read attempt log: %w", err)
	}
	for _, r := range recs {
		page.Items = append(page.Items, LogLine{Seq: r.Seq, Stream: r.Fields["stream"], Data: string(r.Data), Time: r.Time})
		page.Next = r.Seq
	}
	return page, nil
}

// startedDelay is how long an acknowledged attempt may look pending
// before "running" is committed.
const startedDelay = 50 * time.Millisecond

// attemptStarted commits the agent's acknowledgement of an assignment.
func (s *Service) attemptStarted(ctx context.Context, agentID, id string, log *slog.Logger) {
	// Most steps end within moments of starting; their result, which
	// carries started_at, makes a commit of "running" redundant. Waiting a
	// little first saves a Raft command per short attempt. The ack is the
	// proof of delivery, though (an attempt still pending when its agent
	// reconnects is sent again), so a stream that ends meanwhile does not
	// cancel the commit.
	select {
	case <-time.After(startedDelay):
	case <-ctx.Done():
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
	}
	a, err := getAttempt(s.txn(), id)
	if err != nil || a.AgentID != agentID {
		log.Warn("assignment ack for an unknown attempt", "attempt_id", id)
		return
	}
	if a.Status != AttemptPending {
		return
	}
	var out Attempt
	if err := s.apply(ctx, cmdAttemptStarted, attemptStartedPayload{ID: id}, &out); err != nil {
		log.Warn("attempt start not committed", "attempt_id", id, "error", err)
	}
}

// tracker is the leader's memory of how much of one attempt's output is
// durable. It starts from what the history store holds (the writer stores
// an attempt's chunks in the order the agent sent them, so its last stored
// seq ends a gapless prefix) and then follows the tickets.
type tracker struct {
	mu      sync.Mutex
	loaded  bool
	through uint64              // every seq <= through is durable
	above   map[uint64]struct{} // durable seqs past a gap
	result  *agentv1.Result     // waiting for its chunks
}

func (t *tracker) settle(seq uint64) {
	if seq <= t.through {
		return
	}
	if seq != t.through+1 {
		if t.above == nil {
			t.above = map[uint64]struct{}{}
		}
		t.above[seq] = struct{}{}
		return
	}
	t.through = seq
	for {
		if _, ok := t.above[t.through+1]; !ok {
			return
		}
		delete(t.above, t.through+1)
		t.through++
	}
}

// tracker returns the attempt's tracker, loaded from the history store.
func (s *Service) tracker(ctx context.Context, id string) (*tracker, error) {
	s.trackMu.Lock()
	t := s.tracks[id]
	if t == nil {
		t = &tracker{}
		s.tracks[id] = t
	}
	s.trackMu.Unlock()
	t.mu.Lock()
	defer t.mu.Unlock()
	if !t.loaded {
		recs, err := s.histRead.Tail(ctx, LogStream(id), 1)
		if err != nil {
			return nil, fmt.Errorf("read attempt log tail: %w", err)
		}
		if len(recs) == 1 && recs[0].Seq > t.through {
			t.through = recs[0].Seq
		}
		t.loaded = true
	}
	return t, nil
}

func (s *Service) forget(id string) {
	s.trackMu.Lock()
	delete(s.tracks, id)
	s.trackMu.Unlock()
}

func (s *Service) forgetAll() {
	s.trackMu.Lock()
	clear(s.tracks)
	s.trackMu.Unlock()
}

func ackMsg(id string, through uint64, result bool) *agentv1.ControllerMessage {
	return &agentv1.ControllerMessage{Msg: &agentv1.ControllerMessage_Ack{Ack: &agentv1.Ack{AttemptId: id, ThroughSeq: through, Result: result}}}
}

// resumeAttempts reconciles what the agent's hello says it holds with
// the agent's open attempts here:
//   - one it holds gets an ack of what is already durable, so that it
//     can prune its outbox before replaying, and its cancel again if one
//     was requested (the old stream may have died with it);
//   - a pending one it does not hold gets its assignment again: it was
//     created or sent while the previous stream was ending (the agent
//     acknowledges a repeated assignment without running it twice);
//   - a running one it does not hold was accepted and then forgotten (the
//     agent crashed before recording it), so it ends as an error now
//     rather than when its lease runs out.
func (s *Service) resumeAttempts(ctx context.Context, ls *liveStream, running []*agentv1.RunningAttempt, log *slog.Logger) {
	held := make(map[string]bool, len(running))
	for _, r := range running {
		held[r.GetAttemptId()] = true
	}
	open, err := openAttempts(s.txn(), ls.agentID)
	if err != nil {
		log.Warn("open attempts unreadable", "error", err)
		return
	}
	for _, a := range open {
		switch {
		case held[a.ID]:
			if a.CancelAt != nil {
				ls.enqueue(cancelMsg(a.ID))
			}
		case a.Status == AttemptPending && len(a.Credentials) > 0:
			// Its secrets were resolved for one delivery and are kept
			// nowhere: resending it without them would run it wrong.
			var res attemptFinishedResult
			if err := s.apply(ctx, cmdAttemptFinished, attemptFinishedPayload{ID: a.ID, Status: AttemptError, ExitCode: -1,
				Error: "the assignment never reached the agent and its credentials are resolved only once: run it again"}, &res); err != nil {
				log.Warn("undelivered attempt with credentials not marked failed", "attempt_id", a.ID, "error", err)
			}
		case a.Status == AttemptPending && !s.hasOutput(ctx, a.ID):
			log.Info("sending an undelivered assignment again", "attempt_id", a.ID)
			ls.enqueue(assignmentMsg(a, nil))
		default:
			last := s.storedThrough(ctx, a.ID, log)
			var res attemptFinishedResult
			if err := s.apply(ctx, cmdAttemptFinished, attemptFinishedPayload{ID: a.ID, Status: AttemptError, ExitCode: -1, LastSeq: last,
				Error: "the agent no longer knows this attempt: it restarted before recording it"}, &res); err != nil {
				log.Warn("forgotten attempt not marked failed", "attempt_id", a.ID, "error", err)
			}
		}
	}
	if s.histRead == nil {
		return
	}
	for _, r := range running {
		a, err := getAttempt(s.txn(), r.GetAttemptId())
		if err != nil || a.AgentID != ls.agentID {
			log.Warn("hello names an unknown attempt", "attempt_id", r.GetAttemptId())
			continue
		}
		t, err := s.tracker(ctx, a.ID)
		if err != nil {
			log.Warn("attempt log unreadable", "attempt_id", a.ID, "error", err)
			continue
		}
		t.mu.Lock()
		through := t.through
		t.mu.Unlock()
		if through > 0 {
			ls.enqueue(ackMsg(a.ID, through, false))
		}
	}
}

// hasOutput reports whether any of an attempt's output is stored: proof
// that the agent had it, even if its acknowledgement was never committed.
// A pending attempt with output is never sent again (at most once).
func (s *Service) hasOutput(ctx context.Context, id string) bool {
	if s.histRead == nil {
		return false
	}
	recs, err := s.histRead.Read(ctx, LogStream(id), 1, history.MaxSeq, 1)
	return err != nil || len(recs) > 0
}

// storedThrough is the last seq of an attempt's log once everything the
// agent's previous stream submitted is stored: what reached the store
// before an agent crashed is the attempt's output, and its last seq ends
// the log. The attempt's tracker is dropped, since it may predate those
// writes.
func (s *Service) storedThrough(ctx context.Context, id string, log *slog.Logger) uint64 {
	s.forget(id)
	if s.hist == nil || s.histRead == nil {
		return 0
	}
	select {
	case <-s.hist.Barrier().Done():
	case <-ctx.Done():
		return 0
	}
	recs, err := s.histRead.Tail(ctx, LogStream(id), 1)
	if err != nil || len(recs) == 0 {
		if err != nil {
			log.Warn("attempt log unreadable", "attempt_id", id, "error", err)
		}
		return 0
	}
	return recs[0].Seq
}

// ingestItem is one message of the agent's in the order it arrived: a
// chunk with its ticket (nil when it was already durable) or a result.
type ingestItem struct {
	attemptID string
	seq       uint64
	ticket    *history.Ticket
	result    *agentv1.Result
	// run and line are set for a run's new line, told to runLog once
	// durable.
	run  *Attempt
	line LogLine
}

// ingest turns one stream's chunks into history records and acks them,
// in order, once durable. Its goroutine waits for each ticket in the
// order the chunks were submitted, which is the order the writer settles
// them, and coalesces the acks of whatever has settled meanwhile.
type ingest struct {
	s     *Service
	ls    *liveStream
	log   *slog.Logger
	items chan ingestItem
	done  chan struct{}
	wg    sync.WaitGroup
}

// ingestQueue bounds the chunks waiting for their tickets on one stream;
// past it the stream's handler waits, and so does the agent.
const ingestQueue = 4096

func (s *Service) startIngest(ls *liveStream, log *slog.Logger) *ingest {
	ing := &ingest{s: s, ls: ls, log: log, items: make(chan ingestItem, ingestQueue), done: make(chan struct{})}
	ctx, cancel := context.WithCancel(context.Background())
	ing.wg.Add(2)
	go func() {
		defer ing.wg.Done()
		defer cancel()
		select {
		case <-ing.done:
		case <-ls.closed:
		}
	}()
	go func() { defer ing.wg.Done(); ing.run(ctx) }()
	return ing
}

func (ing *ingest) stop() { close(ing.done); ing.wg.Wait() }

func (ing *ingest) push(ctx context.Context, it ingestItem) {
	select {
	case ing.items <- it:
	case <-ing.done:
	case <-ctx.Done():
	}
}

// owned returns the attempt if it belongs to this stream's agent.
func (ing *ingest) owned(id string) *Attempt {
	a, err := getAttempt(ing.s.txn(), id)
	if err != nil || a.AgentID != ing.ls.agentID {
		ing.log.Warn("output for an unknown attempt dropped", "attempt_id", id)
		return nil
	}
	return a
}

// chunk submits one chunk to history (unless already durable) and queues
// its ack. An error means the chunk could not be submitted.
func (ing *ingest) chunk(ctx context.Context, c *agentv1.LogChunk) error {
	s := ing.s
	if s.hist == nil || c.GetSeq() == 0 {
		return nil
	}
	owner := ing.owned(c.GetAttemptId())
	if owner == nil {
		return nil
	}
	t, err := s.tracker(ctx, c.GetAttemptId())
	if err != nil {
		return err
	}
	t.mu.Lock()
	dup := c.GetSeq() <= t.through
	t.mu.Unlock()
	it := ingestItem{attemptID: c.GetAttemptId(), seq: c.GetSeq()}
	if !dup {
		rec := history.Record{Stream: LogStream(c.GetAttemptId()), Seq: c.GetSeq(), Kind: LogKind, Time: s.now(),
			Fields: map[string]string{"stream": outputName(c.GetStream()), "agent_id": ing.ls.agentID}, Data: c.GetData()}
		if c.GetTime() != nil && c.GetTime().IsValid() {
			rec.Time = c.GetTime().AsTime()
		}
		if len(rec.Data) > history.MaxDataLen {
			rec.Data = rec.Data[:history.MaxDataLen]
		}
		it.ticket, err = s.hist.Submit(ctx, []history.Record{rec})
		if err != nil {
			return err
		}
		if s.runLog != nil && owner.RunID != "" {
			it.run, it.line = owner, LogLine{Seq: rec.Seq, Stream: rec.Fields["stream"], Data: string(rec.Data), Time: rec.Time}
		}
	}
	ing.push(ctx, it)
	return nil
}

func (ing *ingest) result(ctx context.Context, r *agentv1.Result) {
	if ing.s.hist == nil || ing.owned(r.GetAttemptId()) == nil {
		return
	}
	ing.push(ctx, ingestItem{attemptID: r.GetAttemptId(), result: r})
}

func outputName(o agentv1.OutputStream) string {
	if o == agentv1.OutputStream_OUTPUT_STREAM_STDERR {
		return "stderr"
	}
	return "stdout"
}

func (ing *ingest) run(ctx context.Context) {
	pending := map[string]bool{} // attempts with an ack to send
	n := 0
	for {
		var it ingestItem
		select {
		case it = <-ing.items:
		case <-ctx.Done():
			return
		}
		if it.result != nil {
			// A result's ack must follow the acks of the chunks before it.
			ing.flush(ctx, pending)
		}
		ing.handle(ctx, it, pending)
		// Coalesce: send the acks when nothing more is waiting, or every
		// ackEvery chunks under a steady flow.
		if n++; len(ing.items) == 0 || n%ackEvery == 0 {
			ing.flush(ctx, pending)
		}
	}
}

// ackEvery bounds the chunks handled between two rounds of acks.
const ackEvery = 256

func (ing *ingest) flush(ctx context.Context, pending map[string]bool) {
	for id := range pending {
		ing.ack(ctx, id)
		delete(pending, id)
	}
}

func (ing *ingest) handle(ctx context.Context, it ingestItem, pending map[string]bool) {
	s := ing.s
	if it.result != nil {
		ing.finishWhenDurable(ctx, it.attemptID, it.result)
		return
	}
	if it.ticket != nil {
		select {
		case <-it.ticket.Done():
		case <-ctx.Done():
			return
		}
		if err := it.ticket.Err(); err != nil {
			ing.log.Warn("log chunk not stored; closing the stream so that the agent replays it", "attempt_id", it.attemptID, "seq", it.seq, "error", err)
			ing.ls.close(errHistoryDown)
			return
		}
	}
	t, err := s.tracker(ctx, it.attemptID)
	if err != nil {
		return
	}
	t.mu.Lock()
	t.settle(it.seq)
	t.mu.Unlock()
	pending[it.attemptID] = true
	if it.run != nil {
		s.runLog(it.run, it.line)
	}
}

// ack sends what is durable of an attempt and, once its chunks are all
// durable, commits a waiting result.
func (ing *ingest) ack(ctx context.Context, id string) {
	t, err := ing.s.tracker(ctx, id)
	if err != nil {
		return
	}
	t.mu.Lock()
	through, r := t.through, t.result
	ready := r != nil && r.GetLastSeq() <= through
	if ready {
		t.result = nil
	}
	t.mu.Unlock()
	ing.ls.enqueue(ackMsg(id, through, false))
	if ready {
		ing.finish(ctx, r)
	}
}

// finishWhenDurable commits r now if every chunk up to its last_seq is
// durable, else parks it on the tracker until they are.
func (ing *ingest) finishWhenDurable(ctx context.Context, id string, r *agentv1.Result) {
	t, err := ing.s.tracker(ctx, id)
	if err != nil {
		ing.log.Warn("attempt log unreadable", "attempt_id", id, "error", err)
		return
	}
	t.mu.Lock()
	ready := r.GetLastSeq() <= t.through
	if !ready {
		t.result = r
	}
	t.mu.Unlock()
	if ready {
		ing.finish(ctx, r)
	}
}

// finish commits the result (once: a duplicate commits nothing) and acks
// it with the chunks it covers.
func (ing *ingest) finish(ctx context.Context, r *agentv1.Result) {
	s := ing.s
	p := attemptFinishedPayload{ID: r.GetAttemptId(), Status: statusFromProto(r.GetStatus()), ExitCode: int(r.GetExitCode()),
		Error: r.GetError(), LastSeq: r.GetLastSeq(), Outputs: boundedOutputs(r.GetOutputs(), ing.log), Changed: r.GetChanged()}
	if ts := r.GetStartedAt(); ts != nil && ts.IsValid() {
		t := ts.AsTime().UTC()
		p.StartedAt = &t
	}
	if ts := r.GetFinishedAt(); ts != nil && ts.IsValid() {
		t := ts.AsTime().UTC()
		p.FinishedAt = &t
	}
	a, err := getAttempt(s.txn(), p.ID)
	if err != nil {
		return
	}
	// An agent that crashed after sending output but before recording
	// it reports less than the store holds; the log is the truth.
	ing.s.trackMu.Lock()
	if t := ing.s.tracks[p.ID]; t != nil {
		t.mu.Lock()
		p.LastSeq = max(p.LastSeq, t.through)
		t.mu.Unlock()
	}
	ing.s.trackMu.Unlock()
	// A decided attempt (a replayed result, or a late one already kept)
	// needs no second commit, only the ack.
	if !finalAttempt(a.Status) || (a.Status == AttemptLost && !a.Late) {
		var res attemptFinishedResult
		if err := s.apply(ctx, cmdAttemptFinished, p, &res); err != nil {
			ing.log.Warn("result not committed; the agent will replay it", "attempt_id", p.ID, "error", err)
			return
		}
		var ran time.Duration
		if p.StartedAt != nil && p.FinishedAt != nil {
			ran = p.FinishedAt.Sub(*p.StartedAt)
		}
		s.trips.done(p.ID, time.Now(), ran)
		if res.Attempt.Late {
			ing.log.Info("recorded a late result for a lost attempt", "attempt_id", p.ID, "reported_status", p.Status)
		} else {
			ing.log.Info("attempt finished", "attempt_id", p.ID, "status", p.Status, "exit_code", p.ExitCode)
		}
	}
	s.forget(p.ID)
	ing.ls.enqueue(ackMsg(p.ID, p.LastSeq, true))
}

// Output limits: outputs are replicated through Raft with the result, so
// they are for values later steps use, not for bulk data (that is what the
// log is for).
const (
	maxOutputs     = 64
	maxOutputBytes = 64 << 10
)

// boundedOutputs keeps a result's outputs within the limits, dropping
// (and logging) what does not fit rather than refusing the result.
func boundedOutputs(in map[string]string, log *slog.Logger) map[string]string {
	if len(in) == 0 {
		return nil
	}
	out := make(map[string]string, min(len(in), maxOutputs))
	total := 0
	for _, k := range slices.Sorted(maps.Keys(in)) {
		v := in[k]
		if len(out) == maxOutputs || total+len(k)+len(v) > maxOutputBytes {
			log.Warn("step output dropped: over the limit of outputs a result may carry", "output", k,
				"max_outputs", maxOutputs, "max_bytes", maxOutputBytes)
			continue
		}
		out[k] = v
		total += len(k) + len(v)
	}
	return out
}

var errHistoryDown = status.Error(codes.Unavailable, "history store unavailable: reconnect and replay")

func statusFromProto(st agentv1.AttemptStatus) string {
	switch st {
	case agentv1.AttemptStatus_ATTEMPT_STATUS_SUCCEEDED:
		return AttemptSucceeded
	case agentv1.AttemptStatus_ATTEMPT_STATUS_FAILED:
		return AttemptFailed
	case agentv1.AttemptStatus_ATTEMPT_STATUS_TIMED_OUT:
		return AttemptTimedOut
	case agentv1.AttemptStatus_ATTEMPT_STATUS_CANCELED:
		return AttemptCanceled
	default:
		return AttemptError
	}
}

// ParseSeq parses an "after" query value.
func ParseSeq(v string) (uint64, error) {
	if v == "" {
		return 0, nil
	}
	n, err := strconv.ParseUint(v, 10, 64)
	if err != nil {
		return 0, problem.Invalid("after", "must be a sequence number, got %q", v)
	}
	return n, nil
}

// Connected reports whether the agent takes work from this controller now
// (it leads, the agent's stream is here and it is not draining).
func (s *Service) Connected(agentID string) bool {
	return s.reg.isLeader() && s.admit(s.txn(), agentID) == nil
}
