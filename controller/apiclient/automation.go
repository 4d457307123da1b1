package apiclient

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/gorilla/websocket"
)

// The automation API's documents (jobs, runs, their logs and the live
// stream), mirroring the controller's JSON (controller/automation).

// Job is the head of a job: its name and newest version.
type Job struct {
	Name          string    `json:"name"`
	Description   string    `json:"description,omitempty"`
	LatestVersion int       `json:"latest_version"`
	CreatedAt     time.Time `json:"created_at"`
	CreatedBy     string    `json:"created_by"`
	UpdatedAt     time.Time `json:"updated_at"`
	UpdatedBy     string    `json:"updated_by"`
}

// JobVersion is one saved definition. Source is the definition as it was
// sent; Spec the parsed one. Version lists leave both out.
type JobVersion struct {
	Name      string          `json:"name"`
	Version   int             `json:"version"`
	Source    string          `json:"source,omitempty"`
	Spec      json.RawMessage `json:"spec,omitempty"`
	Digest    string          `json:"digest"`
	CreatedAt time.Time       `json:"created_at"`
	CreatedBy string          `json:"created_by"`
}

// JobDetail is a job with one version's definition.
type JobDetail struct {
	Job
	Version JobVersion `json:"version"`
}

// JobPutResult is what a save did: the version it made, or the newest
// one with Unchanged when the definition was the same.
type JobPutResult struct {
	Job       Job        `json:"job"`
	Version   JobVersion `json:"version"`
	Unchanged bool       `json:"unchanged"`
}

// RunRequest starts a run. Params values may be strings: the server
// coerces them to the parameter's type.
type RunRequest struct {
	Params  map[string]any `json:"params,omitempty"`
	Targets []string       `json:"targets,omitempty"`
	Version int            `json:"version,omitempty"`
}

// Trigger says who or what started a run.
type Trigger struct {
	Kind       string     `json:"kind"`
	By         string     `json:"by"`
	UserID     string     `json:"user_id,omitempty"`
	Schedule   string     `json:"schedule,omitempty"`
	ScheduleID string     `json:"schedule_id,omitempty"`
	FireTime   *time.Time `json:"fire_time,omitempty"`
	RerunOf    string     `json:"rerun_of,omitempty"`
}

// Approval is the state of one approval step of a run.
type Approval struct {
	Step        string     `json:"step"`
	Status      string     `json:"status"`
	Message     string     `json:"message,omitempty"`
	RequestedAt time.Time  `json:"requested_at"`
	Deadline    time.Time  `json:"deadline"`
	DecidedAt   *time.Time `json:"decided_at,omitempty"`
	DecidedBy   string     `json:"decided_by,omitempty"`
	Comment     string     `json:"comment,omitempty"`
}

// RunStep is one step on one target of a run.
type RunStep struct {
	ID         string            `json:"id"`
	Status     string            `json:"status"`
	Reason     string            `json:"reason,omitempty"`
	AttemptID  string            `json:"attempt_id,omitempty"`
	Try        int               `json:"try,omitempty"`
	Attempts   []string          `json:"attempts,omitempty"`
	ExitCode   *int              `json:"exit_code,omitempty"`
	Error      string            `json:"error,omitempty"`
	StartedAt  *time.Time        `json:"started_at,omitempty"`
	FinishedAt *time.Time        `json:"finished_at,omitempty"`
	Outputs    map[string]string `json:"outputs,omitempty"`
	Changed    bool              `json:"changed,omitempty"`
	RetryAt    *time.Time        `json:"retry_at,omitempty"`
}

// RunTarget is one target of a run with its steps.
type RunTarget struct {
	Name    string    `json:"name"`
	AgentID string    `json:"agent_id"`
	Batch   int       `json:"batch"`
	Status  string    `json:"status"`
	Steps   []RunStep `json:"steps"`
}

// RunSummary counts a run's targets by status.
type RunSummary struct {
	Targets   int `json:"targets"`
	Pending   int `json:"pending"`
	Running   int `json:"running"`
	Waiting   int `json:"waiting"`
	Succeeded int `json:"succeeded"`
	Failed    int `json:"failed"`
	Canceled  int `json:"canceled"`
	Skipped   int `json:"skipped"`
}

// Run is one execution of a job version. Lists leave Targets out.
type Run struct {
	ID              string      `json:"id"`
	Job             string      `json:"job"`
	Version         int         `json:"version"`
	Params          any         `json:"params"`
	Trigger         Trigger     `json:"trigger"`
	Status          string      `json:"status"`
	Reason          string      `json:"reason,omitempty"`
	BatchSize       int         `json:"batch_size"`
	Approvals       []Approval  `json:"approvals,omitempty"`
	CancelRequested *time.Time  `json:"cancel_requested_at,omitempty"`
	CanceledBy      string      `json:"canceled_by,omitempty"`
	CreatedAt       time.Time   `json:"created_at"`
	StartedAt       *time.Time  `json:"started_at,omitempty"`
	FinishedAt      *time.Time  `json:"finished_at,omitempty"`
	Summary         RunSummary  `json:"summary"`
	Targets         []RunTarget `json:"targets,omitempty"`
	Hidden          int         `json:"hidden,omitempty"`
}

// Run states.
const (
	RunQueued    = "queued"
	RunWaiting   = "waiting"
	RunRunning   = "running"
	RunSucceeded = "succeeded"
	RunFailed    = "failed"
	RunCanceled  = "canceled"
)

// Finished reports whether the run's outcome is decided.
func (r Run) Finished() bool { return RunFinal(r.Status) }

// RunFinal reports whether a run status is a final one.
func RunFinal(status string) bool {
	return status == RunSucceeded || status == RunFailed || status == RunCanceled
}

// RunQuery filters GET /api/v1/runs.
type RunQuery struct {
	Job    string
	Status string
	Target string
	Since  time.Time
	Limit  int
	Cursor string
}

// RunPage is a page of runs, newest first; Next continues it.
type RunPage struct {
	Items []Run  `json:"items"`
	Next  string `json:"next,omitempty"`
}

// RunLogLine is one chunk of a run's output.
type RunLogLine struct {
	Target    string    `json:"target"`
	Step      string    `json:"step"`
	AttemptID string    `json:"attempt_id"`
	Try       int       `json:"try"`
	Seq       uint64    `json:"seq"`
	Stream    string    `json:"stream"`
	Data      string    `json:"data"`
	Time      time.Time `json:"time"`
}

// RunLogQuery selects a run's output: one target, one step, a page after
// the cursor a previous page returned.
type RunLogQuery struct {
	Target string
	Step   string
	After  string
	Limit  int
}

// RunLogPage is a page of output; Next is the cursor to ask after.
type RunLogPage struct {
	Items []RunLogLine `json:"items"`
	Next  string       `json:"next"`
}

// Rerun modes.
const (
	RerunAll    = "all"
	RerunFailed = "failed"
	RerunResume = "resume"
)

const jobsBase, runsBase = "/api/v1/jobs", "/api/v1/runs"

func jobPath(name string, rest ...string) string {
	return jobsBase + "/" + url.PathEscape(name) + strings.Join(rest, "")
}

func runPath(id string, rest ...string) string {
	return runsBase + "/" + url.PathEscape(id) + strings.Join(rest, "")
}

// definitionType is the Content-Type of a job definition: JSON when it
// is a JSON object, YAML otherwise (YAML is a superset, but the server
// reports JSON syntax errors better when told).
func definitionType(def []byte) string {
	if t := bytes.TrimSpace(def); len(t) > 0 && t[0] == '{' && json.Valid(t) {
		return "application/json"
	}
	return "application/yaml"
}

// sendDefinition sends a job definition as it is written (YAML or JSON),
// so that the server keeps its source, comments included.
func (c *Client) sendDefinition(ctx context.Context, method, path string, def []byte, out any) error {
	body := func() (io.Reader, bool) { return bytes.NewReader(def), true }
	resp, err := c.roundTrip(ctx, method, path, body, definitionType(def))
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
		return fmt.Errorf("%s %s: decode response: %w", method, path, err)
	}
	return nil
}

// PutJob saves a definition (YAML or JSON) as the job's next version.
func (c *Client) PutJob(ctx context.Context, name string, def []byte) (JobPutResult, error) {
	var out JobPutResult
	err := c.sendDefinition(ctx, http.MethodPut, jobPath(name), def, &out)
	return out, err
}

// ValidateJob checks a definition without saving it. A definition with
// problems is an *Error whose Details name each one's field.
func (c *Client) ValidateJob(ctx context.Context, name string, def []byte) error {
	var out struct {
		Valid bool `json:"valid"`
	}
	if err := c.sendDefinition(ctx, http.MethodPost, jobPath(name, "/validate"), def, &out); err != nil {
		return err
	}
	if !out.Valid {
		return fmt.Errorf("validate job %s: the server did not say the definition is valid", name)
	}
	return nil
}

// ListJobs returns every job, by name.
func (c *Client) ListJobs(ctx context.Context) ([]Job, error) {
	var out items[Job]
	err := c.do(ctx, http.MethodGet, jobsBase, nil, &out)
	return out.Items, err
}

// GetJob returns a job with its newest version, or version when > 0.
func (c *Client) GetJob(ctx context.Context, name string, version int) (JobDetail, error) {
	var out JobDetail
	path := jobPath(name)
	if version > 0 {
		path += "?version=" + strconv.Itoa(version)
	}
	err := c.do(ctx, http.MethodGet, path, nil, &out)
	return out, err
}

// JobVersions lists a job's versions, newest first, without their source.
func (c *Client) JobVersions(ctx context.Context, name string) ([]JobVersion, error) {
	var out items[JobVersion]
	err := c.do(ctx, http.MethodGet, jobPath(name, "/versions"), nil, &out)
	return out.Items, err
}

// DeleteJob removes a job and its versions.
func (c *Client) DeleteJob(ctx context.Context, name string) error {
	return c.do(ctx, http.MethodDelete, jobPath(name), nil, nil)
}

// StartRun starts a run of a job.
func (c *Client) StartRun(ctx context.Context, job string, req RunRequest) (Run, error) {
	var out Run
	err := c.do(ctx, http.MethodPost, jobPath(job, "/runs"), req, &out)
	return out, err
}

// ListRuns returns one page of runs, newest first.
func (c *Client) ListRuns(ctx context.Context, q RunQuery) (RunPage, error) {
	v := url.Values{}
	for k, s := range map[string]string{"job": q.Job, "status": q.Status, "target": q.Target, "cursor": q.Cursor} {
		if s != "" {
			v.Set(k, s)
		}
	}
	if !q.Since.IsZero() {
		v.Set("since", q.Since.UTC().Format(time.RFC3339))
	}
	if q.Limit > 0 {
		v.Set("limit", strconv.Itoa(q.Limit))
	}
	var out RunPage
	err := c.do(ctx, http.MethodGet, withQuery(runsBase, v), nil, &out)
	return out, err
}

// GetRun returns a run with what happened on each target.
func (c *Client) GetRun(ctx context.Context, id string) (Run, error) {
	var out Run
	err := c.do(ctx, http.MethodGet, runPath(id), nil, &out)
	return out, err
}

func (q RunLogQuery) values() url.Values {
	v := url.Values{}
	for k, s := range map[string]string{"target": q.Target, "step": q.Step, "after": q.After} {
		if s != "" {
			v.Set(k, s)
		}
	}
	if q.Limit > 0 {
		v.Set("limit", strconv.Itoa(q.Limit))
	}
	return v
}

// RunLogs returns one page of a run's stored output, target by target,
// step by step, try by try.
func (c *Client) RunLogs(ctx context.Context, id string, q RunLogQuery) (RunLogPage, error) {
	var out RunLogPage
	err := c.do(ctx, http.MethodGet, withQuery(runPath(id, "/logs"), q.values()), nil, &out)
	return out, err
}

// AllRunLogs reads every page of a run's stored output.
func (c *Client) AllRunLogs(ctx context.Context, id string, q RunLogQuery) ([]RunLogLine, error) {
	var all []RunLogLine
	for {
		page, err := c.RunLogs(ctx, id, q)
		if err != nil {
			return all, err
		}
		all = append(all, page.Items...)
		// A short page is the end; so is a cursor that did not move.
		if len(page.Items) == 0 || page.Next == "" || page.Next == q.After {
			return all, nil
		}
		q.After = page.Next
	}
}

// RunLogText writes a run's whole output as the server renders it for
// download: lines of "target step | data".
func (c *Client) RunLogText(ctx context.Context, id string, q RunLogQuery, w io.Writer) error {
	q.After, q.Limit = "", 0
	v := q.values()
	v.Set("format", "text")
	path := withQuery(runPath(id, "/logs"), v)
	resp, err := c.roundTrip(ctx, http.MethodGet, path, noBody, "")
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if _, err := io.Copy(w, resp.Body); err != nil {
		return fmt.Errorf("download the output of run %s: %w", id, err)
	}
	return nil
}

// CancelRun cancels a run, or only the named targets.
func (c *Client) CancelRun(ctx context.Context, id string, targets []string) (Run, error) {
	var out Run
	body := struct {
		Targets []string `json:"targets,omitempty"`
	}{targets}
	err := c.do(ctx, http.MethodPost, runPath(id, "/cancel"), body, &out)
	return out, err
}

// Rerun starts a new run of a finished one: mode is RerunAll, RerunFailed
// (the targets that did not succeed) or RerunResume (those, from the step
// that failed, keeping earlier results).
func (c *Client) Rerun(ctx context.Context, id, mode string) (Run, error) {
	var out Run
	err := c.do(ctx, http.MethodPost, runPath(id, "/rerun"), map[string]string{"mode": mode}, &out)
	return out, err
}

// DecideApproval approves or rejects a run's approval step.
func (c *Client) DecideApproval(ctx context.Context, id, step string, approve bool, comment string) (Approval, error) {
	var out Approval
	body := map[string]any{"approve": approve, "comment": comment}
	err := c.do(ctx, http.MethodPost, runPath(id, "/approvals/", url.PathEscape(step)), body, &out)
	return out, err
}

// --- the live stream ---------------------------------------------------------

// The live stream's event types (controller/automation/live).
const (
	EventHello   = "hello"
	EventRun     = "run"
	EventAttempt = "attempt"
	EventLog     = "log"
	EventGap     = "gap"
	EventEnd     = "end"
)

// RunEvent is one message of a run's live stream. Data depends on Type:
// RunStreamHello, RunEventState, AttemptEvent or RunLogLine; a gap says
// the events From..To were skipped and can be read over REST.
type RunEvent struct {
	Seq  uint64          `json:"seq"`
	Type string          `json:"type"`
	Time time.Time       `json:"time"`
	Data json.RawMessage `json:"data,omitempty"`
	From uint64          `json:"from,omitempty"`
	To   uint64          `json:"to,omitempty"`
}

// RunStreamHello is the data of the first event of every stream.
type RunStreamHello struct {
	RunID     string `json:"run_id"`
	Epoch     string `json:"epoch"`
	Head      uint64 `json:"head"`
	Oldest    uint64 `json:"oldest"`
	Restarted bool   `json:"restarted,omitempty"`
}

// RunEventState is the data of a "run" event: the run without targets.
type RunEventState struct {
	ID         string     `json:"id"`
	Job        string     `json:"job"`
	Version    int        `json:"version"`
	Status     string     `json:"status"`
	Reason     string     `json:"reason,omitempty"`
	StartedAt  *time.Time `json:"started_at,omitempty"`
	FinishedAt *time.Time `json:"finished_at,omitempty"`
}

// AttemptEvent is the data of an "attempt" event: a target's step
// changed. Status is the attempt's (pending, running, succeeded, failed,
// error, timed_out, canceled, lost).
type AttemptEvent struct {
	Target     string            `json:"target"`
	Step       string            `json:"step"`
	AttemptID  string            `json:"attempt_id"`
	Try        int               `json:"try"`
	Status     string            `json:"status"`
	ExitCode   *int              `json:"exit_code,omitempty"`
	Error      string            `json:"error,omitempty"`
	StartedAt  *time.Time        `json:"started_at,omitempty"`
	FinishedAt *time.Time        `json:"finished_at,omitempty"`
	Outputs    map[string]string `json:"outputs,omitempty"`
	Changed    bool              `json:"changed,omitempty"`
}

// streamSubprotocol is the live stream's websocket subprotocol.
const streamSubprotocol = "opsconductor.v1"

// RunStream is an open live stream of one run. Next is not safe for
// concurrent use; Close may be called from any goroutine.
type RunStream struct {
	conn *websocket.Conn
	// stop ends the goroutine that closes conn when ctx ends.
	stop      chan struct{}
	done      chan struct{}
	closeOnce sync.Once
	ended     bool
}

// StreamRun opens the live stream of a run, resuming after the event
// numbered after of the epoch a hello named (0 and "" from the start).
// The stream closes when ctx ends. A server that refused the websocket
// answers with an *Error like any other request.
func (c *Client) StreamRun(ctx context.Context, id string, after uint64, epoch string) (*RunStream, error) {
	u := c.base.JoinPath()
	switch strings.ToLower(u.Scheme) {
	case "https":
		u.Scheme = "wss"
	default:
		u.Scheme = "ws"
	}
	u = u.JoinPath(runPath(id, "/stream"))
	q := url.Values{}
	if after > 0 {
		q.Set("after", strconv.FormatUint(after, 10))
	}
	if epoch != "" {
		q.Set("epoch", epoch)
	}
	u.RawQuery = q.Encode()
	token := ""
	if c.auth != nil {
		var err error
		if token, err = c.auth.Token(ctx); err != nil {
			return nil, err
		}
	}
	conn, err := c.dialStream(ctx, u, token)
	var apiErr *Error
	if errors.As(err, &apiErr) && apiErr.Status == http.StatusUnauthorized && token != "" {
		// As for any request: a refused access token is refreshed once.
		if r, ok := c.auth.(Refresher); ok {
			fresh, rerr := r.Refresh(ctx, token)
			if rerr != nil {
				return nil, rerr
			}
			conn, err = c.dialStream(ctx, u, fresh)
		}
	}
	if err != nil {
		return nil, err
	}
	s := &RunStream{conn: conn, stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(s.done)
		select {
		case <-ctx.Done():
			_ = conn.Close() // unblocks Next
		case <-s.stop:
		}
	}()
	return s, nil
}

// dialStream opens the websocket with the token in the Authorization
// header (never the URL, which ends up in logs).
func (c *Client) dialStream(ctx context.Context, u *url.URL, token string) (*websocket.Conn, error) {
	h := http.Header{}
	if token != "" {
		h.Set("Authorization", "Bearer "+token)
	}
	d := websocket.Dialer{Proxy: http.ProxyFromEnvironment, HandshakeTimeout: 15 * time.Second,
		Subprotocols: []string{streamSubprotocol}}
	conn, resp, err := d.DialContext(ctx, u.String(), h)
	if err == nil {
		return conn, nil
	}
	redacted := *u
	redacted.RawQuery = ""
	if resp == nil {
		return nil, fmt.Errorf("open the live stream %s: %w", redacted.String(), err)
	}
	defer resp.Body.Close()
	var env struct {
		Error Error `json:"error"`
	}
	raw, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	if json.Unmarshal(raw, &env) != nil || env.Error.Message == "" {
		env.Error = Error{Code: "http_error", Message: strings.TrimSpace(string(raw))}
		if env.Error.Message == "" {
			env.Error.Message = fmt.Sprintf("open the live stream %s: %v", redacted.String(), err)
		}
	}
	env.Error.Status = resp.StatusCode
	if secs, err := strconv.Atoi(resp.Header.Get("Retry-After")); err == nil && secs >= 0 {
		env.Error.RetryAfter = time.Duration(secs) * time.Second
	}
	return nil, &env.Error
}

// Next returns the stream's next event. After the "end" event, or when
// the server closes the stream normally, it returns io.EOF; any other
// error means the stream broke and can be resumed with a new StreamRun
// after the last Seq handled.
func (s *RunStream) Next() (RunEvent, error) {
	if s.ended {
		return RunEvent{}, io.EOF
	}
	for {
		kind, msg, err := s.conn.ReadMessage()
		if err != nil {
			if websocket.IsCloseError(err, websocket.CloseNormalClosure) {
				return RunEvent{}, io.EOF
			}
			return RunEvent{}, fmt.Errorf("read the live stream: %w", err)
		}
		if kind != websocket.TextMessage {
			continue
		}
		var ev RunEvent
		if err := json.Unmarshal(msg, &ev); err != nil {
			return RunEvent{}, fmt.Errorf("read the live stream: a message is not an event: %w", err)
		}
		if ev.Type == EventEnd {
			s.ended = true
		}
		return ev, nil
	}
}

// Close closes the stream, saying goodbye to the server when it can.
func (s *RunStream) Close() error {
	var err error
	s.closeOnce.Do(func() {
		close(s.stop)
		<-s.done
		_ = s.conn.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(websocket.CloseNormalClosure, ""),
			time.Now().Add(time.Second))
		if cerr := s.conn.Close(); cerr != nil && !errors.Is(cerr, net.ErrClosed) {
			err = cerr
		}
	})
	return err
}

// WaitRunEnd follows run's live stream until a run event says it ended and
// returns that state; a run already finished returns at once. It is how
// load drivers and tests time a run from its start to its end without
// polling.
func (c *Client) WaitRunEnd(ctx context.Context, run Run) (RunEventState, error) {
	if run.Finished() {
		return RunEventState{ID: run.ID, Status: run.Status, Reason: run.Reason, FinishedAt: run.FinishedAt}, nil
	}
	s, err := c.StreamRun(ctx, run.ID, 0, "")
	if err != nil {
		return RunEventState{}, fmt.Errorf("stream run %s: %w", run.ID, err)
	}
	defer s.Close()
	for {
		ev, err := s.Next()
		if errors.Is(err, io.EOF) {
			return RunEventState{}, fmt.Errorf("run %s: the stream ended before the run did", run.ID)
		}
		if err != nil {
			return RunEventState{}, fmt.Errorf("run %s: %w", run.ID, err)
		}
		if ev.Type != EventRun {
			continue
		}
		var st RunEventState
		if err := json.Unmarshal(ev.Data, &st); err != nil {
			return RunEventState{}, fmt.Errorf("run %s: a run event: %w", run.ID, err)
		}
		if RunFinal(st.Status) {
			return st, nil
		}
	}
}
