package apiclient

import (
	"context"
	"net/http"
	"net/url"
	"time"
)

// The schedule API's documents, mirroring the controller's JSON.

// ScheduleInput creates or replaces a schedule. Enabled nil is true on
// create and unchanged on replace; Revision, on replace, must be the
// stored one (0: any).
type ScheduleInput struct {
	Name        string         `json:"name,omitempty"`
	Job         string         `json:"job"`
	Params      map[string]any `json:"params,omitempty"`
	Cron        string         `json:"cron"`
	Timezone    string         `json:"timezone,omitempty"`
	Enabled     *bool          `json:"enabled,omitempty"`
	Overlap     string         `json:"overlap,omitempty"`
	CatchUp     string         `json:"catch_up,omitempty"`
	Description string         `json:"description,omitempty"`
	Revision    uint64         `json:"revision,omitempty"`
}

// Schedule is a stored schedule with its next ticks.
type Schedule struct {
	ID          string         `json:"id"`
	Name        string         `json:"name"`
	Job         string         `json:"job"`
	Params      map[string]any `json:"params,omitempty"`
	Cron        string         `json:"cron"`
	Timezone    string         `json:"timezone"`
	Enabled     bool           `json:"enabled"`
	Overlap     string         `json:"overlap"`
	CatchUp     string         `json:"catch_up"`
	Description string         `json:"description,omitempty"`
	// Owner is the user ID the schedule's runs act for.
	Owner        string     `json:"owner"`
	OwnerName    string     `json:"owner_name,omitempty"`
	CreatedAt    time.Time  `json:"created_at"`
	UpdatedAt    time.Time  `json:"updated_at"`
	ActiveSince  time.Time  `json:"active_since"`
	LastFireTime *time.Time `json:"last_fire_time,omitempty"`
	LastRunID    string     `json:"last_run_id,omitempty"`
	// LastOutcome is started, skipped_overlap, skipped_missed or
	// "error: …".
	LastOutcome string `json:"last_outcome,omitempty"`
	Revision    uint64 `json:"revision"`
	// NextFires are the next ticks in the schedule's zone (RFC 3339);
	// empty while disabled.
	NextFires []string `json:"next_fires"`
}

// Input returns the schedule as an input to replace it with, at its
// revision.
func (s Schedule) Input() ScheduleInput {
	on := s.Enabled
	return ScheduleInput{Name: s.Name, Job: s.Job, Params: s.Params, Cron: s.Cron, Timezone: s.Timezone, Enabled: &on,
		Overlap: s.Overlap, CatchUp: s.CatchUp, Description: s.Description, Revision: s.Revision}
}

const schedulesBase = "/api/v1/schedules"

func schedulePath(name string) string { return schedulesBase + "/" + url.PathEscape(name) }

// CreateSchedule stores a new schedule owned by the caller.
func (c *Client) CreateSchedule(ctx context.Context, in ScheduleInput) (Schedule, error) {
	var out Schedule
	err := c.do(ctx, http.MethodPost, schedulesBase, in, &out)
	return out, err
}

// ListSchedules returns every schedule, by name.
func (c *Client) ListSchedules(ctx context.Context) ([]Schedule, error) {
	var out struct {
		Items []Schedule `json:"items"`
	}
	err := c.do(ctx, http.MethodGet, schedulesBase, nil, &out)
	return out.Items, err
}

// GetSchedule returns one schedule.
func (c *Client) GetSchedule(ctx context.Context, name string) (Schedule, error) {
	var out Schedule
	err := c.do(ctx, http.MethodGet, schedulePath(name), nil, &out)
	return out, err
}

// UpdateSchedule replaces a schedule; the caller becomes its owner.
func (c *Client) UpdateSchedule(ctx context.Context, name string, in ScheduleInput) (Schedule, error) {
	var out Schedule
	err := c.do(ctx, http.MethodPut, schedulePath(name), in, &out)
	return out, err
}

// DeleteSchedule deletes a schedule.
func (c *Client) DeleteSchedule(ctx context.Context, name string) (Schedule, error) {
	var out Schedule
	err := c.do(ctx, http.MethodDelete, schedulePath(name), nil, &out)
	return out, err
}

// SetScheduleEnabled turns a schedule on or off.
func (c *Client) SetScheduleEnabled(ctx context.Context, name string, enabled bool) (Schedule, error) {
	action := "/disable"
	if enabled {
		action = "/enable"
	}
	var out Schedule
	err := c.do(ctx, http.MethodPost, schedulePath(name)+action, nil, &out)
	return out, err
}
