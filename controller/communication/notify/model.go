package notify

import (
	"slices"
	"time"

	"github.com/opsconductor/opsconductor/controller/communication/channel"
	"github.com/opsconductor/opsconductor/controller/communication/tmpl"
	"github.com/opsconductor/opsconductor/controller/keyring"
)

// Delivery states.
const (
	StatePending   = "pending"
	StateDelivered = "delivered"
	StateDead      = "dead"
)

// Defaults a rule or channel may override.
const (
	DefaultMaxAttempts = 8
	// MaxHistory bounds the attempts a delivery keeps in the state.
	MaxHistory = 10
	// MaxDigestEvents is how many held-back events a digest carries in
	// full; the rest are counted.
	MaxDigestEvents = 20
)

// Channel is where notifications go. Its secret (the webhook HMAC key,
// the SMTP password) is sealed by the keyring and never shown.
type Channel struct {
	Name        string         `json:"name"`
	Description string         `json:"description,omitempty"`
	Config      channel.Config `json:"config"`
	Secret      keyring.Sealed `json:"secret,omitzero"`
	// MaxAttempts is how many tries a delivery gets before it is dead.
	MaxAttempts int       `json:"max_attempts"`
	Revision    uint64    `json:"revision"`
	CreatedBy   string    `json:"created_by,omitempty"`
	CreatedAt   time.Time `json:"created_at"`
	UpdatedAt   time.Time `json:"updated_at"`
}

// Template is a user's template as stored.
type Template struct {
	tmpl.Template
	Description string    `json:"description,omitempty"`
	Revision    uint64    `json:"revision"`
	CreatedAt   time.Time `json:"created_at"`
	UpdatedAt   time.Time `json:"updated_at"`
}

// Filter narrows a rule's events. Every set field must match.
type Filter struct {
	// Jobs are job names or path.Match patterns ("deploy-*").
	Jobs []string `json:"jobs,omitempty"`
	// Tags must all be on the event's target or agent (key=value).
	Tags map[string]string `json:"tags,omitempty"`
	// Groups: the event's target must be in one of them.
	Groups []string `json:"groups,omitempty"`
	// MinSeverity drops events below it (info < warning < critical).
	MinSeverity tmpl.Severity `json:"min_severity,omitempty"`
}

// Throttle caps a rule: at most Max notifications per Window; the events
// over the cap are folded into one digest sent when the window ends.
type Throttle struct {
	Max    int      `json:"max"`
	Window Duration `json:"window"`
}

// Rule sends the events it matches to its channels.
type Rule struct {
	Name        string           `json:"name"`
	Description string           `json:"description,omitempty"`
	Events      []tmpl.EventType `json:"events"`
	Filter      Filter           `json:"filter,omitzero"`
	Channels    []string         `json:"channels"`
	// Template names a stored template; empty means the built-in one for
	// each event and channel kind.
	Template  string    `json:"template,omitempty"`
	Throttle  Throttle  `json:"throttle,omitzero"`
	Enabled   bool      `json:"enabled"`
	Revision  uint64    `json:"revision"`
	CreatedAt time.Time `json:"created_at"`
	UpdatedAt time.Time `json:"updated_at"`
}

// Attempt is one try of a delivery.
type Attempt struct {
	At       time.Time `json:"at"`
	Code     int       `json:"code,omitempty"`
	Error    string    `json:"error,omitempty"`
	Response string    `json:"response,omitempty"`
	Duration Duration  `json:"duration"`
}

// Delivery is one notification to one channel: the outbox row.
type Delivery struct {
	ID       string     `json:"id"`
	Rule     string     `json:"rule,omitempty"`
	Channel  string     `json:"channel"`
	Template string     `json:"template,omitempty"`
	Event    tmpl.Event `json:"event"`
	// Test marks a "send test" delivery.
	Test          bool       `json:"test,omitempty"`
	State         string     `json:"state"`
	Attempts      int        `json:"attempts"`
	MaxAttempts   int        `json:"max_attempts"`
	NextAttemptAt time.Time  `json:"next_attempt_at"`
	LastError     string     `json:"last_error,omitempty"`
	LastCode      int        `json:"last_code,omitempty"`
	History       []Attempt  `json:"history,omitempty"`
	CreatedAt     time.Time  `json:"created_at"`
	UpdatedAt     time.Time  `json:"updated_at"`
	FinishedAt    *time.Time `json:"finished_at,omitempty"`
	// Round counts redeliveries by hand.
	Round int `json:"round,omitempty"`
	// Seq orders deliveries by creation.
	Seq uint64 `json:"seq"`
}

func (d *Delivery) clone() *Delivery {
	c := *d
	c.History = slices.Clone(d.History)
	return &c
}

// throttleRow is a rule's current window.
type throttleRow struct {
	Rule        string       `json:"rule"`
	WindowStart time.Time    `json:"window_start"`
	Window      Duration     `json:"window"`
	Count       int          `json:"count"`
	Held        int          `json:"held"`
	HeldEvents  []tmpl.Event `json:"held_events,omitempty"`
}

func (t *throttleRow) clone() *throttleRow {
	c := *t
	c.HeldEvents = slices.Clone(t.HeldEvents)
	return &c
}

// counter numbers events and deliveries: IDs must be the same on every
// controller, so they come from the FSM, not from randomness.
type counter struct {
	Name string `json:"name"`
	N    uint64 `json:"n"`
}

// Match is what rule filters see of an event beyond its type and
// severity. Emitters fill what they know.
type Match struct {
	Job     string            `json:"job,omitempty"`
	Targets []string          `json:"targets,omitempty"`
	Tags    map[string]string `json:"tags,omitempty"`
	Groups  []string          `json:"groups,omitempty"`
}

// Duration is a time.Duration written as "30s" in JSON.
type Duration = channel.Duration
