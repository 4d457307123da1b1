package tmpl

import (
	"sort"
	"time"
	"unicode/utf8"
)

// EventType names what happened. The values are part of the rule and webhook
// wire format: append, never rename.
type EventType string

// Event types a rule can subscribe to.
const (
	EventRunStarted        EventType = "run.started"
	EventRunSucceeded      EventType = "run.succeeded"
	EventRunFailed         EventType = "run.failed"
	EventRunCanceled       EventType = "run.canceled"
	EventApprovalRequested EventType = "approval.requested"
	EventStepFailed        EventType = "step.failed"
	EventAgentDown         EventType = "agent.down"
	EventAgentUp           EventType = "agent.up"
	EventDiscoveryFound    EventType = "discovery.found"
	EventCredentialUsed    EventType = "credential.used"
	EventCredentialRotated EventType = "credential.rotated"
	EventLoginFailures     EventType = "login.failures"
	EventLeaderChanged     EventType = "cluster.leader_changed"
	// EventDigest is not subscribed to directly: throttling folds the events
	// a rule could not send on its own into one digest event.
	EventDigest EventType = "digest"
)

// EventTypes lists every event type, in a stable order.
func EventTypes() []EventType {
	return []EventType{
		EventRunStarted, EventRunSucceeded, EventRunFailed, EventRunCanceled,
		EventApprovalRequested, EventStepFailed, EventAgentDown, EventAgentUp,
		EventDiscoveryFound, EventCredentialUsed, EventCredentialRotated,
		EventLoginFailures, EventLeaderChanged, EventDigest,
	}
}

// Valid reports whether t is a known event type.
func (t EventType) Valid() bool {
	for _, k := range EventTypes() {
		if k == t {
			return true
		}
	}
	return false
}

// Severity ranks an event for filtering and for how loudly it is shown.
type Severity string

// Severities, from quiet to loud.
const (
	SeverityInfo     Severity = "info"
	SeverityWarning  Severity = "warning"
	SeverityCritical Severity = "critical"
)

// Valid reports whether s is a known severity.
func (s Severity) Valid() bool {
	return s == SeverityInfo || s == SeverityWarning || s == SeverityCritical
}

// Limits applied by [Bound] before any template sees an event. They keep the
// work a template can do proportional to its own size, whatever the event.
const (
	// MaxString is the longest string field, in bytes; longer ones are cut
	// at a character boundary and end in "…".
	MaxString = 4096
	// MaxFailedTargets is how many names Run.FailedTargets carries; the full
	// count is Run.Summary.Failed.
	MaxFailedTargets = 50
	// MaxTags is how many tags a Target carries.
	MaxTags = 64
	// MaxSourceIPs is how many addresses Login.SourceIPs carries.
	MaxSourceIPs = 20
	// MaxDigestEvents is how many events a Digest carries; the full count is
	// Digest.Count.
	MaxDigestEvents = 20
)

// Event is the dot of every notification template. See the package
// documentation for which detail sections each event type sets.
type Event struct {
	// ID identifies the event; a redelivery carries the same ID.
	ID string `json:"id"`
	// Type is what happened, e.g. "run.failed".
	Type EventType `json:"type"`
	// Time is when it happened, in UTC.
	Time time.Time `json:"time"`
	// Severity is "info", "warning" or "critical".
	Severity Severity `json:"severity"`
	// Summary is one line for people describing the event.
	Summary string `json:"summary"`
	// Cluster is the name of the cluster the event comes from.
	Cluster string `json:"cluster"`
	// Links point back to the web UI.
	Links Links `json:"links"`

	// Run is set for run.*, approval.requested and step.failed.
	Run *Run `json:"run,omitempty"`
	// Step is set for step.failed and approval.requested.
	Step *Step `json:"step,omitempty"`
	// Target is set for step.failed.
	Target *Target `json:"target,omitempty"`
	// Agent is set for agent.down and agent.up.
	Agent *Agent `json:"agent,omitempty"`
	// Discovery is set for discovery.found.
	Discovery *Discovery `json:"discovery,omitempty"`
	// Credential is set for credential.used and credential.rotated.
	Credential *Credential `json:"credential,omitempty"`
	// Login is set for login.failures.
	Login *Login `json:"login,omitempty"`
	// Leader is set for cluster.leader_changed.
	Leader *Leader `json:"leader,omitempty"`
	// Digest is set for digest.
	Digest *Digest `json:"digest,omitempty"`
}

// Links are absolute URLs into the web UI; a link that does not apply to
// the event is empty.
type Links struct {
	// UI is the start page of the web UI.
	UI string `json:"ui"`
	// Run is the page of the run.
	Run string `json:"run,omitempty"`
	// Job is the page of the job.
	Job string `json:"job,omitempty"`
	// Target is the page of the target (asset).
	Target string `json:"target,omitempty"`
	// Agent is the page of the agent.
	Agent string `json:"agent,omitempty"`
}

// Run describes one execution of a job version.
type Run struct {
	// ID is the run ID.
	ID string `json:"id"`
	// Job is the job's name.
	Job string `json:"job"`
	// Version is the job version the run executes.
	Version int `json:"version"`
	// Status is queued, running, succeeded, failed or canceled.
	Status string `json:"status"`
	// Reason explains a failed or canceled run ("max failure percentage
	// exceeded", "canceled by alice").
	Reason string `json:"reason,omitempty"`
	// Trigger is what started the run: api, schedule, webhook or rerun.
	Trigger string `json:"trigger"`
	// StartedAt is when the run started; zero while queued.
	StartedAt time.Time `json:"started_at"`
	// FinishedAt is when the run finished; zero while it runs.
	FinishedAt time.Time `json:"finished_at"`
	// Duration is FinishedAt-StartedAt, or the time so far (nanoseconds in
	// JSON; format it with the duration function).
	Duration time.Duration `json:"duration"`
	// Summary counts the run's targets by outcome.
	Summary RunSummary `json:"summary"`
	// FailedTargets names at most MaxFailedTargets failed targets; the full
	// count is Summary.Failed.
	FailedTargets []string `json:"failed_targets,omitempty"`
}

// RunSummary counts a run's targets by outcome.
type RunSummary struct {
	Total     int `json:"total"`
	Succeeded int `json:"succeeded"`
	Failed    int `json:"failed"`
	Canceled  int `json:"canceled"`
	Skipped   int `json:"skipped"`
	// Lost counts targets whose agent went away mid-step.
	Lost int `json:"lost"`
}

// Step describes one step, on one target when the event is about a target.
type Step struct {
	// ID is the step's ID in the job spec.
	ID string `json:"id"`
	// Target is the name of the target the step ran on (empty for an
	// approval).
	Target string `json:"target,omitempty"`
	// Status is the step attempt's status (failed, lost, awaiting_approval…).
	Status string `json:"status"`
	// Error is the failure message, if any.
	Error string `json:"error,omitempty"`
	// ExitCode is the process exit code of a failed command step.
	ExitCode int `json:"exit_code"`
}

// Target is a managed host.
type Target struct {
	// Name is the target's unique name.
	Name string `json:"name"`
	// Address is its host name or IP address.
	Address string `json:"address"`
	// Tags are key=value labels (at most MaxTags; range over them sorted by key).
	Tags map[string]string `json:"tags,omitempty"`
}

// Agent is an enrolled agent.
type Agent struct {
	ID   string `json:"id"`
	Name string `json:"name"`
	// Status is connected, disconnected or revoked.
	Status  string `json:"status"`
	Version string `json:"version"`
}

// Discovery describes the outcome of a discovery scan.
type Discovery struct {
	// Profile is the discovery profile's name.
	Profile string `json:"profile"`
	// Found counts the hosts that answered.
	Found int `json:"found"`
	// Appeared, Changed and Disappeared count the hosts that are new, whose
	// facts changed, and that no longer answer, compared to the previous scan.
	Appeared    int `json:"appeared"`
	Changed     int `json:"changed"`
	Disappeared int `json:"disappeared"`
}

// Credential names a credential that was used or rotated; never its secret.
type Credential struct {
	Name string `json:"name"`
	// Kind is the credential kind (ssh_key, password, token…).
	Kind string `json:"kind"`
	// Actor is who used or rotated it (a user name, or "run r-…").
	Actor string `json:"actor"`
}

// Login reports failed logins over a threshold.
type Login struct {
	// Username is the account that was tried.
	Username string `json:"username"`
	// Failures counts failed attempts within Window.
	Failures int `json:"failures"`
	// Window is the period counted (nanoseconds in JSON).
	Window time.Duration `json:"window"`
	// SourceIPs are the addresses the attempts came from (at most MaxSourceIPs).
	SourceIPs []string `json:"source_ips,omitempty"`
}

// Leader reports a change of the cluster leader.
type Leader struct {
	// From is the previous leader's node ID (empty if there was none).
	From string `json:"from"`
	// To is the new leader's node ID.
	To string `json:"to"`
}

// Digest folds the events throttling held back.
type Digest struct {
	// Count is how many events were folded.
	Count int `json:"count"`
	// Window is the throttling window they fell in (nanoseconds in JSON).
	Window time.Duration `json:"window"`
	// Events holds the first MaxDigestEvents of them; they never carry a
	// digest of their own.
	Events []Event `json:"events,omitempty"`
}

// Bound returns a copy of e within the limits above; e is not changed.
// Render applies it, so callers need not.
func Bound(e Event) Event {
	return bound(e, true)
}

func bound(e Event, withDigest bool) Event {
	e.ID, e.Summary, e.Cluster = cut(e.ID), cut(e.Summary), cut(e.Cluster)
	e.Type, e.Severity = EventType(cut(string(e.Type))), Severity(cut(string(e.Severity)))
	l := &e.Links
	l.UI, l.Run, l.Job, l.Target, l.Agent = cut(l.UI), cut(l.Run), cut(l.Job), cut(l.Target), cut(l.Agent)
	if e.Run != nil {
		r := *e.Run
		r.ID, r.Job, r.Status, r.Reason, r.Trigger = cut(r.ID), cut(r.Job), cut(r.Status), cut(r.Reason), cut(r.Trigger)
		r.FailedTargets = cutList(r.FailedTargets, MaxFailedTargets)
		e.Run = &r
	}
	if e.Step != nil {
		s := *e.Step
		s.ID, s.Target, s.Status, s.Error = cut(s.ID), cut(s.Target), cut(s.Status), cut(s.Error)
		e.Step = &s
	}
	if e.Target != nil {
		t := *e.Target
		t.Name, t.Address = cut(t.Name), cut(t.Address)
		if t.Tags != nil {
			keys := make([]string, 0, len(t.Tags))
			for k := range t.Tags {
				keys = append(keys, k)
			}
			// Keep the first keys in the order templates see them, so that
			// the cut is deterministic.
			sort.Strings(keys)
			tags := make(map[string]string, min(len(keys), MaxTags))
			for _, k := range keys[:min(len(keys), MaxTags)] {
				tags[cut(k)] = cut(t.Tags[k])
			}
			t.Tags = tags
		}
		e.Target = &t
	}
	if e.Agent != nil {
		a := *e.Agent
		a.ID, a.Name, a.Status, a.Version = cut(a.ID), cut(a.Name), cut(a.Status), cut(a.Version)
		e.Agent = &a
	}
	if e.Discovery != nil {
		d := *e.Discovery
		d.Profile = cut(d.Profile)
		e.Discovery = &d
	}
	if e.Credential != nil {
		c := *e.Credential
		c.Name, c.Kind, c.Actor = cut(c.Name), cut(c.Kind), cut(c.Actor)
		e.Credential = &c
	}
	if e.Login != nil {
		g := *e.Login
		g.Username = cut(g.Username)
		g.SourceIPs = cutList(g.SourceIPs, MaxSourceIPs)
		e.Login = &g
	}
	if e.Leader != nil {
		g := *e.Leader
		g.From, g.To = cut(g.From), cut(g.To)
		e.Leader = &g
	}
	if e.Digest != nil && !withDigest {
		e.Digest = nil
	}
	if e.Digest != nil {
		d := *e.Digest
		n := min(len(d.Events), MaxDigestEvents)
		events := make([]Event, n)
		for i := range n {
			events[i] = bound(d.Events[i], false)
		}
		if d.Events == nil {
			events = nil
		}
		d.Events = events
		e.Digest = &d
	}
	return e
}

func cutList(l []string, n int) []string {
	if l == nil {
		return nil
	}
	out := make([]string, min(len(l), n))
	for i := range out {
		out[i] = cut(l[i])
	}
	return out
}

// cut shortens s to at most MaxString bytes without splitting a character.
func cut(s string) string {
	return truncBytes(s, MaxString)
}

func truncBytes(s string, n int) string {
	if len(s) <= n {
		return s
	}
	const ell = "…"
	i := n - len(ell)
	for i > 0 && !utf8.RuneStart(s[i]) {
		i--
	}
	return s[:i] + ell
}
