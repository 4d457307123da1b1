package automation

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"regexp"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/opsconductor/opsconductor/controller/agentrpc"
	"github.com/opsconductor/opsconductor/controller/assets"
	"github.com/opsconductor/opsconductor/controller/automation/jobspec"
	"github.com/opsconductor/opsconductor/controller/history"
	"github.com/opsconductor/opsconductor/controller/identity"
	"github.com/opsconductor/opsconductor/controller/keyring"
	"github.com/opsconductor/opsconductor/controller/problem"
	"github.com/opsconductor/opsconductor/controller/state"
)

// Applier commits commands through Raft (cluster.Node).
type Applier = state.Applier

// Agents is what the engine needs of agentrpc.
type Agents interface {
	// DispatchStepsWith commits extra (the engine's decisions) and
	// creates and sends the attempts, in as few Raft entries as it can.
	DispatchStepsWith(ctx context.Context, extra []state.Command, ds []agentrpc.StepDispatch) ([]agentrpc.DispatchResult, []state.Result)
	CancelAttempt(ctx context.Context, id string) (agentrpc.Attempt, error)
	// Connected reports whether the agent has a live stream here and
	// takes work.
	Connected(agentID string) bool
}

// Inventory resolves job targets within a principal's scope.
type Inventory interface {
	Resolve(ctx context.Context, p *identity.Principal, perm identity.Permission, spec assets.ResolveSpec) ([]assets.Target, error)
	Get(ctx context.Context, idOrName string) (assets.Target, error)
	Allowed(p *identity.Principal, perm identity.Permission, t assets.Target) bool
	// CheckHostKey records the SSH host key a step learned on first
	// contact (trust on first use), or refuses one that differs.
	CheckHostKey(ctx context.Context, targetID, key string) (assets.Target, error)
}

// Credentials names a target's default credential in a role ("ssh").
type Credentials interface {
	DefaultFor(ctx context.Context, target assets.Target, role string) (string, error)
}

// Secrets resolves a step's credentials (alias → credential name) for an
// attempt on a target, acting as p; every use is recorded.
type Secrets interface {
	StepSecrets(ctx context.Context, p *identity.Principal, attemptID string, target assets.Target, creds map[string]string) (map[string]string, error)
}

// Principals returns who a run acts as (identity.Service.Acting).
type Principals interface {
	Acting(ctx context.Context, userID string, roles []identity.Binding) (*identity.Principal, error)
}

// HistoryWriter stores records durably (history.Writer).
type HistoryWriter interface {
	Write(ctx context.Context, recs []history.Record) error
}

// Live receives what happens in runs for the websocket stream (live.Hub).
type Live interface {
	Publish(runID string, typ string, data any)
	End(runID string)
	// Reset forgets every run and closes every stream: the hub is fed
	// on the leader, and a leadership change makes its sequence moot.
	Reset()
}

// Config tunes the engine.
type Config struct {
	// MaxActiveRuns bounds the runs running at once; more wait queued.
	MaxActiveRuns int
	// AgentCapacity bounds the attempts one agent runs at once.
	AgentCapacity int
	// AgentWait is how long a target waits for its agent before the step
	// fails.
	AgentWait time.Duration
	// Retention is how long a finished run stays in the replicated state
	// before only the history store has it.
	Retention time.Duration
}

// Defaults for Config.
const (
	DefaultMaxActiveRuns = 500
	DefaultAgentCapacity = 32
	DefaultAgentWait     = 10 * time.Minute
	DefaultRetention     = time.Hour
)

// Deps are the service's collaborators.
type Deps struct {
	Applier   Applier
	Store     *state.Store
	Logger    *slog.Logger
	Now       func() time.Time
	IsLeader  func() bool
	Agents    Agents
	Inventory Inventory
	Catalog   jobspec.Catalog
	Secrets   Secrets
	// Credentials finds the credential an SSH target is reached with.
	Credentials Credentials
	Principals  Principals
	History     HistoryWriter
	// HistoryReader reads finished runs back (history.Store).
	HistoryReader history.Store
	Live          Live
	// Hooks must be the Hooks given to Domain and agentrpc.Domain.
	Hooks *Hooks
	// Sealer keeps secret parameters (the keyring); without it a run with
	// secret parameters is refused.
	Sealer keyring.Sealer
}

// Service is the automation domain on one controller.
type Service struct {
	cfg Config
	d   Deps
	eng *engine
	// finishedRuns counts the runs this server's engine finished while
	// it led; see Metrics.
	finishedRuns *prometheus.CounterVec

	specMu sync.Mutex
	specs  map[string]*jobspec.Job // by job@version
}

// Hooks connect the FSM's changes (runs, attempts, agents coming up, log
// lines) to the engine and the live stream. They exist before the service
// because the state registry is built first.
type Hooks struct {
	svc atomic.Pointer[Service]
}

// NewHooks returns hooks not yet bound to a service.
func NewHooks() *Hooks { return &Hooks{} }

// RunChanged is Domain's Notify.
func (h *Hooks) RunChanged(r *Run) {
	if s := h.svc.Load(); s != nil {
		s.eng.mark(r.ID)
		if finalRun(r.Status) {
			// A run ending may let a queued one start.
			s.eng.markQueued()
		}
		if s.d.Live != nil {
			s.d.Live.Publish(r.ID, "run", runEvent(r))
		}
	}
}

// Attempt is agentrpc.Hooks.Attempt.
func (h *Hooks) Attempt(a *agentrpc.Attempt) {
	if s := h.svc.Load(); s != nil {
		s.eng.attemptChanged(a)
		if s.d.Live != nil {
			s.d.Live.Publish(a.RunID, "attempt", attemptEvent(a))
		}
	}
}

// AgentUp is agentrpc.Hooks.AgentUp.
func (h *Hooks) AgentUp(agentID string) {
	if s := h.svc.Load(); s != nil {
		s.eng.agentUp(agentID)
	}
}

// RunLog is agentrpc's Deps.RunLog.
func (h *Hooks) RunLog(a *agentrpc.Attempt, line agentrpc.LogLine) {
	if s := h.svc.Load(); s != nil && s.d.Live != nil {
		s.d.Live.Publish(a.RunID, "log", LogLine{Target: a.Target, Step: a.Step, AttemptID: a.ID, Try: a.Try,
			Seq: line.Seq, Stream: line.Stream, Data: line.Data, Time: line.Time})
	}
}

// runEvent is the "run" event: the run's state without its targets.
func runEvent(r *Run) map[string]any {
	return map[string]any{"id": r.ID, "job": r.Job, "version": r.Version, "status": r.Status, "reason": r.Reason,
		"started_at": r.StartedAt, "finished_at": r.FinishedAt, "cancel_requested_at": r.CancelRequested}
}

// attemptEvent is the "attempt" event: one step on one target changed.
func attemptEvent(a *agentrpc.Attempt) map[string]any {
	return map[string]any{"target": a.Target, "step": a.Step, "attempt_id": a.ID, "try": a.Try, "status": a.Status,
		"exit_code": a.ExitCode, "error": a.Error, "started_at": a.StartedAt, "finished_at": a.FinishedAt,
		"outputs": a.Outputs, "changed": a.Changed}
}

// New builds the service and binds the hooks to it.
func New(cfg Config, d Deps) (*Service, error) {
	if d.Applier == nil || d.Store == nil || d.Logger == nil || d.Agents == nil || d.Inventory == nil || d.Hooks == nil || d.Principals == nil {
		return nil, errors.New("automation: Applier, Store, Logger, Agents, Inventory, Principals and Hooks are required")
	}
	if d.Now == nil {
		d.Now = time.Now
	}
	if d.IsLeader == nil {
		d.IsLeader = func() bool { return true }
	}
	if cfg.MaxActiveRuns <= 0 {
		cfg.MaxActiveRuns = DefaultMaxActiveRuns
	}
	if cfg.AgentCapacity <= 0 {
		cfg.AgentCapacity = DefaultAgentCapacity
	}
	if cfg.AgentWait <= 0 {
		cfg.AgentWait = DefaultAgentWait
	}
	if cfg.Retention <= 0 {
		cfg.Retention = DefaultRetention
	}
	s := &Service{cfg: cfg, d: d, specs: map[string]*jobspec.Job{}, finishedRuns: newFinishedRuns()}
	s.eng = newEngine(s)
	d.Hooks.svc.Store(s)
	return s, nil
}

// Run drives runs while this node leads, until ctx ends.
func (s *Service) Run(ctx context.Context) { s.eng.run(ctx) }

func (s *Service) txn() state.Reader { return s.d.Store.ReadTxn() }

func (s *Service) apply(ctx context.Context, typ string, payload, out any) error {
	return state.ApplyOne(ctx, s.d.Applier, typ, payload, out)
}

var jobNameRE = regexp.MustCompile(`^[a-z0-9][a-z0-9._-]{0,62}$`)

// maxSource bounds a job definition's size.
const maxSource = 256 << 10

// ParseJob parses and validates a definition sent for name (the name in
// the body, if any, must agree).
func (s *Service) ParseJob(ctx context.Context, name string, body []byte) (*jobspec.Job, error) {
	if !jobNameRE.MatchString(name) {
		return nil, problem.Invalid("name", "a job name is 1-63 lowercase letters, digits, '.', '_' or '-', starting with a letter or digit; got %q", name)
	}
	if len(body) > maxSource {
		return nil, problem.Invalid("body", "a job definition is at most %d bytes, got %d", maxSource, len(body))
	}
	job, perr := jobspec.ParsePartial(body)
	if job == nil {
		return nil, perr
	}
	switch job.Name {
	case "":
		job.Name = name
	case name:
	default:
		return nil, problem.Invalid("name", "the definition names job %q but was sent for %q", job.Name, name)
	}
	verr := job.Validate(ctx, s.d.Catalog)
	if perr == nil {
		if verr != nil {
			return nil, verr
		}
		return job, nil
	}
	if verr != nil {
		if _, ok := problem.As(verr); !ok {
			return nil, verr
		}
	}
	return nil, mergeProblems(perr, verr)
}

// mergeProblems reports the decoding problems and then the validation
// problems of what did decode, leaving out any about a value that did
// not decode (its zero value would only repeat the first complaint).
func mergeProblems(decodeErr, validateErr error) error {
	var out problem.List
	flatten := func(err error) []*problem.Error {
		p, ok := problem.As(err)
		if !ok || p == nil {
			return nil
		}
		if len(p.Details) == 0 {
			return []*problem.Error{p}
		}
		var ds []*problem.Error
		for i := range p.Details {
			ds = append(ds, &p.Details[i])
		}
		return ds
	}
	bad := map[string]bool{}
	for _, p := range flatten(decodeErr) {
		bad[p.Field] = true
		out = append(out, p)
	}
	for _, p := range flatten(validateErr) {
		under := false
		for f := range bad {
			if f != "" && (p.Field == f || strings.HasPrefix(p.Field, f+".") || strings.HasPrefix(p.Field, f+"[")) {
				under = true
			}
		}
		if !under {
			out = append(out, p)
		}
	}
	return out.Err()
}

// PutJob saves a new version of a job (none when the definition did not
// change).
func (s *Service) PutJob(ctx context.Context, p *identity.Principal, name string, body []byte) (JobPutResult, error) {
	job, err := s.ParseJob(ctx, name, body)
	if err != nil {
		return JobPutResult{}, err
	}
	return s.saveJob(ctx, p.Name(), name, body, job)
}

// saveJob commits a parsed definition as the job's next version.
func (s *Service) saveJob(ctx context.Context, by, name string, body []byte, job *jobspec.Job) (JobPutResult, error) {
	spec, err := json.Marshal(job)
	if err != nil {
		return JobPutResult{}, fmt.Errorf("encode job: %w", err)
	}
	sum := sha256.Sum256(spec)
	var res JobPutResult
	err = s.apply(ctx, cmdJobPut, jobPutPayload{Description: job.Description, Version: JobVersion{Name: name, Source: string(body),
		Spec: spec, Digest: hex.EncodeToString(sum[:]), CreatedBy: by}}, &res)
	return res, err
}

// JobDetail is a job with one version's definition.
type JobDetail struct {
	Job
	Version JobVersion `json:"version"`
}

// GetJob returns a job with its newest version, or version when > 0.
func (s *Service) GetJob(_ context.Context, name string, version int) (JobDetail, error) {
	txn := s.txn()
	j, err := getJob(txn, name)
	if err != nil {
		return JobDetail{}, err
	}
	if version <= 0 {
		version = j.Latest
	}
	v, err := getVersion(txn, name, version)
	if err != nil {
		return JobDetail{}, err
	}
	return JobDetail{Job: *j, Version: *v}, nil
}

// ListJobs returns every job, by name.
func (s *Service) ListJobs(_ context.Context) ([]Job, error) {
	it, err := s.txn().Get(tableJobs, "id")
	if err != nil {
		return nil, fmt.Errorf("list jobs: %w", err)
	}
	out := []Job{}
	for obj := it.Next(); obj != nil; obj = it.Next() {
		out = append(out, *obj.(*Job))
	}
	return out, nil
}

// JobVersions lists a job's versions, newest first, without their source.
func (s *Service) JobVersions(_ context.Context, name string) ([]JobVersion, error) {
	txn := s.txn()
	if _, err := getJob(txn, name); err != nil {
		return nil, err
	}
	it, err := txn.Get(tableVersions, "name", name)
	if err != nil {
		return nil, fmt.Errorf("list versions: %w", err)
	}
	out := []JobVersion{}
	for obj := it.Next(); obj != nil; obj = it.Next() {
		v := *obj.(*JobVersion)
		v.Source, v.Spec = "", nil
		out = append(out, v)
	}
	slices.SortFunc(out, func(a, b JobVersion) int { return b.Version - a.Version })
	return out, nil
}

// DeleteJob removes a job and its versions.
func (s *Service) DeleteJob(ctx context.Context, name string) error {
	return s.apply(ctx, cmdJobDelete, jobDeletePayload{Name: name}, nil)
}

// spec returns the parsed definition a run pinned; parsed once per
// version, since expressions compile on first use.
func (s *Service) spec(job string, version int, raw json.RawMessage) (*jobspec.Job, error) {
	key := fmt.Sprintf("%s@%d", job, version)
	s.specMu.Lock()
	defer s.specMu.Unlock()
	if j := s.specs[key]; j != nil {
		return j, nil
	}
	j, err := jobspec.Parse(raw)
	if err != nil {
		return nil, fmt.Errorf("job %s: stored definition does not parse: %w", key, err)
	}
	if len(s.specs) > 4096 {
		clear(s.specs)
	}
	s.specs[key] = j
	return j, nil
}

// RunRequest starts a run.
type RunRequest struct {
	Params map[string]any `json:"params,omitempty"`
	// Targets, when given, narrows the job's targets to these names.
	Targets []string `json:"targets,omitempty"`
	// Version pins a version other than the newest.
	Version int `json:"version,omitempty"`
}

func newRunID() (string, error) {
	b := make([]byte, 8)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("generate run id: %w", err)
	}
	return "run_" + hex.EncodeToString(b), nil
}

// StartRun starts a run of a job for p: the targets are resolved in p's
// jobs:run scope.
func (s *Service) StartRun(ctx context.Context, p *identity.Principal, name string, req RunRequest) (RunView, error) {
	id, err := newRunID()
	if err != nil {
		return RunView{}, err
	}
	r, err := s.createRun(ctx, p, id, name, req, Trigger{Kind: "api"})
	if err != nil {
		return RunView{}, err
	}
	return s.viewOf(r, nil)
}

// createRun resolves a run and commits it; an existing run with the ID
// is returned as it is.
func (s *Service) createRun(ctx context.Context, p *identity.Principal, id, name string, req RunRequest, trig Trigger) (*Run, error) {
	detail, err := s.GetJob(ctx, name, req.Version)
	if err != nil {
		return nil, err
	}
	job, err := s.spec(name, detail.Version.Version, detail.Version.Spec)
	if err != nil {
		return nil, err
	}
	params, err := job.ResolveParams(req.Params)
	if err != nil {
		return nil, err
	}
	targets, err := s.resolveTargets(ctx, p, job, req.Targets)
	if err != nil {
		return nil, err
	}
	batch, err := job.BatchSize(params, len(targets))
	if err != nil {
		return nil, err
	}
	trig.By, trig.UserID, trig.Roles = p.Name(), p.UserID, slices.Clone(p.Roles)
	if trig.Roles == nil {
		trig.Roles = []identity.Binding{}
	}
	open, sealed, names, err := s.sealParams(job, id, params)
	if err != nil {
		return nil, err
	}
	run := Run{ID: id, Job: name, Version: detail.Version.Version, Spec: detail.Version.Spec, Params: open, Secret: sealed,
		SecretNames: names, Trigger: trig,
		Targets: targets, BatchSize: batch, Approvals: map[string]*Approval{}}
	var res RunCreateResult
	if err := s.apply(ctx, cmdRunCreate, runCreatePayload{Run: run, Concurrency: job.ConcurrencyPolicy()}, &res); err != nil {
		return nil, err
	}
	s.d.Logger.Info("run created", "run_id", id, "job", name, "version", run.Version, "targets", len(targets), "by", trig.By, "existed", res.Existed)
	return &res.Run, nil
}

// maxRunTargets bounds one run's targets.
const maxRunTargets = 10000

// resolveTargets expands the job's targets (or the names asked for,
// which must be among them) within p's jobs:run scope.
func (s *Service) resolveTargets(ctx context.Context, p *identity.Principal, job *jobspec.Job, names []string) ([]RunTarget, error) {
	inv, perm := s.d.Inventory, identity.PermJobsRun
	seen := map[string]bool{}
	var found []assets.Target
	add := func(ts []assets.Target) {
		for _, t := range ts {
			if !seen[t.ID] {
				seen[t.ID] = true
				found = append(found, t)
			}
		}
	}
	jt := job.Targets
	if len(jt.Names) > 0 {
		ts, err := inv.Resolve(ctx, p, perm, assets.ResolveSpec{Names: jt.Names})
		if err != nil {
			return nil, prefixField(err, "targets.")
		}
		add(ts)
	}
	sel := jt.Selector
	if len(jt.Tags) > 0 {
		var parts []string
		for _, k := range slices.Sorted(mapsKeys(jt.Tags)) {
			parts = append(parts, k+"="+jt.Tags[k])
		}
		if sel != "" {
			parts = append(parts, sel)
		}
		sel = strings.Join(parts, ",")
	}
	switch {
	case len(jt.Groups) > 0:
		for _, g := range jt.Groups {
			ts, err := inv.Resolve(ctx, p, perm, assets.ResolveSpec{Group: g, Selector: sel})
			if err != nil {
				return nil, prefixField(err, "targets.")
			}
			add(ts)
		}
	case sel != "":
		ts, err := inv.Resolve(ctx, p, perm, assets.ResolveSpec{Selector: sel})
		if err != nil {
			return nil, prefixField(err, "targets.")
		}
		add(ts)
	case jt.All:
		ts, err := inv.Resolve(ctx, p, perm, assets.ResolveSpec{All: true})
		if err != nil {
			return nil, prefixField(err, "targets.")
		}
		add(ts)
	}
	if len(names) > 0 {
		var narrowed []assets.Target
		var errs problem.List
		for i, n := range names {
			j := slices.IndexFunc(found, func(t assets.Target) bool { return t.Name == n || t.ID == n })
			if j < 0 {
				errs.Add(fmt.Sprintf("targets[%d]", i), "%q is not among the job's targets you may run on", n)
				continue
			}
			narrowed = append(narrowed, found[j])
		}
		if err := errs.Err(); err != nil {
			return nil, err
		}
		found = narrowed
	}
	if len(found) == 0 {
		return nil, problem.Invalid("targets", "no target you may run on matches the job's targets")
	}
	if len(found) > maxRunTargets {
		return nil, problem.Invalid("targets", "%d targets match; one run takes at most %d", len(found), maxRunTargets)
	}
	slices.SortFunc(found, func(a, b assets.Target) int { return strings.Compare(a.Name, b.Name) })
	out := make([]RunTarget, 0, len(found))
	for _, t := range found {
		rt := RunTarget{Name: t.Name, Connection: t.Connection.Type, Tags: t.Tags, AgentID: t.Connection.AgentID}
		if len(t.Addresses) > 0 {
			rt.Address = t.Addresses[0]
		}
		if t.Connection.Type == assets.ConnSSH {
			// Steps for an SSH target run on its relay agent.
			relay, err := inv.Get(ctx, t.Connection.Via)
			if err != nil {
				return nil, problem.Invalid("targets", "target %s is relayed by %q, which is not an agent in the inventory", t.Name, t.Connection.Via)
			}
			rt.AgentID = relay.Connection.AgentID
		}
		if rt.AgentID == "" {
			rt.AgentID = t.ID
		}
		if len(t.Facts) > 0 {
			rt.Facts = make(map[string]any, len(t.Facts))
			for k, v := range t.Facts {
				rt.Facts[k] = v
			}
		}
		out = append(out, rt)
	}
	return out, nil
}

func mapsKeys(m map[string]string) func(func(string) bool) {
	return func(yield func(string) bool) {
		for k := range m {
			if !yield(k) {
				return
			}
		}
	}
}

// prefixField moves a problem's field under prefix.
func prefixField(err error, prefix string) error {
	p, ok := problem.As(err)
	if !ok {
		return err
	}
	c := *p
	if c.Field != "" {
		c.Field = prefix + c.Field
	}
	for i := range c.Details {
		if c.Details[i].Field != "" {
			c.Details[i].Field = prefix + c.Details[i].Field
		}
	}
	return &c
}

// EnsureJob saves a job unless one of that name exists, as by: the dev
// server's example job, which an operator's own edits must survive.
func (s *Service) EnsureJob(ctx context.Context, by, name string, body []byte) (bool, error) {
	if _, err := getJob(s.txn(), name); err == nil {
		return false, nil
	}
	job, err := s.ParseJob(ctx, name, body)
	if err != nil {
		return false, err
	}
	_, err = s.saveJob(ctx, by, name, body, job)
	return err == nil, err
}
