package notify

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/opsconductor/opsconductor/controller/communication/channel"
	"github.com/opsconductor/opsconductor/controller/communication/tmpl"
	"github.com/opsconductor/opsconductor/controller/history"
	"github.com/opsconductor/opsconductor/controller/problem"
	"github.com/opsconductor/opsconductor/controller/state"
)

const (
	kindDelivery = "communication.delivery"
	cmdRestore   = "notify.delivery.restore"
	// maxResultBatch bounds the results one Raft entry commits.
	maxResultBatch = 512
)

func deliveryStream(id string) string { return "communication/delivery/" + id }

// Run delivers while this controller leads; it returns when ctx ends.
func (s *Service) Run(ctx context.Context) {
	tick := time.NewTicker(250 * time.Millisecond)
	defer tick.Stop()
	lastLeader := ""
	for {
		if s.d.IsLeader() {
			s.leaderChanged(ctx, lastLeader)
			lastLeader = s.d.NodeID
			s.lead(ctx)
		} else if s.d.LeaderID != nil {
			if id := s.d.LeaderID(ctx); id != "" {
				lastLeader = id
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

// leaderChanged raises cluster.leader_changed as this controller takes
// over. It is best effort: a leader that loses the term before the event
// commits leaves the raising to the next one.
func (s *Service) leaderChanged(ctx context.Context, from string) {
	if from == s.d.NodeID {
		return
	}
	sev := tmpl.SeverityWarning
	if from == "" {
		sev = tmpl.SeverityInfo
	}
	e := tmpl.Event{Type: tmpl.EventLeaderChanged, Severity: sev, Leader: &tmpl.Leader{From: from, To: s.d.NodeID},
		Summary: fmt.Sprintf("controller %s is now the cluster leader", s.d.NodeID)}
	if from != "" {
		e.Summary += " (was " + from + ")"
	}
	if err := s.Publish(ctx, e, Match{}); err != nil {
		s.d.Logger.Warn("raise leader change", "error", err)
	}
}

// worker is one leadership term's sending state.
type worker struct {
	s        *Service
	mu       sync.Mutex
	inflight map[string]bool
	results  chan result
	sem      chan struct{}
	rng      *rand.Rand
	rngMu    sync.Mutex
	kick     chan struct{}
}

// lead runs the outbox until leadership is lost or ctx ends. Attempts in
// flight when it returns are finished; their results are committed only
// if this controller still leads, otherwise the next leader tries again.
func (s *Service) lead(ctx context.Context) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	w := &worker{s: s, inflight: map[string]bool{}, results: make(chan result, 4*maxResultBatch),
		sem: make(chan struct{}, s.cfg.Concurrency), rng: rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 0x6e6f74696679)),
		kick: make(chan struct{}, 1)}
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); w.commit(ctx) }()
	s.d.Logger.Info("notification outbox started")
	defer func() {
		cancel()
		wg.Wait()
		s.d.Sender.CloseIdle()
		s.d.Logger.Info("notification outbox stopped")
	}()
	housekeep := time.NewTicker(time.Second)
	defer housekeep.Stop()
	for s.d.IsLeader() && ctx.Err() == nil {
		wake := w.dispatch(ctx)
		select {
		case <-ctx.Done():
			return
		case <-housekeep.C:
			w.flushDigests(ctx)
			w.archive(ctx)
		case <-w.kick:
		case <-wake:
		}
	}
}

// dispatch starts every due delivery not already in flight and returns a
// channel that fires when the outbox changes or the next one is due.
func (w *worker) dispatch(ctx context.Context) <-chan struct{} {
	s := w.s
	txn := s.d.Store.ReadTxn()
	it, err := txn.Get(tableDeliveries, "state", StatePending)
	if err != nil {
		s.d.Logger.Error("read outbox", "error", err)
		return after(time.Second)
	}
	now := s.d.Now()
	nextDue := now.Add(time.Second)
	for obj := it.Next(); obj != nil; obj = it.Next() {
		d := obj.(*Delivery)
		if d.NextAttemptAt.After(now) {
			if d.NextAttemptAt.Before(nextDue) {
				nextDue = d.NextAttemptAt
			}
			continue
		}
		w.mu.Lock()
		busy := w.inflight[d.ID]
		if !busy {
			w.inflight[d.ID] = true
		}
		w.mu.Unlock()
		if busy {
			continue
		}
		select {
		case w.sem <- struct{}{}:
		case <-ctx.Done():
			return nil
		}
		go func(d Delivery) {
			defer func() { <-w.sem }()
			r := w.attempt(ctx, &d)
			if ctx.Err() != nil {
				// The term ended mid-attempt: its failure says nothing
				// about the receiver. The next leader sends it again.
				return
			}
			s.countAttempt(&d, r)
			select {
			case w.results <- r:
			case <-ctx.Done():
			}
		}(*d)
	}
	// Any write to the outbox (a new delivery, a result) changes the
	// table's id index, whose root this iterator watches.
	all, err := txn.Get(tableDeliveries, "id")
	if err != nil {
		return after(time.Second)
	}
	ch := make(chan struct{})
	go func() {
		defer close(ch)
		timer := time.NewTimer(max(time.Until(nextDue), time.Millisecond))
		defer timer.Stop()
		select {
		case <-all.WatchCh():
		case <-timer.C:
		case <-ctx.Done():
		}
	}()
	return ch
}

// attempt renders and sends one delivery.
func (w *worker) attempt(ctx context.Context, d *Delivery) result {
	s := w.s
	r := result{ID: d.ID, After: d.Attempts}
	started := s.d.Now()
	fail := func(err error, retryable bool) result {
		r.Attempt = Attempt{At: started, Error: err.Error(), Duration: Duration(s.d.Now().Sub(started))}
		r.Retryable = retryable
		r.NextAttemptAt = s.d.Now().Add(w.backoff(d.Attempts + 1))
		return r
	}
	txn := s.d.Store.ReadTxn()
	ch, err := getChannel(txn, d.Channel)
	if err != nil {
		return fail(fmt.Errorf("channel %s: %w", d.Channel, err), false)
	}
	msg, err := s.render(ctx, txn, ch, d)
	if err != nil {
		return fail(err, false)
	}
	secret := ""
	if !ch.Secret.IsZero() {
		if s.d.Sealer == nil {
			return fail(fmt.Errorf("channel %s: no keyring to open its secret", ch.Name), true)
		}
		plain, err := s.d.Sealer.Open(ch.Secret, secretAAD(ch.Name))
		if err != nil {
			return fail(fmt.Errorf("channel %s: open secret: %w", ch.Name, err), true)
		}
		secret = string(plain)
	}
	sctx, cancel := context.WithTimeout(ctx, ch.Config.Timeout())
	res := s.d.Sender.Send(sctx, ch.Config, secret, msg)
	cancel()
	r.Attempt = Attempt{At: started, Code: res.Code, Response: res.Response, Duration: Duration(res.Duration)}
	if res.OK() {
		r.OK = true
		return r
	}
	r.Attempt.Error = res.Err.Error()
	r.Retryable = res.Retryable
	r.NextAttemptAt = s.d.Now().Add(max(w.backoff(d.Attempts+1), res.RetryAfter))
	return r
}

func (w *worker) backoff(attempt int) time.Duration {
	if w.s.cfg.Backoff != nil {
		return w.s.cfg.Backoff(attempt)
	}
	w.rngMu.Lock()
	defer w.rngMu.Unlock()
	return channel.Backoff(attempt, w.rng)
}

// render turns a delivery's event into a message with its template.
func (s *Service) render(ctx context.Context, txn state.Reader, ch *Channel, d *Delivery) (channel.Message, error) {
	kind := tmpl.ChannelKind(ch.Config.Kind)
	t := tmpl.Builtin(d.Event.Type, kind)
	if d.Template != "" {
		stored, err := getTemplate(txn, d.Template)
		if err != nil {
			return channel.Message{}, fmt.Errorf("template %s: %w", d.Template, err)
		}
		t = stored.Template
		if t.Channel != kind {
			return channel.Message{}, fmt.Errorf("template %s is for %s channels, not %s", t.Name, t.Channel, kind)
		}
	}
	c, err := tmpl.Compile(t)
	if err != nil {
		return channel.Message{}, fmt.Errorf("template %s: %w", t.Name, err)
	}
	e := d.Event
	if e.Cluster == "" {
		e.Cluster = s.cfg.Cluster
	}
	s.links(&e)
	out, err := c.Render(ctx, e)
	if err != nil {
		return channel.Message{}, fmt.Errorf("render %s: %w", t.Name, err)
	}
	return channel.Message{Subject: out.Subject, Text: out.Text, HTML: out.HTML, JSON: out.Body, DeliveryID: d.ID, Event: string(e.Type)}, nil
}

// links fills the web UI links the emitter could not know.
func (s *Service) links(e *tmpl.Event) {
	base := s.cfg.UIURL
	if base == "" {
		return
	}
	if e.Links.UI == "" {
		e.Links.UI = base + "/"
	}
	if e.Run != nil && e.Links.Run == "" && e.Run.ID != "" {
		e.Links.Run = base + "/runs/" + e.Run.ID
	}
	if e.Run != nil && e.Links.Job == "" && e.Run.Job != "" {
		e.Links.Job = base + "/jobs/" + e.Run.Job
	}
	if e.Target != nil && e.Links.Target == "" {
		e.Links.Target = base + "/inventory/targets/" + e.Target.Name
	}
	if e.Agent != nil && e.Links.Agent == "" {
		e.Links.Agent = base + "/agents/" + e.Agent.ID
	}
}

// commit batches attempt results into Raft entries.
func (w *worker) commit(ctx context.Context) {
	for {
		var batch []result
		select {
		case <-ctx.Done():
			return
		case r := <-w.results:
			batch = append(batch, r)
		}
		if ctx.Err() != nil {
			return
		}
	drain:
		for len(batch) < maxResultBatch {
			select {
			case r := <-w.results:
				batch = append(batch, r)
			default:
				break drain
			}
		}
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
		err := state.ApplyOne(cctx, w.s.d.Applier, cmdResults, resultsPayload{Results: batch}, nil)
		cancel()
		if err != nil {
			w.s.d.Logger.Warn("commit delivery results", "error", err, "results", len(batch))
		}
		// Failed or not, the deliveries leave the in-flight set: a
		// result that did not commit is tried again (at-least-once).
		w.mu.Lock()
		for _, r := range batch {
			delete(w.inflight, r.ID)
		}
		w.mu.Unlock()
		select {
		case w.kick <- struct{}{}:
		default:
		}
	}
}

// flushDigests closes throttle windows that have ended.
func (w *worker) flushDigests(ctx context.Context) {
	s := w.s
	it, err := s.d.Store.ReadTxn().Get(tableThrottle, "id")
	if err != nil {
		return
	}
	now := s.d.Now()
	var cmds []state.Command
	for obj := it.Next(); obj != nil; obj = it.Next() {
		row := obj.(*throttleRow)
		if now.Before(row.WindowStart.Add(row.Window.Std())) {
			continue
		}
		c, err := state.NewCommand(cmdDigestFlush, 1, digestFlushPayload{Rule: row.Rule, WindowStart: row.WindowStart})
		if err != nil {
			return
		}
		cmds = append(cmds, c)
	}
	if len(cmds) == 0 {
		return
	}
	if _, err := s.d.Applier.Apply(ctx, cmds...); err != nil {
		s.d.Logger.Warn("flush digests", "error", err)
	}
}

// archive moves finished deliveries to the history store: delivered ones
// at once, dead letters after the retention (so they can be redelivered
// from the state meanwhile). A delivery leaves the state only once its
// record is durable.
func (w *worker) archive(ctx context.Context) {
	s := w.s
	if s.d.HistoryWriter == nil {
		return
	}
	now := s.d.Now()
	var recs []history.Record
	var ids []string
	for _, st := range []string{StateDelivered, StateDead} {
		it, err := s.d.Store.ReadTxn().Get(tableDeliveries, "state", st)
		if err != nil {
			return
		}
		for obj := it.Next(); obj != nil && len(ids) < 2048; obj = it.Next() {
			d := obj.(*Delivery)
			if st == StateDead && (d.FinishedAt == nil || now.Sub(*d.FinishedAt) < s.cfg.Retention) {
				continue
			}
			rec, err := deliveryRecord(d)
			if err != nil {
				s.d.Logger.Error("encode delivery", "delivery_id", d.ID, "error", err)
				continue
			}
			recs, ids = append(recs, rec), append(ids, d.ID)
		}
	}
	if len(ids) == 0 {
		return
	}
	if err := s.d.HistoryWriter.Write(ctx, recs); err != nil {
		s.d.Logger.Warn("record deliveries", "error", err)
		return
	}
	if err := state.ApplyOne(ctx, s.d.Applier, cmdArchive, archivePayload{IDs: ids}, nil); err != nil {
		s.d.Logger.Warn("archive deliveries", "error", err)
	}
}

// deliveryRecord is a finished delivery's history record. Its sequence
// is the delivery's attempt count, so a redelivered one is recorded again
// as a new record of the same stream.
func deliveryRecord(d *Delivery) (history.Record, error) {
	data, err := json.Marshal(d)
	if err != nil {
		return history.Record{}, err
	}
	t := d.CreatedAt
	return history.Record{Stream: deliveryStream(d.ID), Seq: uint64(d.Round) + 1, Time: t, Kind: kindDelivery,
		Fields: map[string]string{"delivery_id": d.ID, "state": d.State, "rule": d.Rule, "channel": d.Channel, "event": string(d.Event.Type)},
		Data:   data}, nil
}

type restorePayload struct {
	Delivery Delivery `json:"delivery"`
}

// applyRestore brings an archived delivery back into the state so that it
// can be redelivered.
func applyRestore(ctx *state.ApplyContext, p restorePayload) (any, error) {
	if _, err := getDelivery(ctx.Txn, p.Delivery.ID); err == nil {
		return nil, nil
	} else if !problem.Is(err, problem.KindNotFound) {
		return nil, err
	}
	d := p.Delivery
	if d.State == StatePending {
		return nil, problem.Invalid("delivery.state", "a restored delivery must be finished")
	}
	return nil, ctx.Txn.Insert(tableDeliveries, &d)
}

func after(d time.Duration) <-chan struct{} {
	ch := make(chan struct{})
	time.AfterFunc(d, func() { close(ch) })
	return ch
}
