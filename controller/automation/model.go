// Package automation runs jobs: it keeps job definitions as immutable
// versions, creates runs of them over targets from the inventory, and on
// the Raft leader drives each run's workflow (DESIGN.md §5): it expands the
// targets, applies rollout batches, the failure threshold and the job's
// concurrency policy, sends step attempts to agents in batches, retries,
// waits for approvals, cancels, and records every finished run in the
// history store.
//
// What a run did on a target is not stored twice: step attempts are
// agentrpc's attempts, tagged with the run, target, step and try. The run
// row holds what only the run knows (its pinned definition, parameters,
// targets, approvals, steps that failed before reaching an agent) and the
// rest is derived from the attempts by the job's DAG rules, the same way
// on every node. Decisions that depend on time (a retry's backoff, an
// approval's or the job's timeout, how long to wait for an agent) are
// taken only by the leader's engine and committed.
package automation

import (
	"encoding/json"

	"github.com/opsconductor/opsconductor/controller/identity"
	"github.com/opsconductor/opsconductor/controller/keyring"
	"maps"
	"slices"
	"time"
)

// Run states.
const (
	RunQueued    = "queued"
	RunWaiting   = "waiting"
	RunRunning   = "running"
	RunSucceeded = "succeeded"
	RunFailed    = "failed"
	RunCanceled  = "canceled"
)

// finalRun reports whether a run's status is decided.
func finalRun(status string) bool {
	return status == RunSucceeded || status == RunFailed || status == RunCanceled
}

// Concurrency policies.
const (
	ConcurrencyAllow  = "allow"
	ConcurrencyQueue  = "queue"
	ConcurrencyForbid = "forbid"
)

// Job is the head of a job: its name and newest version.
type Job struct {
	Name        string    `json:"name"`
	Description string    `json:"description,omitempty"`
	Latest      int       `json:"latest_version"`
	CreatedAt   time.Time `json:"created_at"`
	CreatedBy   string    `json:"created_by"`
	UpdatedAt   time.Time `json:"updated_at"`
	UpdatedBy   string    `json:"updated_by"`
}

// JobVersion is one saved definition; it never changes.
type JobVersion struct {
	Name    string `json:"name"`
	Version int    `json:"version"`
	// Source is the definition as it was sent (YAML or JSON), Spec the
	// parsed definition as canonical JSON; runs pin Spec.
	Source    string          `json:"source"`
	Spec      json.RawMessage `json:"spec"`
	Digest    string          `json:"digest"`
	CreatedAt time.Time       `json:"created_at"`
	CreatedBy string          `json:"created_by"`
}

// Trigger says who or what started a run.
type Trigger struct {
	// Kind is api, schedule, webhook or rerun.
	Kind string `json:"kind"`
	// By is the acting principal ("user:<id>" or "token:<id>").
	By string `json:"by"`
	// UserID is the user the run acts for, with Roles, the bindings they
	// held when they started it: its scope limits the targets and the
	// credentials, and a role taken away since stops working.
	UserID     string             `json:"user_id,omitempty"`
	Roles      []identity.Binding `json:"roles,omitempty"`
	Schedule   string             `json:"schedule,omitempty"`
	ScheduleID string             `json:"schedule_id,omitempty"`
	FireTime   *time.Time         `json:"fire_time,omitempty"`
	RerunOf    string             `json:"rerun_of,omitempty"`
	// TriggerID and DeliveryID name the inbound webhook that started it.
	TriggerID  string `json:"trigger_id,omitempty"`
	DeliveryID string `json:"delivery_id,omitempty"`
}

// RunTarget is a target as it was when the run was created: expressions
// see these values, whatever the inventory says later.
type RunTarget struct {
	Name       string            `json:"name"`
	Address    string            `json:"address,omitempty"`
	AgentID    string            `json:"agent_id"`
	Connection string            `json:"connection"`
	Tags       map[string]string `json:"tags,omitempty"`
	Facts      map[string]any    `json:"facts,omitempty"`
	// Keep carries a rerun's earlier results: steps listed here are not
	// run again and count as they ended before.
	Keep map[string]KeptStep `json:"keep,omitempty"`
}

// KeptStep is a step result a rerun starts from.
type KeptStep struct {
	Status  string            `json:"status"`
	Outputs map[string]string `json:"outputs,omitempty"`
	Changed bool              `json:"changed,omitempty"`
}

// Approval is the state of one approval step of a run; an approval gates
// the step on every target at once.
type Approval struct {
	Step        string     `json:"step"`
	Status      string     `json:"status"` // pending, approved, rejected, expired
	Message     string     `json:"message,omitempty"`
	RequestedAt time.Time  `json:"requested_at"`
	Deadline    time.Time  `json:"deadline"`
	DecidedAt   *time.Time `json:"decided_at,omitempty"`
	DecidedBy   string     `json:"decided_by,omitempty"`
	Comment     string     `json:"comment,omitempty"`
}

// Approval states.
const (
	ApprovalPending  = "pending"
	ApprovalApproved = "approved"
	ApprovalRejected = "rejected"
	ApprovalExpired  = "expired"
)

// StepError is a step that failed before any attempt reached an agent
// (its parameters did not render, a credential was refused, the agent
// never came).
type StepError struct {
	Target string    `json:"target"`
	Step   string    `json:"step"`
	Error  string    `json:"error"`
	At     time.Time `json:"at"`
}

// Run is one execution of one job version. Its per-target detail is
// derived (see view.go); this row is what is replicated.
type Run struct {
	ID      string          `json:"id"`
	Job     string          `json:"job"`
	Version int             `json:"version"`
	Spec    json.RawMessage `json:"spec"`
	Params  map[string]any  `json:"params"`
	// Secret holds the secret parameters, sealed by the keyring for this
	// run (secrets.go); Params never has them.
	Secret keyring.Sealed `json:"secret_params,omitzero"`
	// SecretNames names what Secret holds, for showing them masked.
	SecretNames []string `json:"secret_names,omitempty"`
	Trigger     Trigger  `json:"trigger"`
	// Status is the run's state; Reason says why it waits or how it ended.
	Status    string      `json:"status"`
	Reason    string      `json:"reason,omitempty"`
	Targets   []RunTarget `json:"targets"`
	BatchSize int         `json:"batch_size"`
	// Approvals by step ID.
	Approvals  map[string]*Approval `json:"approvals,omitempty"`
	StepErrors []StepError          `json:"step_errors,omitempty"`
	// CancelRequested is set once, by a person, the job's timeout or a
	// failover that found the run unrecoverable.
	CancelRequested *time.Time `json:"cancel_requested_at,omitempty"`
	CanceledBy      string     `json:"canceled_by,omitempty"`
	// CancelTargets cancels only some targets.
	CancelTargets []string   `json:"cancel_targets,omitempty"`
	CreatedAt     time.Time  `json:"created_at"`
	StartedAt     *time.Time `json:"started_at,omitempty"`
	FinishedAt    *time.Time `json:"finished_at,omitempty"`
	// Seq orders runs by creation (a commit counter), for listing.
	Seq uint64 `json:"seq"`
}

func (r *Run) clone() *Run {
	c := *r
	c.Params = maps.Clone(r.Params)
	c.Targets = slices.Clone(r.Targets)
	c.Approvals = make(map[string]*Approval, len(r.Approvals))
	for k, a := range r.Approvals {
		cp := *a
		c.Approvals[k] = &cp
	}
	c.StepErrors = slices.Clone(r.StepErrors)
	c.SecretNames = slices.Clone(r.SecretNames)
	c.CancelTargets = slices.Clone(r.CancelTargets)
	return &c
}

// stepError returns the recorded pre-dispatch failure of a step, if any.
func (r *Run) stepError(target, step string) (StepError, bool) {
	for _, e := range r.StepErrors {
		if e.Target == target && e.Step == step {
			return e, true
		}
	}
	return StepError{}, false
}

// targetCanceled reports whether the target was canceled alone or with
// the run.
func (r *Run) targetCanceled(name string) bool {
	return r.CancelRequested != nil || slices.Contains(r.CancelTargets, name)
}
