package schedule

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/robfig/cron/v3"
)

// cronParser reads 5 fields, 6 with seconds first, and descriptors
// (@daily, @hourly, @every 5m).
var cronParser = cron.NewParser(cron.SecondOptional | cron.Minute | cron.Hour | cron.Dom | cron.Month | cron.Dow | cron.Descriptor)

// allHours is the Hour bits of a spec that names every hour ("*", "*/1",
// "0-23", @hourly).
const allHours = 1<<24 - 1

// Spec is a parsed cron spec in its time zone.
type Spec struct {
	loc *time.Location
	// Exactly one of these is set.
	every time.Duration      // @every
	real  *cron.SpecSchedule // every hour: counted in real time
	wall  *cron.SpecSchedule // given hours: counted on the wall clock
}

// ParseSpec parses spec in the IANA zone tz ("" is UTC). The errors say
// what is wrong without naming a field; callers name it.
func ParseSpec(spec, tz string) (*Spec, error) {
	loc, err := LoadZone(tz)
	if err != nil {
		return nil, err
	}
	if strings.HasPrefix(spec, "TZ=") || strings.HasPrefix(spec, "CRON_TZ=") {
		return nil, errors.New("give the time zone in timezone, not in the spec")
	}
	parsed, err := cronParser.Parse(spec)
	if err != nil {
		return nil, err
	}
	s := &Spec{loc: loc}
	switch p := parsed.(type) {
	case cron.ConstantDelaySchedule:
		// robfig rounds a delay below a second up to one; say so
		// instead of storing a spec that means something else.
		d, err := time.ParseDuration(strings.TrimSpace(strings.TrimPrefix(spec, "@every")))
		if err != nil || d < time.Second || d%time.Second != 0 {
			return nil, fmt.Errorf("@every needs a whole number of seconds, at least 1s, got %q", spec)
		}
		s.every = p.Delay
	case *cron.SpecSchedule:
		if p.Hour&allHours == allHours {
			s.real = p
		} else {
			s.wall = p
		}
	default:
		return nil, fmt.Errorf("unsupported schedule %T", parsed)
	}
	return s, nil
}

// LoadZone loads an IANA zone; "" is UTC. "Local" is refused: a
// schedule must mean the same on every controller.
func LoadZone(tz string) (*time.Location, error) {
	if tz == "" || tz == "UTC" {
		return time.UTC, nil
	}
	if tz == "Local" {
		return nil, errors.New(`"Local" depends on the controller's settings; name a zone such as Europe/Berlin`)
	}
	loc, err := time.LoadLocation(tz)
	if err != nil {
		return nil, fmt.Errorf("unknown time zone %q (want an IANA name such as Europe/Berlin)", tz)
	}
	return loc, nil
}

// Location is the spec's time zone.
func (s *Spec) Location() *time.Location { return s.loc }

// Next is the first tick strictly after t, in the spec's zone; zero when
// there is none within robfig's five-year search.
//
// Specs that name hours ("30 2 * * *", @daily) follow the wall clock
// across a DST change, as cron(8) does: a time the clock skips fires when
// the clock jumps past it, and a time the clock passes twice fires once,
// the first time. Specs for every hour ("0 * * * *") follow real time: an
// hourly job runs in each of the repeated hour's two passes.
func (s *Spec) Next(t time.Time) time.Time {
	switch {
	case s.every > 0:
		return s.everyNext(t)
	case s.real != nil:
		return s.real.Next(t.In(s.loc))
	}
	l := t.In(s.loc)
	w := time.Date(l.Year(), l.Month(), l.Day(), l.Hour(), l.Minute(), l.Second(), l.Nanosecond(), time.UTC)
	// A slot that maps to t or before (the clock's second pass through a
	// repeated hour) is passed over; bounded, though two is the most a
	// DST change can cost.
	for range 8 {
		w = s.wall.Next(w)
		if w.IsZero() {
			return time.Time{}
		}
		if r := wallInstant(w, s.loc); r.After(t) {
			return r
		}
	}
	return time.Time{}
}

// everyNext is robfig's @every: the delay after t, at a whole second.
func (s *Spec) everyNext(t time.Time) time.Time {
	return t.Add(s.every - time.Duration(t.Nanosecond())).In(s.loc)
}

// wallInstant is the instant when loc's clock shows the wall time w
// (a naive time in UTC): the first of two in a repeated hour, and the end
// of the gap for a time the clock skips.
func wallInstant(w time.Time, loc *time.Location) time.Time {
	// The offsets in force a day either side cover both sides of any
	// change near w (no zone changes twice in 52 hours).
	var offs []int
	for _, d := range []time.Duration{-26 * time.Hour, 0, 26 * time.Hour} {
		if _, o := w.Add(d).In(loc).Zone(); !slices.Contains(offs, o) {
			offs = append(offs, o)
		}
	}
	var first time.Time
	for _, o := range offs {
		r := w.Add(-time.Duration(o) * time.Second).In(loc)
		if _, ro := r.Zone(); ro == o && (first.IsZero() || r.Before(first)) {
			first = r
		}
	}
	if !first.IsZero() {
		return first
	}
	// In the gap: read w with the smallest offset, which lands after the
	// change; the zone in force there began at the change.
	r := w.Add(-time.Duration(slices.Min(offs)) * time.Second).In(loc)
	start, _ := r.ZoneBounds()
	return start.In(loc)
}

// NextN returns the next n ticks after t.
func (s *Spec) NextN(t time.Time, n int) []time.Time {
	out := make([]time.Time, 0, n)
	for len(out) < n {
		t = s.Next(t)
		if t.IsZero() {
			break
		}
		out = append(out, t)
	}
	return out
}

// Latest is the last tick in (after, now], if any.
func (s *Spec) Latest(after, now time.Time) (time.Time, bool) {
	first := s.Next(after)
	if first.IsZero() || first.After(now) {
		return time.Time{}, false
	}
	if s.every > 0 {
		// Ticks are first + k·every: no need to walk a week of them.
		k := now.Sub(first) / s.every
		return first.Add(k * s.every), true
	}
	// Start a window before now and widen it until it holds a tick, so
	// that a per-second spec missed for a week costs a minute of steps,
	// not 600,000.
	span := now.Sub(after) // saturates rather than overflows
	for window := time.Minute; ; window *= 2 {
		from := after
		if window > 0 && window < span { // window > 0: doubling cannot wrap past zero
			from = now.Add(-window)
		}
		t := s.Next(from)
		if !t.IsZero() && !t.After(now) {
			for {
				n := s.Next(t)
				if n.IsZero() || n.After(now) {
					return t, true
				}
				t = n
			}
		}
		if from.Equal(after) {
			// Unreachable: first lies in (after, now].
			return first, true
		}
	}
}
