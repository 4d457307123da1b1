package notify

import (
	"fmt"
	"path"
	"slices"
	"strconv"

	"github.com/hashicorp/go-memdb"

	"github.com/opsconductor/opsconductor/controller/communication/tmpl"
	"github.com/opsconductor/opsconductor/controller/problem"
	"github.com/opsconductor/opsconductor/controller/state"
)

const (
	tableChannels   = "notify_channels"
	tableTemplates  = "notify_templates"
	tableRules      = "notify_rules"
	tableDeliveries = "notify_deliveries"
	tableThrottle   = "notify_throttle"
	tableCounters   = "notify_counters"

	cmdChannelPut     = "notify.channel.put"
	cmdChannelDelete  = "notify.channel.delete"
	cmdChannelRewrap  = "notify.channel.rewrap"
	cmdTemplatePut    = "notify.template.put"
	cmdTemplateDelete = "notify.template.delete"
	cmdRulePut        = "notify.rule.put"
	cmdRuleDelete     = "notify.rule.delete"
	cmdEmit           = "notify.emit"
	cmdTest           = "notify.test"
	cmdResults        = "notify.delivery.results"
	cmdRedeliver      = "notify.delivery.redeliver"
	cmdArchive        = "notify.delivery.archive"
	cmdDigestFlush    = "notify.digest.flush"
)

// Topic is the live-update topic of the notification tables.
const Topic = "notifications"

// Tables names the domain's tables, for live updates.
func Tables() []string {
	return []string{tableChannels, tableTemplates, tableRules, tableDeliveries}
}

func byName(table string) *memdb.TableSchema {
	return &memdb.TableSchema{Name: table, Indexes: map[string]*memdb.IndexSchema{
		"id": {Name: "id", Unique: true, Indexer: &memdb.StringFieldIndex{Field: "Name"}},
	}}
}

// Domain registers the notification tables and commands.
func Domain() state.Domain {
	return state.Domain{
		Name: "notify",
		Tables: []state.Table{
			{Schema: byName(tableChannels), New: func() any { return new(Channel) }},
			{Schema: &memdb.TableSchema{Name: tableTemplates, Indexes: map[string]*memdb.IndexSchema{
				"id": {Name: "id", Unique: true, Indexer: &memdb.StringFieldIndex{Field: "Name"}},
			}}, New: func() any { return new(Template) }},
			{Schema: byName(tableRules), New: func() any { return new(Rule) }},
			{Schema: &memdb.TableSchema{Name: tableDeliveries, Indexes: map[string]*memdb.IndexSchema{
				"id":    {Name: "id", Unique: true, Indexer: &memdb.StringFieldIndex{Field: "ID"}},
				"state": {Name: "state", Indexer: &memdb.StringFieldIndex{Field: "State"}},
				"seq":   {Name: "seq", Unique: true, Indexer: &memdb.UintFieldIndex{Field: "Seq"}},
			}}, New: func() any { return new(Delivery) }},
			{Schema: &memdb.TableSchema{Name: tableThrottle, Indexes: map[string]*memdb.IndexSchema{
				"id": {Name: "id", Unique: true, Indexer: &memdb.StringFieldIndex{Field: "Rule"}},
			}}, New: func() any { return new(throttleRow) }},
			{Schema: byName(tableCounters), New: func() any { return new(counter) }},
		},
		Commands: map[string]state.Handler{
			cmdChannelPut:     state.V1(applyChannelPut),
			cmdChannelDelete:  state.V1(applyChannelDelete),
			cmdChannelRewrap:  state.V1(applyChannelRewrap),
			cmdTemplatePut:    state.V1(applyTemplatePut),
			cmdTemplateDelete: state.V1(applyTemplateDelete),
			cmdRulePut:        state.V1(applyRulePut),
			cmdRuleDelete:     state.V1(applyRuleDelete),
			cmdEmit:           state.V1(applyEmit),
			cmdTest:           state.V1(applyTest),
			cmdResults:        state.V1(applyResults),
			cmdRedeliver:      state.V1(applyRedeliver),
			cmdArchive:        state.V1(applyArchive),
			cmdDigestFlush:    state.V1(applyDigestFlush),
			cmdRestore:        state.V1(applyRestore),
		},
	}
}

// Emitter is what other domains call from their Apply to raise an event.
// It is Emit; domains take it as a dependency so that their tests need no
// notification tables.
type Emitter func(ctx *state.ApplyContext, e tmpl.Event, m Match) error

// Emit routes an event inside the caller's transaction: every enabled
// rule that matches it gets a delivery per channel, or, over its
// throttle, holds the event for the window's digest. The event's ID and
// time come from the FSM so that every controller makes the same rows.
func Emit(ctx *state.ApplyContext, e tmpl.Event, m Match) error {
	n, err := next(ctx.Txn, "event")
	if err != nil {
		return err
	}
	e.ID = fmt.Sprintf("evt_%d_%d", ctx.Index, n)
	if e.Time.IsZero() {
		e.Time = ctx.Time
	}
	if e.Severity == "" {
		e.Severity = tmpl.SeverityInfo
	}
	e = tmpl.Bound(e)
	it, err := ctx.Txn.Get(tableRules, "id")
	if err != nil {
		return fmt.Errorf("read rules: %w", err)
	}
	var rules []*Rule
	for obj := it.Next(); obj != nil; obj = it.Next() {
		if r := obj.(*Rule); r.Enabled && r.matches(e, m) {
			rules = append(rules, r)
		}
	}
	for _, r := range rules {
		if err := route(ctx, r, e); err != nil {
			return fmt.Errorf("rule %s: %w", r.Name, err)
		}
	}
	return nil
}

var severityRank = map[tmpl.Severity]int{tmpl.SeverityInfo: 0, tmpl.SeverityWarning: 1, tmpl.SeverityCritical: 2}

func (r *Rule) matches(e tmpl.Event, m Match) bool {
	if !slices.Contains(r.Events, e.Type) {
		return false
	}
	f := r.Filter
	if f.MinSeverity != "" && severityRank[e.Severity] < severityRank[f.MinSeverity] {
		return false
	}
	if len(f.Jobs) > 0 && !slices.ContainsFunc(f.Jobs, func(p string) bool {
		ok, err := path.Match(p, m.Job)
		return err == nil && ok && m.Job != ""
	}) {
		return false
	}
	for k, v := range f.Tags {
		if got, ok := m.Tags[k]; !ok || got != v {
			return false
		}
	}
	if len(f.Groups) > 0 && !slices.ContainsFunc(f.Groups, func(g string) bool { return slices.Contains(m.Groups, g) }) {
		return false
	}
	return true
}

// route applies a rule's throttle to one event and queues what passes.
func route(ctx *state.ApplyContext, r *Rule, e tmpl.Event) error {
	if r.Throttle.Max <= 0 || r.Throttle.Window <= 0 {
		return enqueue(ctx, r, e)
	}
	row, err := getThrottle(ctx.Txn, r.Name)
	if err != nil {
		return err
	}
	if row != nil && !ctx.Time.Before(row.WindowStart.Add(row.Window.Std())) {
		// The window is over: its digest goes out before the new window
		// opens, so the order of notifications follows the events.
		if err := flushDigest(ctx, r, row); err != nil {
			return err
		}
		row = nil
	}
	if row == nil {
		row = &throttleRow{Rule: r.Name, WindowStart: ctx.Time, Window: r.Throttle.Window}
	} else {
		row = row.clone()
	}
	if row.Count < r.Throttle.Max {
		row.Count++
		if err := ctx.Txn.Insert(tableThrottle, row); err != nil {
			return err
		}
		return enqueue(ctx, r, e)
	}
	row.Held++
	if len(row.HeldEvents) < MaxDigestEvents {
		row.HeldEvents = append(row.HeldEvents, e)
	}
	return ctx.Txn.Insert(tableThrottle, row)
}

// flushDigest queues one digest of a window's held events and ends the
// window.
func flushDigest(ctx *state.ApplyContext, r *Rule, row *throttleRow) error {
	if err := ctx.Txn.Delete(tableThrottle, row); err != nil {
		return err
	}
	if row.Held == 0 {
		return nil
	}
	n, err := next(ctx.Txn, "event")
	if err != nil {
		return err
	}
	worst := tmpl.SeverityInfo
	for _, h := range row.HeldEvents {
		if severityRank[h.Severity] > severityRank[worst] {
			worst = h.Severity
		}
	}
	d := tmpl.Event{
		ID: fmt.Sprintf("evt_%d_%d", ctx.Index, n), Type: tmpl.EventDigest, Time: ctx.Time, Severity: worst,
		Summary: fmt.Sprintf("%d more events held back by rule %s in %s", row.Held, r.Name, row.Window.Std()),
		Digest:  &tmpl.Digest{Count: row.Held, Window: row.Window.Std(), Events: row.HeldEvents},
	}
	if len(row.HeldEvents) > 0 {
		d.Cluster, d.Links = row.HeldEvents[0].Cluster, row.HeldEvents[0].Links
	}
	return enqueue(ctx, r, tmpl.Bound(d))
}

// enqueue commits one pending delivery per channel of the rule.
func enqueue(ctx *state.ApplyContext, r *Rule, e tmpl.Event) error {
	for _, name := range r.Channels {
		ch, err := getChannel(ctx.Txn, name)
		if err != nil {
			return err
		}
		if err := insertDelivery(ctx, &Delivery{Rule: r.Name, Channel: name, Template: r.Template, Event: e,
			MaxAttempts: ch.MaxAttempts}); err != nil {
			return err
		}
	}
	return nil
}

func insertDelivery(ctx *state.ApplyContext, d *Delivery) error {
	n, err := next(ctx.Txn, "delivery")
	if err != nil {
		return err
	}
	d.ID = fmt.Sprintf("dlv_%d_%d", ctx.Index, n)
	d.Seq = n
	d.State = StatePending
	d.CreatedAt, d.UpdatedAt, d.NextAttemptAt = ctx.Time, ctx.Time, ctx.Time
	if d.MaxAttempts <= 0 {
		d.MaxAttempts = DefaultMaxAttempts
	}
	return ctx.Txn.Insert(tableDeliveries, d)
}

func next(txn *state.Txn, name string) (uint64, error) {
	obj, err := txn.First(tableCounters, "id", name)
	if err != nil {
		return 0, fmt.Errorf("read counter %s: %w", name, err)
	}
	c := counter{Name: name}
	if obj != nil {
		c = *obj.(*counter)
	}
	c.N++
	if err := txn.Insert(tableCounters, &c); err != nil {
		return 0, fmt.Errorf("write counter %s: %w", name, err)
	}
	return c.N, nil
}

func getThrottle(txn state.Reader, rule string) (*throttleRow, error) {
	obj, err := txn.First(tableThrottle, "id", rule)
	if err != nil || obj == nil {
		return nil, err
	}
	return obj.(*throttleRow), nil
}

func getChannel(txn state.Reader, name string) (*Channel, error) {
	return state.ByID[Channel](txn, tableChannels, "channel", name)
}

func getTemplate(txn state.Reader, name string) (*Template, error) {
	return state.ByID[Template](txn, tableTemplates, "template", name)
}

func getRule(txn state.Reader, name string) (*Rule, error) {
	return state.ByID[Rule](txn, tableRules, "rule", name)
}

func getDelivery(txn state.Reader, id string) (*Delivery, error) {
	return state.ByID[Delivery](txn, tableDeliveries, "delivery", id)
}

// rulesUsing names the rules that send to a channel or use a template.
func rulesUsing(txn state.Reader, use func(*Rule) bool) ([]string, error) {
	it, err := txn.Get(tableRules, "id")
	if err != nil {
		return nil, err
	}
	var out []string
	for obj := it.Next(); obj != nil; obj = it.Next() {
		if r := obj.(*Rule); use(r) {
			out = append(out, r.Name)
		}
	}
	return out, nil
}

// revisionCheck refuses a write made against a stale read.
func revisionCheck(kind, name string, have uint64, exists bool, want *uint64) error {
	if want == nil {
		return nil
	}
	if !exists && *want != 0 {
		return problem.NotFound(kind, name)
	}
	if have != *want {
		return problem.New(problem.KindConflict, "revision_mismatch", "%s %s is at revision %d, not %d: read it again", kind, name, have, *want)
	}
	return nil
}

func fieldIndex(field string, i int) string { return field + "[" + itoa(uint64(i)) + "]" }

func itoa(n uint64) string { return strconv.FormatUint(n, 10) }
