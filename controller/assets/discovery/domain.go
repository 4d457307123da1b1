// Package discovery finds hosts on the network: profiles say what to scan
// (CIDR ranges, ports, rate) and which agent scans; a scan dispatches the
// agent's built-in discover step, reads its result lines from the attempt
// log, stores the hosts in the history store and compares them with the
// profile's previous scan (appeared, changed, disappeared). Hosts not yet
// in the inventory are proposed as targets and imported on request, or by
// the profile's auto-import rule.
//
// Scanning is work done to other people's machines, so it is refused
// outside the ranges an admin allowed for the scanning agent (none by
// default; loopback for the dev server's own agent), and the rate is
// capped twice: here and in the step itself.
package discovery

import (
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/hashicorp/go-memdb"

	"github.com/opsconductor/opsconductor/controller/communication/notify"
	"github.com/opsconductor/opsconductor/controller/communication/tmpl"
	"github.com/opsconductor/opsconductor/controller/problem"
	"github.com/opsconductor/opsconductor/controller/state"
)

const (
	tableProfiles = "assets_discovery_profiles"
	tableScans    = "assets_discovery_scans"
	tableRanges   = "assets_discovery_ranges"
)

// Command types. Appended, never renamed or reused.
const (
	cmdProfilePut    = "assets.discovery.profile.put"
	cmdProfileDelete = "assets.discovery.profile.delete"
	cmdRangesPut     = "assets.discovery.ranges.put"
	cmdScanCreate    = "assets.discovery.scan.create"
	cmdScanUpdate    = "assets.discovery.scan.update"
	cmdScheduleFire  = "assets.discovery.schedule.fire"
)

// Scan states.
const (
	ScanQueued    = "queued"
	ScanRunning   = "running"
	ScanSucceeded = "succeeded"
	ScanFailed    = "failed"
	ScanCanceled  = "canceled"
)

// AutoImport imports found hosts without a request: those with one of
// Ports open, as SSH targets relayed by the scanning agent, with Tags.
type AutoImport struct {
	Ports []int             `json:"ports"`
	Tags  map[string]string `json:"tags,omitempty"`
}

// Profile is what to scan and from where.
type Profile struct {
	Name  string   `json:"name"`
	CIDRs []string `json:"cidrs"`
	Ports []string `json:"ports,omitempty"`
	// Agent is the ID of the agent that scans.
	Agent         string      `json:"agent"`
	Concurrency   int         `json:"concurrency,omitempty"`
	Rate          int         `json:"rate,omitempty"`
	Timeout       string      `json:"timeout,omitempty"`
	BannerTimeout string      `json:"banner_timeout,omitempty"`
	Resolve       *bool       `json:"resolve,omitempty"`
	AutoImport    *AutoImport `json:"auto_import,omitempty"`
	// Schedule is a cron spec (five fields, or @hourly, @daily …) in
	// TimeZone (an IANA name; UTC when empty). The leader fires it.
	Schedule string `json:"schedule,omitempty"`
	TimeZone string `json:"time_zone,omitempty"`
	// LastFire is the last scheduled time that was fired, committed before
	// its scan is dispatched: a new leader neither fires it again nor
	// skips the next one.
	LastFire  *time.Time `json:"last_fire,omitempty"`
	CreatedAt time.Time  `json:"created_at"`
	CreatedBy string     `json:"created_by,omitempty"`
	// OwnerID is the user who last saved the profile: its scheduled
	// scans act for them (an auto-import is written as them).
	OwnerID   string    `json:"owner_id,omitempty"`
	UpdatedAt time.Time `json:"updated_at"`
	Revision  uint64    `json:"revision"`
}

func (p *Profile) clone() *Profile {
	c := *p
	c.CIDRs = slices.Clone(p.CIDRs)
	c.Ports = slices.Clone(p.Ports)
	if p.Resolve != nil {
		r := *p.Resolve
		c.Resolve = &r
	}
	if p.LastFire != nil {
		t := *p.LastFire
		c.LastFire = &t
	}
	if p.AutoImport != nil {
		a := AutoImport{Ports: slices.Clone(p.AutoImport.Ports), Tags: maps.Clone(p.AutoImport.Tags)}
		c.AutoImport = &a
	}
	return &c
}

// Ranges are the CIDR ranges one agent may scan.
type Ranges struct {
	Agent     string    `json:"agent"`
	CIDRs     []string  `json:"cidrs"`
	UpdatedAt time.Time `json:"updated_at"`
	UpdatedBy string    `json:"updated_by,omitempty"`
}

// Progress is how far a running scan is.
type Progress struct {
	Probed int64 `json:"probed"`
	Total  int64 `json:"total"`
	Up     int64 `json:"up"`
}

// Summary counts a finished scan's findings and its differences from the
// previous successful scan of the same profile.
type Summary struct {
	HostsUp     int `json:"hosts_up"`
	OpenPorts   int `json:"open_ports"`
	Appeared    int `json:"appeared"`
	Changed     int `json:"changed"`
	Disappeared int `json:"disappeared"`
	// Proposed are hosts found that the inventory does not hold.
	Proposed int `json:"proposed"`
	// AutoImported are hosts the profile's rule imported.
	AutoImported int `json:"auto_imported"`
}

// Scan is one run of a profile.
type Scan struct {
	ID      string `json:"id"`
	Profile string `json:"profile"`
	Agent   string `json:"agent"`
	// Params is the step's parameters as sent (the profile may change
	// after).
	Params    ScanParams `json:"params"`
	AttemptID string     `json:"attempt_id,omitempty"`
	Status    string     `json:"status"`
	Error     string     `json:"error,omitempty"`
	Progress  Progress   `json:"progress"`
	Summary   *Summary   `json:"summary,omitempty"`
	// Previous is the scan this one is compared with ("" for the first).
	Previous   string     `json:"previous,omitempty"`
	CreatedAt  time.Time  `json:"created_at"`
	CreatedBy  string     `json:"created_by,omitempty"`
	StartedAt  *time.Time `json:"started_at,omitempty"`
	FinishedAt *time.Time `json:"finished_at,omitempty"`
	// Controller is the node running the scan; a scan left running by a
	// controller that lost leadership is failed by the next leader.
	Controller string `json:"controller,omitempty"`
}

// ScanParams is the discover step's parameters.
type ScanParams struct {
	CIDRs         []string `json:"cidrs"`
	Ports         []string `json:"ports,omitempty"`
	Concurrency   int      `json:"concurrency,omitempty"`
	Rate          int      `json:"rate,omitempty"`
	Timeout       string   `json:"timeout,omitempty"`
	BannerTimeout string   `json:"banner_timeout,omitempty"`
	Resolve       *bool    `json:"resolve,omitempty"`
}

// Finished reports whether the scan is over.
func (s *Scan) Finished() bool {
	return s.Status == ScanSucceeded || s.Status == ScanFailed || s.Status == ScanCanceled
}

func (s *Scan) clone() *Scan {
	c := *s
	c.Params.CIDRs = slices.Clone(s.Params.CIDRs)
	c.Params.Ports = slices.Clone(s.Params.Ports)
	if s.Summary != nil {
		sm := *s.Summary
		c.Summary = &sm
	}
	return &c
}

// Domain returns the discovery tables and commands for the state registry.
func Domain() state.Domain { return DomainWithEvents(nil) }

// DomainWithEvents is Domain that raises discovery.found when a scan
// finds hosts that appeared, changed or disappeared.
func DomainWithEvents(emit notify.Emitter) state.Domain {
	return state.Domain{
		Name: "assets.discovery",
		Tables: []state.Table{
			{Schema: &memdb.TableSchema{Name: tableProfiles, Indexes: map[string]*memdb.IndexSchema{
				"id": {Name: "id", Unique: true, Indexer: &memdb.StringFieldIndex{Field: "Name"}},
			}}, New: func() any { return &Profile{} }},
			{Schema: &memdb.TableSchema{Name: tableScans, Indexes: map[string]*memdb.IndexSchema{
				"id":      {Name: "id", Unique: true, Indexer: &memdb.StringFieldIndex{Field: "ID"}},
				"profile": {Name: "profile", Indexer: &memdb.StringFieldIndex{Field: "Profile"}},
			}}, New: func() any { return &Scan{} }},
			{Schema: &memdb.TableSchema{Name: tableRanges, Indexes: map[string]*memdb.IndexSchema{
				"id": {Name: "id", Unique: true, Indexer: &memdb.StringFieldIndex{Field: "Agent"}},
			}}, New: func() any { return &Ranges{} }},
		},
		Commands: map[string]state.Handler{
			cmdProfilePut:    state.V1(applyProfilePut),
			cmdProfileDelete: state.V1(applyProfileDelete),
			cmdRangesPut:     state.V1(applyRangesPut),
			cmdScanCreate:    state.V1(applyScanCreate),
			cmdScanUpdate:    state.V1(scanUpdateWithEvents(emit)),
			cmdScheduleFire:  state.V1(applyScheduleFire),
		},
	}
}

type profilePutPayload struct {
	Profile Profile `json:"profile"`
	Create  bool    `json:"create"`
	// Revision, when not 0, must be the stored profile's.
	Revision uint64 `json:"revision,omitempty"`
	Actor    string `json:"actor"`
	UserID   string `json:"user_id,omitempty"`
}

func applyProfilePut(ctx *state.ApplyContext, p profilePutPayload) (any, error) {
	raw, err := ctx.Txn.First(tableProfiles, "id", p.Profile.Name)
	if err != nil {
		return nil, err
	}
	pr := p.Profile.clone()
	switch {
	case raw != nil && p.Create:
		return nil, problem.New(problem.KindConflict, "profile_exists", "discovery profile %q exists", pr.Name)
	case raw == nil && !p.Create:
		return nil, notFound("discovery_profile", pr.Name)
	case raw != nil:
		old := raw.(*Profile)
		if p.Revision != 0 && p.Revision != old.Revision {
			return nil, problem.New(problem.KindConflict, "revision_mismatch",
				"discovery profile %q is at revision %d, not %d: read it again", pr.Name, old.Revision, p.Revision)
		}
		pr.CreatedAt, pr.CreatedBy = old.CreatedAt, old.CreatedBy
		// The fire record survives an edit, so that changing the ports
		// does not make the schedule fire twice in one slot.
		pr.LastFire = old.LastFire
	default:
		pr.CreatedAt, pr.CreatedBy = ctx.Time, p.Actor
	}
	pr.UpdatedAt, pr.Revision, pr.OwnerID = ctx.Time, ctx.Index, p.UserID
	if err := ctx.Txn.Insert(tableProfiles, pr); err != nil {
		return nil, err
	}
	return *pr, nil
}

type namePayload struct {
	Name string `json:"name"`
}

func applyProfileDelete(ctx *state.ApplyContext, p namePayload) (any, error) {
	raw, err := ctx.Txn.First(tableProfiles, "id", p.Name)
	if err != nil {
		return nil, err
	}
	if raw == nil {
		return nil, notFound("discovery_profile", p.Name)
	}
	// A profile with a scan still going keeps it: the scan's results
	// need their profile to be compared and imported.
	it, err := ctx.Txn.Get(tableScans, "profile", p.Name)
	if err != nil {
		return nil, err
	}
	for o := it.Next(); o != nil; o = it.Next() {
		if sc := o.(*Scan); !sc.Finished() {
			return nil, problem.New(problem.KindConflict, "scan_running",
				"discovery profile %q has scan %s %s: cancel it or wait", p.Name, sc.ID, sc.Status)
		}
	}
	if err := ctx.Txn.Delete(tableProfiles, raw); err != nil {
		return nil, err
	}
	return *raw.(*Profile), nil
}

type rangesPutPayload struct {
	Ranges Ranges `json:"ranges"`
}

func applyRangesPut(ctx *state.ApplyContext, p rangesPutPayload) (any, error) {
	r := p.Ranges
	r.CIDRs = slices.Clone(r.CIDRs)
	r.UpdatedAt = ctx.Time
	raw, err := ctx.Txn.First(tableRanges, "id", r.Agent)
	if err != nil {
		return nil, err
	}
	if len(r.CIDRs) == 0 {
		if raw != nil {
			if err := ctx.Txn.Delete(tableRanges, raw); err != nil {
				return nil, err
			}
		}
		return r, nil
	}
	if err := ctx.Txn.Insert(tableRanges, &r); err != nil {
		return nil, err
	}
	return r, nil
}

type scanCreatePayload struct {
	Scan Scan `json:"scan"`
}

// applyScanCreate records a queued scan. One scan per profile at a time:
// two would compare against the same previous scan and race to import.
func applyScanCreate(ctx *state.ApplyContext, p scanCreatePayload) (any, error) {
	raw, err := ctx.Txn.First(tableProfiles, "id", p.Scan.Profile)
	if err != nil {
		return nil, err
	}
	if raw == nil {
		return nil, notFound("discovery_profile", p.Scan.Profile)
	}
	if sc, err := runningScan(ctx.Txn, p.Scan.Profile); err != nil {
		return nil, err
	} else if sc != nil {
		return nil, problem.New(problem.KindConflict, "scan_running",
			"discovery profile %q already has scan %s %s", p.Scan.Profile, sc.ID, sc.Status)
	}
	sc := p.Scan.clone()
	sc.Status, sc.CreatedAt = ScanQueued, ctx.Time
	if err := ctx.Txn.Insert(tableScans, sc); err != nil {
		return nil, err
	}
	return *sc, nil
}

// scanUpdatePayload moves a scan along. Zero fields stay as they are.
type scanUpdatePayload struct {
	ID        string    `json:"id"`
	Status    string    `json:"status,omitempty"`
	AttemptID string    `json:"attempt_id,omitempty"`
	Error     string    `json:"error,omitempty"`
	Progress  *Progress `json:"progress,omitempty"`
	Summary   *Summary  `json:"summary,omitempty"`
	Previous  string    `json:"previous,omitempty"`
}

func applyScanUpdate(ctx *state.ApplyContext, p scanUpdatePayload) (any, error) {
	raw, err := ctx.Txn.First(tableScans, "id", p.ID)
	if err != nil {
		return nil, err
	}
	if raw == nil {
		return nil, notFound("discovery_scan", p.ID)
	}
	sc := raw.(*Scan).clone()
	if sc.Finished() {
		return nil, problem.New(problem.KindConflict, "scan_finished", "discovery scan %s is already %s", sc.ID, sc.Status)
	}
	if p.AttemptID != "" {
		sc.AttemptID = p.AttemptID
	}
	if p.Progress != nil {
		sc.Progress = *p.Progress
	}
	if p.Summary != nil {
		s := *p.Summary
		sc.Summary = &s
	}
	if p.Previous != "" {
		sc.Previous = p.Previous
	}
	if p.Error != "" {
		sc.Error = p.Error
	}
	switch p.Status {
	case "":
	case ScanRunning:
		if sc.StartedAt == nil {
			t := ctx.Time
			sc.StartedAt = &t
		}
		sc.Status = p.Status
	case ScanSucceeded, ScanFailed, ScanCanceled:
		t := ctx.Time
		sc.Status, sc.FinishedAt = p.Status, &t
	default:
		return nil, fmt.Errorf("discovery scan %s: unknown status %q", sc.ID, p.Status)
	}
	if err := ctx.Txn.Insert(tableScans, sc); err != nil {
		return nil, err
	}
	return *sc, nil
}

// notFound is problem.NotFound with a code that is one word
// ("discovery_profile_not_found") and a message that reads as prose.
func notFound(what, id string) *problem.Error {
	return &problem.Error{Kind: problem.KindNotFound, Code: what + "_not_found",
		Message: fmt.Sprintf("%s %q not found", strings.ReplaceAll(what, "_", " "), id)}
}

// runningScan is the profile's unfinished scan, or nil.
func runningScan(txn *state.Txn, profile string) (*Scan, error) {
	it, err := txn.Get(tableScans, "profile", profile)
	if err != nil {
		return nil, err
	}
	for o := it.Next(); o != nil; o = it.Next() {
		if sc := o.(*Scan); !sc.Finished() {
			return sc, nil
		}
	}
	return nil, nil
}

type scheduleFirePayload struct {
	Profile  string    `json:"profile"`
	FireTime time.Time `json:"fire_time"`
	// Scan is the scan to create; none when Skip says why not.
	Scan *Scan  `json:"scan,omitempty"`
	Skip string `json:"skip,omitempty"`
}

// FireResult is what a schedule fire did.
type FireResult struct {
	Scan *Scan  `json:"scan,omitempty"`
	Skip string `json:"skip,omitempty"`
}

// applyScheduleFire records that the profile's schedule fired at
// FireTime and creates its scan, in one entry. A fire time not after the
// last one is refused, so a leader that replays a fire after a failover,
// or two that race, cannot run a slot twice.
func applyScheduleFire(ctx *state.ApplyContext, p scheduleFirePayload) (any, error) {
	raw, err := ctx.Txn.First(tableProfiles, "id", p.Profile)
	if err != nil {
		return nil, err
	}
	if raw == nil {
		return nil, notFound("discovery_profile", p.Profile)
	}
	pr := raw.(*Profile).clone()
	if pr.Schedule == "" {
		return nil, problem.New(problem.KindConflict, "not_scheduled", "discovery profile %q has no schedule", p.Profile)
	}
	if pr.LastFire != nil && !p.FireTime.After(*pr.LastFire) {
		return nil, problem.New(problem.KindConflict, "already_fired",
			"discovery profile %q already fired at %s", p.Profile, pr.LastFire.Format(time.RFC3339))
	}
	t := p.FireTime
	pr.LastFire = &t
	if err := ctx.Txn.Insert(tableProfiles, pr); err != nil {
		return nil, err
	}
	res := FireResult{Skip: p.Skip}
	if p.Scan == nil {
		return res, nil
	}
	if sc, err := runningScan(ctx.Txn, p.Profile); err != nil {
		return nil, err
	} else if sc != nil {
		res.Skip = fmt.Sprintf("scan %s is still %s", sc.ID, sc.Status)
		return res, nil
	}
	sc := p.Scan.clone()
	sc.Status, sc.CreatedAt = ScanQueued, ctx.Time
	if err := ctx.Txn.Insert(tableScans, sc); err != nil {
		return nil, err
	}
	res.Scan = sc
	return res, nil
}

// scanUpdateWithEvents applies a scan update and raises discovery.found
// when it ends a successful scan that changed what the network holds.
func scanUpdateWithEvents(emit notify.Emitter) func(*state.ApplyContext, scanUpdatePayload) (any, error) {
	return func(ctx *state.ApplyContext, p scanUpdatePayload) (any, error) {
		res, err := applyScanUpdate(ctx, p)
		if err != nil || emit == nil {
			return res, err
		}
		sc := res.(Scan)
		if sc.Status != ScanSucceeded || sc.Summary == nil {
			return res, nil
		}
		sum := *sc.Summary
		if sum.Appeared+sum.Changed+sum.Disappeared == 0 {
			return res, nil
		}
		e := tmpl.Event{Type: tmpl.EventDiscoveryFound, Severity: tmpl.SeverityInfo,
			Summary:   fmt.Sprintf("discovery %s: %d hosts up, %d new, %d changed, %d gone", sc.Profile, sum.HostsUp, sum.Appeared, sum.Changed, sum.Disappeared),
			Discovery: &tmpl.Discovery{Profile: sc.Profile, Found: sum.HostsUp, Appeared: sum.Appeared, Changed: sum.Changed, Disappeared: sum.Disappeared}}
		return res, emit(ctx, e, notify.Match{})
	}
}
