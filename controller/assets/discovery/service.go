package discovery

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"regexp"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/go-memdb"
	"github.com/robfig/cron/v3"

	"github.com/opsconductor/opsconductor/controller/assets"
	"github.com/opsconductor/opsconductor/controller/history"
	"github.com/opsconductor/opsconductor/controller/identity"
	"github.com/opsconductor/opsconductor/controller/problem"
	"github.com/opsconductor/opsconductor/controller/state"
	"github.com/opsconductor/opsconductor/plugins/builtin"
)

// HostKind is the history kind of a discovered host.
const HostKind = "assets.discovery_host"

// Stream is the history stream holding one scan's hosts.
func Stream(profile, scanID string) string { return "assets/discovery/" + profile + "/" + scanID }

// Applier commits commands through Raft (cluster.Node in production).
type Applier interface {
	Apply(ctx context.Context, cmds ...state.Command) ([]state.Result, error)
}

// AttemptState is what a scan needs to know of its attempt.
type AttemptState struct {
	Status   string // pending, running, succeeded, failed, canceled, error, lost
	Error    string
	Finished bool
	// LastSeq is the last log sequence the attempt wrote (once finished).
	LastSeq uint64
}

// LogLine is one chunk of an attempt's output.
type LogLine struct {
	Seq    uint64
	Stream string
	Data   string
}

// Agents runs the discover step on an agent (agentrpc, through an adapter
// in controller/server).
type Agents interface {
	// ResolveAgent returns the ID and name of the agent ref names (an ID
	// or a name).
	ResolveAgent(ctx context.Context, ref string) (id, name string, err error)
	RunStep(ctx context.Context, agentID, uses string, params json.RawMessage, timeout time.Duration, actor string) (attemptID string, err error)
	Attempt(ctx context.Context, id string) (AttemptState, error)
	AttemptLog(ctx context.Context, id string, after uint64, limit int) (lines []LogLine, next uint64, err error)
	CancelAttempt(ctx context.Context, id string) error
}

// Inventory is what discovery needs of the targets (assets.Service).
type Inventory interface {
	Each(ctx context.Context, p *identity.Principal, q assets.Query, fn func(assets.Target) error) error
	Import(ctx context.Context, p *identity.Principal, rows []assets.TargetInput, opts assets.ImportOptions) (assets.ImportReport, error)
}

// HistoryWriter stores records durably (history.Writer).
type HistoryWriter interface {
	Submit(ctx context.Context, recs []history.Record) (*history.Ticket, error)
}

// HistoryReader reads them back (history.Store).
type HistoryReader interface {
	Read(ctx context.Context, stream string, from, to uint64, limit int) ([]history.Record, error)
}

// Deps are what the service needs.
type Deps struct {
	Applier       Applier
	Store         *state.Store
	Agents        Agents
	Inventory     Inventory
	History       HistoryWriter
	HistoryReader HistoryReader
	Logger        *slog.Logger
	// IsLeader reports whether this controller leads: only the leader
	// runs scans (it holds the agents' streams).
	IsLeader func() bool
	// NodeID names this controller in the scans it runs.
	NodeID string
	// LoopbackAgent, when set, names the agent (by ID) that may scan
	// 127.0.0.0/8 and ::1 without an admin's ranges: the dev server's own.
	LoopbackAgent func(agentID string) bool
	// MaxRate caps a profile's rate (builtin.DiscoverMaxRate when 0).
	MaxRate int
	// PollInterval is how often a running scan reads its attempt (500 ms
	// when 0).
	PollInterval time.Duration
	// ScanTimeout bounds one scan's attempt (an hour when 0).
	ScanTimeout time.Duration
	// Principals returns who a scheduled scan acts for: the profile's
	// owner as they are now (identity.Service.Acting). Without it a
	// scheduled scan acts for no one, and its auto-import only proposes.
	Principals Principals
}

// Principals finds the user a scheduled scan acts for.
type Principals interface {
	Acting(ctx context.Context, userID string, roles []identity.Binding) (*identity.Principal, error)
}

// Service is discovery on one controller.
type Service struct {
	d Deps

	mu      sync.Mutex
	running map[string]context.CancelFunc // scans this controller runs
	wg      sync.WaitGroup
	bg      context.Context
}

// New checks the dependencies.
func New(d Deps) (*Service, error) {
	if d.Applier == nil || d.Store == nil || d.Agents == nil || d.Inventory == nil || d.History == nil ||
		d.HistoryReader == nil || d.Logger == nil || d.IsLeader == nil || d.NodeID == "" {
		return nil, errors.New("discovery: Applier, Store, Agents, Inventory, History, HistoryReader, Logger, IsLeader and NodeID are required")
	}
	if d.MaxRate <= 0 || d.MaxRate > builtin.DiscoverMaxRate {
		d.MaxRate = builtin.DiscoverMaxRate
	}
	if d.PollInterval <= 0 {
		d.PollInterval = 500 * time.Millisecond
	}
	if d.ScanTimeout <= 0 {
		d.ScanTimeout = time.Hour
	}
	return &Service{d: d, running: map[string]context.CancelFunc{}}, nil
}

// Run keeps the service's scans going until ctx ends: scans started here
// run under ctx, and on the leader a scan left unfinished by another
// controller (it lost leadership or stopped) is failed, since its
// attempt's results went with that controller's runner.
func (s *Service) Run(ctx context.Context, sweepEvery time.Duration) {
	s.mu.Lock()
	s.bg = ctx
	s.mu.Unlock()
	t := time.NewTicker(sweepEvery)
	defer t.Stop()
	// Schedules have minute resolution; a check every second fires a slot
	// within a second of its time.
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			s.wg.Wait()
			return
		case <-t.C:
			if s.d.IsLeader() {
				s.sweep(ctx)
			}
		case now := <-tick.C:
			if s.d.IsLeader() {
				s.fireDue(ctx, now)
			}
		}
	}
}

// Running reports whether Run has started, so scans can be run.
func (s *Service) Running() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.bg != nil
}

func (s *Service) sweep(ctx context.Context) {
	it, err := s.txn().Get(tableScans, "id")
	if err != nil {
		return
	}
	var orphans []*Scan
	s.mu.Lock()
	for o := it.Next(); o != nil; o = it.Next() {
		sc := o.(*Scan)
		if _, mine := s.running[sc.ID]; !sc.Finished() && !mine {
			orphans = append(orphans, sc)
		}
	}
	s.mu.Unlock()
	for _, sc := range orphans {
		if sc.Status == ScanQueued && sc.AttemptID == "" {
			// Committed but never dispatched (the controller that queued
			// it stopped first): nothing ran, so run it here.
			s.adopt(sc)
			continue
		}
		if sc.AttemptID != "" {
			if err := s.d.Agents.CancelAttempt(ctx, sc.AttemptID); err != nil {
				s.d.Logger.Debug("orphaned scan's attempt not canceled", "scan_id", sc.ID, "error", err)
			}
		}
		msg := fmt.Sprintf("controller %s that ran the scan stopped or lost leadership; run it again", sc.Controller)
		if _, err := s.update(ctx, scanUpdatePayload{ID: sc.ID, Status: ScanFailed, Error: msg}); err != nil {
			s.d.Logger.Warn("orphaned scan not failed", "scan_id", sc.ID, "error", err)
		} else {
			s.d.Logger.Info("failed a scan left by another controller", "scan_id", sc.ID, "controller", sc.Controller)
		}
	}
}

func (s *Service) txn() *memdb.Txn { return s.d.Store.ReadTxn() }

func (s *Service) apply(ctx context.Context, typ string, payload, out any) error {
	return state.ApplyOne(ctx, s.d.Applier, typ, payload, out)
}

// cronParser reads standard five-field specs and descriptors.
var cronParser = cron.NewParser(cron.Minute | cron.Hour | cron.Dom | cron.Month | cron.Dow | cron.Descriptor)

var profileNameRE = regexp.MustCompile(`^[a-z0-9]([a-z0-9_.-]{0,61}[a-z0-9])?$`)

// ProfileInput is a profile as a client writes it. Agent is the scanning
// agent's name or ID.
type ProfileInput struct {
	Name          string      `json:"name"`
	CIDRs         []string    `json:"cidrs"`
	Ports         []string    `json:"ports,omitempty"`
	Agent         string      `json:"agent"`
	Concurrency   int         `json:"concurrency,omitempty"`
	Rate          int         `json:"rate,omitempty"`
	Timeout       string      `json:"timeout,omitempty"`
	BannerTimeout string      `json:"banner_timeout,omitempty"`
	Resolve       *bool       `json:"resolve,omitempty"`
	AutoImport    *AutoImport `json:"auto_import,omitempty"`
	// Schedule is a cron spec ("0 3 * * *", "@hourly") in TimeZone (IANA,
	// UTC when empty); empty runs only on demand.
	Schedule string `json:"schedule,omitempty"`
	TimeZone string `json:"time_zone,omitempty"`
	// Revision, on update, must be the stored profile's (0: any).
	Revision uint64 `json:"revision,omitempty"`
}

// checkProfile validates in, every problem at once, and resolves its
// agent. The CIDRs must lie inside the agent's allowed ranges.
func (s *Service) checkProfile(ctx context.Context, in ProfileInput) (Profile, error) {
	var errs problem.List
	if !profileNameRE.MatchString(in.Name) {
		errs.Add("name", "must be 1 to 63 lower-case letters, digits and _ . -, starting and ending with a letter or digit, got %q", in.Name)
	}
	prefixes, _, err := builtin.ParseDiscoverCIDRs(in.CIDRs)
	switch {
	case len(in.CIDRs) == 0:
		errs.Add("cidrs", "name at least one range to scan")
	case err != nil:
		errs.Add(fieldOf(err, "cidrs"), "%v", messageOf(err))
	}
	if len(in.Ports) > 0 {
		if _, err := builtin.ParseDiscoverPorts(in.Ports); err != nil {
			errs.Add(fieldOf(err, "ports"), "%v", messageOf(err))
		}
	}
	if in.Concurrency < 0 || in.Concurrency > builtin.DiscoverMaxConcurrency {
		errs.Add("concurrency", "must be 1 to %d (0 for the default), got %d", builtin.DiscoverMaxConcurrency, in.Concurrency)
	}
	if in.Rate < 0 || in.Rate > s.d.MaxRate {
		errs.Add("rate", "must be 1 to %d connection attempts per second (the ceiling; 0 for it), got %d", s.d.MaxRate, in.Rate)
	}
	for _, f := range []struct{ name, v string }{{"timeout", in.Timeout}, {"banner_timeout", in.BannerTimeout}} {
		if f.v == "" {
			continue
		}
		if d, err := time.ParseDuration(f.v); err != nil || d <= 0 || d > 30*time.Second {
			errs.Add(f.name, "must be a duration from 1ms to 30s, got %q", f.v)
		}
	}
	if a := in.AutoImport; a != nil {
		if len(a.Ports) == 0 {
			errs.Add("auto_import.ports", "name the ports a host must have open to be imported")
		}
		for i, p := range a.Ports {
			if p < 1 || p > 65535 {
				errs.Add(fmt.Sprintf("auto_import.ports[%d]", i), "must be 1 to 65535, got %d", p)
			}
		}
		checkTags("auto_import.tags", a.Tags, &errs)
	}
	if in.Schedule != "" {
		if _, err := cronParser.Parse(in.Schedule); err != nil {
			errs.Add("schedule", "must be a cron spec of five fields (minute hour day month weekday) or @hourly, @daily …: %v", err)
		}
		if strings.Contains(in.Schedule, "TZ=") {
			errs.Add("schedule", "give the time zone in time_zone, not in the spec")
		}
	}
	if in.TimeZone != "" {
		if in.Schedule == "" {
			errs.Add("time_zone", "is only for a schedule")
		} else if _, err := time.LoadLocation(in.TimeZone); err != nil {
			errs.Add("time_zone", "must be an IANA time zone such as Europe/Paris: %v", err)
		}
	}
	var agentID string
	if in.Agent == "" {
		errs.Add("agent", "name the agent that scans")
	} else if agentID, _, err = s.d.Agents.ResolveAgent(ctx, in.Agent); err != nil {
		if p, ok := problem.As(err); ok && p.Kind == problem.KindNotFound {
			errs.Add("agent", "no agent is named or numbered %q", in.Agent)
		} else {
			return Profile{}, err
		}
	}
	if err := errs.Err(); err != nil {
		return Profile{}, err
	}
	if err := s.allowed(agentID, in.Agent, prefixes); err != nil {
		return Profile{}, err
	}
	return Profile{Name: in.Name, CIDRs: canonical(prefixes), Ports: in.Ports, Agent: agentID, Concurrency: in.Concurrency,
		Rate: in.Rate, Timeout: in.Timeout, BannerTimeout: in.BannerTimeout, Resolve: in.Resolve, AutoImport: in.AutoImport,
		Schedule: in.Schedule, TimeZone: in.TimeZone}, nil
}

func canonical(ps []netip.Prefix) []string {
	out := make([]string, len(ps))
	for i, p := range ps {
		out[i] = p.String()
	}
	return out
}

// fieldOf reads "cidrs[2]" from the front of an error of builtin's parsers.
func fieldOf(err error, def string) string {
	f, _, ok := strings.Cut(err.Error(), ": ")
	if ok && strings.HasPrefix(f, def+"[") {
		return f
	}
	return def
}

func messageOf(err error) string {
	_, m, ok := strings.Cut(err.Error(), ": ")
	if !ok {
		return err.Error()
	}
	return m
}

func checkTags(field string, tags map[string]string, errs *problem.List) {
	for k, v := range tags {
		if !assets.ValidTagKey(k) || len(v) > 128 || strings.ContainsAny(v, " \t\n,=") {
			errs.Add(field+"."+k, "must be a valid tag key with a value of at most 128 characters without spaces, commas or '='")
		}
	}
}

var loopback = []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8"), netip.MustParsePrefix("::1/128")}

// allowed refuses any prefix not inside one of the agent's ranges, naming
// the first such prefix.
func (s *Service) allowed(agentID, agentRef string, prefixes []netip.Prefix) error {
	var ranges []netip.Prefix
	if r, err := getRanges(s.txn(), agentID); err != nil {
		return err
	} else if r != nil {
		for _, c := range r.CIDRs {
			if p, err := netip.ParsePrefix(c); err == nil {
				ranges = append(ranges, p)
			}
		}
	}
	if s.d.LoopbackAgent != nil && s.d.LoopbackAgent(agentID) {
		ranges = append(ranges, loopback...)
	}
	for i, p := range prefixes {
		if !slices.ContainsFunc(ranges, func(r netip.Prefix) bool { return inside(p, r) }) {
			allowed := "none: an admin sets them with PUT /api/v1/discovery/agents/" + agentRef + "/ranges"
			if len(ranges) > 0 {
				allowed = strings.Join(canonical(ranges), ", ")
			}
			return &problem.Error{Kind: problem.KindForbidden, Code: "range_not_allowed", Field: fmt.Sprintf("cidrs[%d]", i),
				Message: fmt.Sprintf("%s is outside the ranges agent %s may scan (allowed: %s)", p, agentRef, allowed)}
		}
	}
	return nil
}

// inside reports whether p lies wholly in r.
func inside(p, r netip.Prefix) bool {
	return r.Addr().Is4() == p.Addr().Is4() && r.Bits() <= p.Bits() && r.Contains(p.Addr())
}

func getRanges(txn *memdb.Txn, agentID string) (*Ranges, error) {
	raw, err := txn.First(tableRanges, "id", agentID)
	if err != nil {
		return nil, fmt.Errorf("read discovery ranges: %w", err)
	}
	if raw == nil {
		return nil, nil
	}
	return raw.(*Ranges), nil
}

func getProfile(txn *memdb.Txn, name string) (*Profile, error) {
	raw, err := txn.First(tableProfiles, "id", name)
	if err != nil {
		return nil, fmt.Errorf("read discovery profile: %w", err)
	}
	if raw == nil {
		return nil, notFound("discovery_profile", name)
	}
	return raw.(*Profile), nil
}

func getScan(txn *memdb.Txn, id string) (*Scan, error) {
	raw, err := txn.First(tableScans, "id", id)
	if err != nil {
		return nil, fmt.Errorf("read discovery scan: %w", err)
	}
	if raw == nil {
		return nil, notFound("discovery_scan", id)
	}
	return raw.(*Scan), nil
}

// CreateProfile stores a new profile.
func (s *Service) CreateProfile(ctx context.Context, p *identity.Principal, in ProfileInput) (Profile, error) {
	return s.putProfile(ctx, p, in, true)
}

// UpdateProfile replaces the profile named name.
func (s *Service) UpdateProfile(ctx context.Context, p *identity.Principal, name string, in ProfileInput) (Profile, error) {
	if in.Name == "" {
		in.Name = name
	}
	if in.Name != name {
		return Profile{}, problem.Invalid("name", "is %q in the path and %q in the body; a profile is not renamed", name, in.Name)
	}
	return s.putProfile(ctx, p, in, false)
}

func (s *Service) putProfile(ctx context.Context, p *identity.Principal, in ProfileInput, create bool) (Profile, error) {
	pr, err := s.checkProfile(ctx, in)
	if err != nil {
		return Profile{}, err
	}
	var out Profile
	if err := s.apply(ctx, cmdProfilePut, profilePutPayload{Profile: pr, Create: create, Revision: in.Revision, Actor: p.Name(),
		UserID: p.UserID}, &out); err != nil {
		return Profile{}, err
	}
	s.d.Logger.Info("stored a discovery profile", "profile", out.Name, "agent_id", out.Agent, "cidrs", out.CIDRs, "actor", p.Name())
	return out, nil
}

// GetProfile returns one profile.
func (s *Service) GetProfile(_ context.Context, name string) (Profile, error) {
	pr, err := getProfile(s.txn(), name)
	if err != nil {
		return Profile{}, err
	}
	return *pr.clone(), nil
}

// ListProfiles returns every profile, by name.
func (s *Service) ListProfiles(context.Context) ([]Profile, error) {
	it, err := s.txn().Get(tableProfiles, "id")
	if err != nil {
		return nil, err
	}
	out := []Profile{}
	for o := it.Next(); o != nil; o = it.Next() {
		out = append(out, *o.(*Profile).clone())
	}
	return out, nil
}

// DeleteProfile removes a profile; its scans stay in the history.
func (s *Service) DeleteProfile(ctx context.Context, p *identity.Principal, name string) (Profile, error) {
	var out Profile
	if err := s.apply(ctx, cmdProfileDelete, namePayload{Name: name}, &out); err != nil {
		return Profile{}, err
	}
	s.d.Logger.Info("deleted a discovery profile", "profile", name, "actor", p.Name())
	return out, nil
}

// GetRanges returns the ranges agentRef may scan (empty when none).
func (s *Service) GetRanges(ctx context.Context, agentRef string) (Ranges, error) {
	id, _, err := s.d.Agents.ResolveAgent(ctx, agentRef)
	if err != nil {
		return Ranges{}, err
	}
	r, err := getRanges(s.txn(), id)
	if err != nil || r == nil {
		return Ranges{Agent: id, CIDRs: []string{}}, err
	}
	c := *r
	c.CIDRs = slices.Clone(r.CIDRs)
	return c, nil
}

// SetRanges replaces the ranges agentRef may scan; empty allows nothing.
// Profiles already stored are checked again when they run.
func (s *Service) SetRanges(ctx context.Context, p *identity.Principal, agentRef string, cidrs []string) (Ranges, error) {
	id, _, err := s.d.Agents.ResolveAgent(ctx, agentRef)
	if err != nil {
		return Ranges{}, err
	}
	var errs problem.List
	var ps []netip.Prefix
	for i, c := range cidrs {
		pf, err := netip.ParsePrefix(c)
		if err != nil {
			errs.Add(fmt.Sprintf("cidrs[%d]", i), "must be a CIDR prefix such as 10.0.0.0/16, got %q", c)
			continue
		}
		ps = append(ps, pf.Masked())
	}
	if len(cidrs) > 256 {
		errs.Add("cidrs", "at most 256 ranges, got %d", len(cidrs))
	}
	if err := errs.Err(); err != nil {
		return Ranges{}, err
	}
	out := Ranges{CIDRs: []string{}}
	if err := s.apply(ctx, cmdRangesPut, rangesPutPayload{Ranges: Ranges{Agent: id, CIDRs: canonical(ps), UpdatedBy: p.Name()}}, &out); err != nil {
		return Ranges{}, err
	}
	if out.CIDRs == nil {
		out.CIDRs = []string{}
	}
	s.d.Logger.Info("set the ranges an agent may scan", "agent_id", id, "cidrs", out.CIDRs, "actor", p.Name())
	return out, nil
}

// ScanPage is a page of scans, newest first.
type ScanPage struct {
	Items []Scan `json:"items"`
	Next  string `json:"next,omitempty"`
}

// ListScans lists scans newest first, of one profile when profile is set.
// after is the last ID of the previous page.
func (s *Service) ListScans(_ context.Context, profile, after string, limit int) (ScanPage, error) {
	if limit <= 0 || limit > 1000 {
		limit = 100
	}
	var it memdb.ResultIterator
	var err error
	if profile != "" {
		it, err = s.txn().Get(tableScans, "profile", profile)
	} else {
		it, err = s.txn().Get(tableScans, "id")
	}
	if err != nil {
		return ScanPage{}, err
	}
	var all []*Scan
	for o := it.Next(); o != nil; o = it.Next() {
		if sc := o.(*Scan); after == "" || sc.ID < after {
			all = append(all, sc)
		}
	}
	// IDs start with the creation time, so they sort by it.
	sort.Slice(all, func(i, j int) bool { return all[i].ID > all[j].ID })
	page := ScanPage{Items: []Scan{}}
	for i, sc := range all {
		if i == limit {
			page.Next = page.Items[limit-1].ID
			break
		}
		page.Items = append(page.Items, *sc.clone())
	}
	return page, nil
}

// newScanID is time-ordered: "ds-20260102T150405Z-<8 hex>".
func newScanID(now time.Time) (string, error) {
	var b [4]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", fmt.Errorf("scan id: %w", err)
	}
	return "ds-" + now.UTC().Format("20060102T150405.000Z") + "-" + hex.EncodeToString(b[:]), nil
}
