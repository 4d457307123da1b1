package discovery

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/opsconductor/opsconductor/controller/assets"
	"github.com/opsconductor/opsconductor/controller/history"
	"github.com/opsconductor/opsconductor/controller/identity"
	"github.com/opsconductor/opsconductor/controller/problem"
	"github.com/opsconductor/opsconductor/plugins/builtin"
)

// logCatchUp is how long a finished attempt's log may lag its end.
const logCatchUp = 30 * time.Second

var errNotLeader = problem.Unavailable("not_leader", "scans run on the Raft leader (it holds the agents' streams): send this request to the leader")

// Host is a discovered host.
type Host = builtin.DiscoveredHost

// RunProfile starts a scan of the named profile on its agent. The scan is
// refused if the profile's ranges are no longer allowed for the agent.
func (s *Service) RunProfile(ctx context.Context, p *identity.Principal, name string) (Scan, error) {
	if !s.d.IsLeader() {
		return Scan{}, errNotLeader
	}
	s.mu.Lock()
	bg := s.bg
	s.mu.Unlock()
	if bg == nil {
		return Scan{}, problem.Unavailable("discovery_starting", "discovery is starting; try again")
	}
	pr, err := getProfile(s.txn(), name)
	if err != nil {
		return Scan{}, err
	}
	prefixes, _, err := builtin.ParseDiscoverCIDRs(pr.CIDRs)
	if err != nil {
		return Scan{}, fmt.Errorf("profile %s: %w", name, err)
	}
	if err := s.allowed(pr.Agent, pr.Agent, prefixes); err != nil {
		return Scan{}, err
	}
	sc, err := s.newScan(pr, p.Name())
	if err != nil {
		return Scan{}, err
	}
	id := sc.ID
	// Registered before the commit, so that the sweep never takes it for
	// another controller's orphan.
	sctx, cancel := context.WithCancel(bg)
	s.mu.Lock()
	s.running[id] = cancel
	s.mu.Unlock()
	var out Scan
	if err := s.apply(ctx, cmdScanCreate, scanCreatePayload{Scan: sc}, &out); err != nil {
		s.forget(id)
		return Scan{}, err
	}
	s.d.Logger.Info("started a discovery scan", "scan_id", id, "profile", name, "agent_id", pr.Agent, "actor", p.Name())
	s.start(sctx, out, pr.AutoImport, p)
	return out, nil
}

// newScan is a scan of pr with the step's parameters as they are now.
func (s *Service) newScan(pr *Profile, actor string) (Scan, error) {
	id, err := newScanID(time.Now())
	if err != nil {
		return Scan{}, err
	}
	rate := pr.Rate
	if rate == 0 || rate > s.d.MaxRate {
		rate = s.d.MaxRate
	}
	return Scan{ID: id, Profile: pr.Name, Agent: pr.Agent, CreatedBy: actor, Controller: s.d.NodeID,
		Params: ScanParams{CIDRs: pr.CIDRs, Ports: pr.Ports, Concurrency: pr.Concurrency, Rate: rate,
			Timeout: pr.Timeout, BannerTimeout: pr.BannerTimeout, Resolve: pr.Resolve}}, nil
}

// start runs a committed scan in the background; its ID must already be
// in s.running.
func (s *Service) start(ctx context.Context, sc Scan, rule *AutoImport, p *identity.Principal) {
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		defer s.forget(sc.ID)
		s.runScan(ctx, sc, rule, p)
	}()
}

// adopt runs a queued scan another controller committed but never
// dispatched. Without the user who asked for it, its auto-import rule
// waits for an import by hand.
func (s *Service) adopt(sc *Scan) {
	s.mu.Lock()
	bg := s.bg
	if _, dup := s.running[sc.ID]; dup || bg == nil {
		s.mu.Unlock()
		return
	}
	ctx, cancel := context.WithCancel(bg)
	s.running[sc.ID] = cancel
	s.mu.Unlock()
	s.d.Logger.Info("running a scan another controller queued", "scan_id", sc.ID, "controller", sc.Controller)
	s.start(ctx, *sc.clone(), nil, nil)
}

// fireDue fires every schedule whose next slot is due at now. A profile
// whose slots passed while no controller led fires once, for the latest
// slot, not once per missed slot.
func (s *Service) fireDue(ctx context.Context, now time.Time) {
	it, err := s.txn().Get(tableProfiles, "id")
	if err != nil {
		return
	}
	var due []*Profile
	for o := it.Next(); o != nil; o = it.Next() {
		if pr := o.(*Profile); pr.Schedule != "" {
			due = append(due, pr)
		}
	}
	for _, pr := range due {
		slot, ok := dueSlot(pr, now)
		if !ok {
			continue
		}
		s.fire(ctx, pr, slot)
	}
}

// dueSlot is the latest slot of pr's schedule at or before now that is
// after its last fire (or the profile's last change), if any.
func dueSlot(pr *Profile, now time.Time) (time.Time, bool) {
	sched, err := cronParser.Parse(pr.Schedule)
	if err != nil {
		return time.Time{}, false
	}
	loc := time.UTC
	if pr.TimeZone != "" {
		if loc, err = time.LoadLocation(pr.TimeZone); err != nil {
			return time.Time{}, false
		}
	}
	base := pr.UpdatedAt
	if pr.LastFire != nil && pr.LastFire.After(base) {
		base = *pr.LastFire
	}
	next := sched.Next(base.In(loc))
	if next.IsZero() || next.After(now) {
		return time.Time{}, false
	}
	// Bounded: a minute schedule missed for a week is 10,080 slots.
	for range 100_000 {
		n := sched.Next(next)
		if n.IsZero() || n.After(now) {
			break
		}
		next = n
	}
	return next.UTC(), true
}

// fire commits the slot and its scan in one entry, then dispatches it.
func (s *Service) fire(ctx context.Context, pr *Profile, slot time.Time) {
	log := s.d.Logger.With("profile", pr.Name, "slot", slot)
	payload := scheduleFirePayload{Profile: pr.Name, FireTime: slot}
	var sctx context.Context
	prefixes, _, err := builtin.ParseDiscoverCIDRs(pr.CIDRs)
	if err == nil {
		err = s.allowed(pr.Agent, pr.Agent, prefixes)
	}
	if err != nil {
		// The slot is spent either way: a refused scan is not retried
		// every second.
		payload.Skip = err.Error()
	} else {
		sc, err := s.newScan(pr, "schedule")
		if err != nil {
			log.Warn("scheduled scan not created", "error", err)
			return
		}
		var cancel context.CancelFunc
		s.mu.Lock()
		sctx, cancel = context.WithCancel(s.bg)
		s.running[sc.ID] = cancel
		s.mu.Unlock()
		payload.Scan = &sc
	}
	var res FireResult
	if err := s.apply(ctx, cmdScheduleFire, payload, &res); err != nil {
		if payload.Scan != nil {
			s.forget(payload.Scan.ID)
		}
		if !problem.Is(err, problem.KindConflict) {
			log.Warn("schedule not fired", "error", err)
		}
		return
	}
	if payload.Scan != nil && res.Scan == nil {
		s.forget(payload.Scan.ID)
	}
	if res.Scan == nil {
		log.Warn("scheduled scan skipped", "reason", res.Skip)
		return
	}
	log.Info("started a scheduled discovery scan", "scan_id", res.Scan.ID)
	s.start(sctx, *res.Scan, pr.AutoImport, nil)
}

func (s *Service) forget(id string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if c, ok := s.running[id]; ok {
		c()
		delete(s.running, id)
	}
}

func (s *Service) update(ctx context.Context, u scanUpdatePayload) (Scan, error) {
	var out Scan
	err := s.apply(ctx, cmdScanUpdate, u, &out)
	return out, err
}

// runScan dispatches the step, follows its log and, when it ends, stores
// the hosts and the comparison. Every exit path finishes the scan.
func (s *Service) runScan(ctx context.Context, sc Scan, rule *AutoImport, p *identity.Principal) {
	log := s.d.Logger.With("scan_id", sc.ID, "profile", sc.Profile)
	fail := func(status, msg string) {
		// The run's context may be what ended; the final write gets its
		// own short one.
		wctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
		defer cancel()
		if _, err := s.update(wctx, scanUpdatePayload{ID: sc.ID, Status: status, Error: msg}); err != nil {
			log.Warn("scan end not recorded", "status", status, "error", err)
		}
		log.Info("discovery scan ended", "status", status, "error", msg)
	}
	params, err := json.Marshal(sc.Params)
	if err != nil {
		fail(ScanFailed, err.Error())
		return
	}
	attempt, err := s.d.Agents.RunStep(ctx, sc.Agent, "discover", params, s.d.ScanTimeout, "discovery:"+sc.ID)
	if err != nil {
		fail(ScanFailed, "dispatch to agent "+sc.Agent+": "+err.Error())
		return
	}
	if _, err := s.update(ctx, scanUpdatePayload{ID: sc.ID, Status: ScanRunning, AttemptID: attempt}); err != nil {
		log.Warn("scan start not recorded", "error", err)
	}
	hosts, st, err := s.follow(ctx, sc.ID, attempt)
	switch {
	case err != nil:
		if errors.Is(err, context.Canceled) {
			if err := s.d.Agents.CancelAttempt(context.WithoutCancel(ctx), attempt); err != nil {
				log.Warn("the scan's attempt was not canceled", "attempt_id", attempt, "error", err)
			}
			s.mu.Lock()
			stopping := s.bg != nil && s.bg.Err() != nil
			s.mu.Unlock()
			if stopping {
				fail(ScanFailed, "controller "+s.d.NodeID+" stopped during the scan; run it again")
			} else {
				fail(ScanCanceled, "canceled")
			}
			return
		}
		fail(ScanFailed, err.Error())
		return
	case st.Status == "canceled":
		fail(ScanCanceled, "canceled")
		return
	case st.Status != "succeeded":
		msg := "the discover step ended " + st.Status
		if st.Error != "" {
			msg += ": " + st.Error
		}
		fail(ScanFailed, msg)
		return
	}
	sum, err := s.finish(ctx, sc, hosts, rule, p)
	if err != nil {
		fail(ScanFailed, err.Error())
		return
	}
	if _, err := s.update(ctx, scanUpdatePayload{ID: sc.ID, Status: ScanSucceeded, Summary: &sum.Summary, Previous: sum.previous,
		Progress: &Progress{Probed: int64(sum.total), Total: int64(sum.total), Up: int64(len(hosts))}}); err != nil {
		log.Warn("scan end not recorded", "error", err)
		return
	}
	log.Info("discovery scan succeeded", "hosts_up", sum.HostsUp, "appeared", sum.Appeared, "changed", sum.Changed,
		"disappeared", sum.Disappeared, "proposed", sum.Proposed, "auto_imported", sum.AutoImported)
}

// follow reads the attempt's log until the attempt has ended and its log
// is read through, committing progress as it goes (at most every second).
func (s *Service) follow(ctx context.Context, scanID, attempt string) ([]Host, AttemptState, error) {
	var (
		after    uint64
		partial  string
		hosts    []Host
		seen     = map[string]bool{}
		lastProg Progress
		lastSent time.Time
		endedAt  time.Time
		bad      int
	)
	t := time.NewTicker(s.d.PollInterval)
	defer t.Stop()
	for {
		st, err := s.d.Agents.Attempt(ctx, attempt)
		if err != nil {
			return nil, st, fmt.Errorf("read attempt %s: %w", attempt, err)
		}
		for {
			lines, next, err := s.d.Agents.AttemptLog(ctx, attempt, after, 1000)
			if err != nil {
				return nil, st, fmt.Errorf("read attempt %s log: %w", attempt, err)
			}
			for _, l := range lines {
				if l.Stream != "stdout" {
					continue
				}
				// Chunks hold whole lines or parts of one; join them.
				data := partial + l.Data
				parts := strings.Split(data, "\n")
				partial = parts[len(parts)-1]
				for _, line := range parts[:len(parts)-1] {
					switch {
					case strings.HasPrefix(line, builtin.DiscoverHostPrefix):
						h, err := builtin.DecodeDiscoverHost(line)
						if err != nil || seen[h.Address] {
							bad++
							continue
						}
						seen[h.Address] = true
						hosts = append(hosts, h)
					case strings.HasPrefix(line, builtin.DiscoverProgressPrefix):
						var pg Progress
						if json.Unmarshal([]byte(line[len(builtin.DiscoverProgressPrefix):]), &pg) == nil {
							lastProg = pg
						}
					}
				}
			}
			after = next
			if len(lines) == 0 {
				break
			}
		}
		if lastProg != (Progress{}) && time.Since(lastSent) >= time.Second && !st.Finished {
			if _, err := s.update(ctx, scanUpdatePayload{ID: scanID, Progress: &lastProg}); err == nil {
				lastSent = time.Now()
			}
		}
		if st.Finished && after < st.LastSeq {
			// The log is stored a little after the attempt's end; a log
			// that never catches up would hold the scan open for ever.
			if endedAt.IsZero() {
				endedAt = time.Now()
			} else if time.Since(endedAt) > logCatchUp {
				return nil, st, fmt.Errorf("attempt %s ended at log seq %d but its log stops at %d", attempt, st.LastSeq, after)
			}
		}
		if st.Finished && after >= st.LastSeq {
			if bad > 0 {
				s.d.Logger.Warn("the discover step printed host lines that do not decode", "scan_id", scanID, "count", bad)
			}
			return hosts, st, nil
		}
		select {
		case <-ctx.Done():
			return nil, st, context.Cause(ctx)
		case <-t.C:
		}
	}
}

type finished struct {
	Summary
	previous string
	total    int
}

// finish stores the hosts, compares them with the previous scan and
// applies the auto-import rule.
func (s *Service) finish(ctx context.Context, sc Scan, hosts []Host, rule *AutoImport, p *identity.Principal) (finished, error) {
	slices.SortFunc(hosts, func(a, b Host) int { return compareAddr(a.Address, b.Address) })
	stream := Stream(sc.Profile, sc.ID)
	now := time.Now().UTC()
	recs := make([]history.Record, 0, len(hosts))
	out := finished{Summary: Summary{HostsUp: len(hosts)}}
	for i, h := range hosts {
		data, err := json.Marshal(h)
		if err != nil {
			return out, err
		}
		out.OpenPorts += len(h.Ports)
		recs = append(recs, history.Record{Stream: stream, Seq: uint64(i + 1), Time: now, Kind: HostKind,
			Fields: map[string]string{"profile": sc.Profile, "scan_id": sc.ID, "address": h.Address}, Data: data})
	}
	for i := 0; i < len(recs); i += 4096 {
		ticket, err := s.d.History.Submit(ctx, recs[i:min(i+4096, len(recs))])
		if err != nil {
			return out, fmt.Errorf("store hosts: %w", err)
		}
		select {
		case <-ticket.Done():
			if err := ticket.Err(); err != nil {
				return out, fmt.Errorf("store hosts: %w", err)
			}
		case <-ctx.Done():
			return out, context.Cause(ctx)
		}
	}
	if _, n, err := builtin.ParseDiscoverCIDRs(sc.Params.CIDRs); err == nil {
		out.total = n
	}
	prev := s.previous(sc)
	if prev != nil {
		out.previous = prev.ID
		old, err := s.readHosts(ctx, *prev)
		if err != nil {
			return out, err
		}
		d := Compare(old, hosts)
		out.Appeared, out.Changed, out.Disappeared = len(d.Appeared), len(d.Changed), len(d.Disappeared)
	} else {
		out.Appeared = len(hosts)
	}
	known, err := s.known(ctx, p)
	if err != nil {
		return out, err
	}
	var auto []Host
	for _, h := range hosts {
		if known.has(h) != "" {
			continue
		}
		out.Proposed++
		if rule != nil && slices.ContainsFunc(h.Ports, func(pt builtin.DiscoveredPort) bool { return slices.Contains(rule.Ports, pt.Port) }) {
			auto = append(auto, h)
		}
	}
	if len(auto) > 0 && p == nil {
		p = s.owner(ctx, sc.Profile)
	}
	if len(auto) > 0 && p == nil {
		// A scan that acts for no user (its profile's owner is gone),
		// and an import is written as someone: the hosts stay proposed.
		s.d.Logger.Info("auto-import needs a user: the hosts stay proposed", "scan_id", sc.ID, "hosts", len(auto))
		auto = nil
	}
	if len(auto) > 0 {
		rows := make([]assets.TargetInput, len(auto))
		for i, h := range auto {
			rows[i] = targetFor(h, sc, rule.Tags)
		}
		// The rule acts for the user who ran the scan; rows the inventory
		// refuses (a name taken) are skipped, not fatal.
		rep, err := s.d.Inventory.Import(ctx, p, rows, assets.ImportOptions{Mode: assets.ImportCreate, Partial: true})
		if err != nil {
			s.d.Logger.Warn("auto-import failed", "scan_id", sc.ID, "error", err)
		} else {
			out.AutoImported = rep.Created
		}
	}
	return out, nil
}

// previous is the profile's latest successful scan before sc.
func (s *Service) previous(sc Scan) *Scan {
	it, err := s.txn().Get(tableScans, "profile", sc.Profile)
	if err != nil {
		return nil
	}
	var best *Scan
	for o := it.Next(); o != nil; o = it.Next() {
		c := o.(*Scan)
		if c.Status == ScanSucceeded && c.ID < sc.ID && (best == nil || c.ID > best.ID) {
			best = c
		}
	}
	return best
}

// readHosts reads a finished scan's hosts from the history store.
func (s *Service) readHosts(ctx context.Context, sc Scan) ([]Host, error) {
	var out []Host
	var from uint64 = 1
	for {
		recs, err := s.d.HistoryReader.Read(ctx, Stream(sc.Profile, sc.ID), from, history.MaxSeq, 4096)
		if err != nil {
			return nil, fmt.Errorf("read scan %s hosts: %w", sc.ID, err)
		}
		for _, r := range recs {
			var h Host
			if err := json.Unmarshal(r.Data, &h); err != nil {
				return nil, fmt.Errorf("scan %s host %d: %w", sc.ID, r.Seq, err)
			}
			out = append(out, h)
			from = r.Seq + 1
		}
		if len(recs) < 4096 {
			return out, nil
		}
	}
}

// Cancel stops a scan: its attempt is canceled and the runner records the
// end.
func (s *Service) Cancel(ctx context.Context, p *identity.Principal, id string) (Scan, error) {
	if !s.d.IsLeader() {
		return Scan{}, errNotLeader
	}
	sc, err := getScan(s.txn(), id)
	if err != nil {
		return Scan{}, err
	}
	if sc.Finished() {
		return Scan{}, problem.New(problem.KindConflict, "scan_finished", "discovery scan %s is already %s", id, sc.Status)
	}
	s.d.Logger.Info("canceling a discovery scan", "scan_id", id, "actor", p.Name())
	s.mu.Lock()
	cancel, mine := s.running[id]
	s.mu.Unlock()
	if mine {
		cancel()
	} else {
		s.sweep(ctx)
	}
	return *sc.clone(), nil
}

// ScanDetail is a scan with its comparison to the previous one.
type ScanDetail struct {
	Scan
	Diff *Diff `json:"diff,omitempty"`
}

// GetScan returns a scan and, once it succeeded, its diff.
func (s *Service) GetScan(ctx context.Context, id string) (ScanDetail, error) {
	sc, err := getScan(s.txn(), id)
	if err != nil {
		return ScanDetail{}, err
	}
	out := ScanDetail{Scan: *sc.clone()}
	if sc.Status != ScanSucceeded {
		return out, nil
	}
	cur, err := s.readHosts(ctx, *sc)
	if err != nil {
		return ScanDetail{}, err
	}
	var old []Host
	if sc.Previous != "" {
		if prev, err := getScan(s.txn(), sc.Previous); err == nil {
			if old, err = s.readHosts(ctx, *prev); err != nil {
				return ScanDetail{}, err
			}
		}
	}
	d := Compare(old, cur)
	out.Diff = &d
	return out, nil
}

// HostView is a found host and whether the inventory already holds it.
type HostView struct {
	Host
	// Target names the inventory target with this address or hostname;
	// empty means the host is proposed for import.
	Target string `json:"target,omitempty"`
}

// HostPage is a page of a scan's hosts, by address.
type HostPage struct {
	Items []HostView `json:"items"`
	Next  string     `json:"next,omitempty"`
}

// Hosts pages through a succeeded scan's hosts. after is the last address
// of the previous page; proposedOnly keeps hosts the inventory lacks.
func (s *Service) Hosts(ctx context.Context, p *identity.Principal, id, after string, limit int, proposedOnly bool) (HostPage, error) {
	if limit <= 0 || limit > 1000 {
		limit = 100
	}
	sc, err := getScan(s.txn(), id)
	if err != nil {
		return HostPage{}, err
	}
	page := HostPage{Items: []HostView{}}
	if sc.Status != ScanSucceeded {
		return page, nil
	}
	hosts, err := s.readHosts(ctx, *sc)
	if err != nil {
		return HostPage{}, err
	}
	known, err := s.known(ctx, p)
	if err != nil {
		return HostPage{}, err
	}
	for _, h := range hosts {
		if after != "" && compareAddr(h.Address, after) <= 0 {
			continue
		}
		v := HostView{Host: h, Target: known.has(h)}
		if proposedOnly && v.Target != "" {
			continue
		}
		if len(page.Items) == limit {
			page.Next = page.Items[limit-1].Address
			break
		}
		page.Items = append(page.Items, v)
	}
	return page, nil
}

// ImportRequest imports a scan's hosts as SSH targets relayed by the
// scanning agent.
type ImportRequest struct {
	// Hosts are addresses of the scan's hosts; All takes every proposed
	// host instead.
	Hosts []string          `json:"hosts,omitempty"`
	All   bool              `json:"all,omitempty"`
	Tags  map[string]string `json:"tags,omitempty"`
}

// ImportResult says what an import did.
type ImportResult struct {
	Report assets.ImportReport `json:"report"`
	// Skipped are hosts the inventory already holds, with the target.
	Skipped map[string]string `json:"skipped"`
}

// Import turns a scan's hosts into targets with one inventory import:
// every row valid, or nothing written.
func (s *Service) Import(ctx context.Context, p *identity.Principal, id string, req ImportRequest) (ImportResult, error) {
	var errs problem.List
	if req.All == (len(req.Hosts) > 0) {
		errs.Add("hosts", "give the addresses to import, or all=true, not both")
	}
	checkTags("tags", req.Tags, &errs)
	if err := errs.Err(); err != nil {
		return ImportResult{}, err
	}
	sc, err := getScan(s.txn(), id)
	if err != nil {
		return ImportResult{}, err
	}
	if sc.Status != ScanSucceeded {
		return ImportResult{}, problem.New(problem.KindConflict, "scan_not_succeeded", "discovery scan %s is %s: only a succeeded scan's hosts are imported", id, sc.Status)
	}
	hosts, err := s.readHosts(ctx, *sc)
	if err != nil {
		return ImportResult{}, err
	}
	byAddr := make(map[string]Host, len(hosts))
	for _, h := range hosts {
		byAddr[h.Address] = h
	}
	var picked []Host
	if req.All {
		picked = hosts
	} else {
		for i, a := range req.Hosts {
			h, ok := byAddr[normalAddr(a)]
			if !ok {
				errs.Add("hosts["+strconv.Itoa(i)+"]", "%q is not a host this scan found", a)
				continue
			}
			picked = append(picked, h)
		}
		if err := errs.Err(); err != nil {
			return ImportResult{}, err
		}
	}
	known, err := s.known(ctx, p)
	if err != nil {
		return ImportResult{}, err
	}
	res := ImportResult{Skipped: map[string]string{}}
	var rows []assets.TargetInput
	for _, h := range picked {
		if t := known.has(h); t != "" {
			res.Skipped[h.Address] = t
			continue
		}
		rows = append(rows, targetFor(h, *sc, req.Tags))
	}
	if len(rows) == 0 {
		res.Report = assets.ImportReport{Mode: assets.ImportCreate, Errors: []assets.RowError{}}
		return res, nil
	}
	rep, err := s.d.Inventory.Import(ctx, p, rows, assets.ImportOptions{Mode: assets.ImportCreate})
	if err != nil {
		return ImportResult{}, err
	}
	res.Report = rep
	s.d.Logger.Info("imported discovered hosts", "scan_id", id, "rows", len(rows), "created", rep.Created, "actor", p.Name())
	return res, nil
}

// targetFor is the target a discovered host becomes: an SSH target named
// after its first valid hostname (else its address), relayed by the agent
// that found it, on the port its SSH server answered.
func targetFor(h Host, sc Scan, tags map[string]string) assets.TargetInput {
	name := strings.NewReplacer(":", "-", "%", "-").Replace(h.Address)
	name = strings.Trim(name, "-")
	addrs := []string{h.Address}
	for _, n := range h.Hostnames {
		if len(addrs) < 16 && validHostname(n) {
			if len(addrs) == 1 {
				name = n
			}
			addrs = append(addrs, n)
		}
	}
	port := 22
	for _, p := range h.Ports {
		if p.Service == "ssh" {
			port = p.Port
			break
		}
	}
	t := map[string]string{"discovered-by": sc.Profile}
	for k, v := range tags {
		t[k] = v
	}
	return assets.TargetInput{Name: name, Addresses: addrs, Tags: t,
		Connection: &assets.Connection{Type: assets.ConnSSH, Via: sc.Agent, Port: port}}
}

func validHostname(n string) bool {
	if len(n) == 0 || len(n) > 253 {
		return false
	}
	labels := strings.Split(n, ".")
	for _, l := range labels {
		if l == "" || len(l) > 63 || l[0] == '-' || l[len(l)-1] == '-' || strings.Trim(l, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-") != "" {
			return false
		}
	}
	_, err := strconv.Atoi(labels[len(labels)-1])
	return err != nil
}

// knownSet indexes the inventory's addresses and names (lower case) to
// the target holding them.
type knownSet map[string]string

func (k knownSet) has(h Host) string {
	if t, ok := k[h.Address]; ok {
		return t
	}
	for _, n := range h.Hostnames {
		if t, ok := k[strings.ToLower(n)]; ok {
			return t
		}
	}
	return ""
}

// known reads the addresses and names of every target p may read.
// Proposals are deduplicated against what the user sees: a host held by a
// target outside their scope is proposed, and its import is then refused
// by the inventory (the name or address is taken), which reveals no more
// than the inventory itself does.
func (s *Service) known(ctx context.Context, p *identity.Principal) (knownSet, error) {
	k := knownSet{}
	if p == nil {
		return k, nil // a scan run for no user proposes every host
	}
	err := s.d.Inventory.Each(ctx, p, assets.Query{}, func(t assets.Target) error {
		k[strings.ToLower(t.Name)] = t.Name
		for _, a := range t.Addresses {
			k[strings.ToLower(normalAddr(a))] = t.Name
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("read the inventory: %w", err)
	}
	return k, nil
}

// owner is the principal a scheduled scan of profile acts for: the user
// who last saved it, with the roles they hold now; nil when there is none.
func (s *Service) owner(ctx context.Context, profile string) *identity.Principal {
	if s.d.Principals == nil {
		return nil
	}
	raw, err := s.d.Store.ReadTxn().First(tableProfiles, "id", profile)
	if err != nil || raw == nil || raw.(*Profile).OwnerID == "" {
		return nil
	}
	p, err := s.d.Principals.Acting(ctx, raw.(*Profile).OwnerID, nil)
	if err != nil {
		s.d.Logger.Info("the profile's owner cannot act: the hosts stay proposed", "profile", profile, "error", err)
		return nil
	}
	return p
}
