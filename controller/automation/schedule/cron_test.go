package schedule

import (
	"strings"
	"testing"
	"time"
)

// TestSpecNextAcrossDST pins down what a spec means when the clock
// changes: specs naming hours follow the wall clock (a skipped time fires
// when the clock jumps past it, a repeated one fires once), specs for
// every hour follow real time.
func TestSpecNextAcrossDST(t *testing.T) {
	tests := []struct {
		name, spec, tz string
		from           string // RFC 3339
		want           []string
	}{
		{"a daily 02:30 in Berlin fires at 03:00 on the night the clock skips 02:00-03:00",
			"30 2 * * *", "Europe/Berlin", "2026-03-28T00:00:00+01:00",
			[]string{"2026-03-28T02:30:00+01:00", "2026-03-29T03:00:00+02:00", "2026-03-30T02:30:00+02:00"}},
		{"a daily 02:30 in Berlin fires once on the night 02:00-03:00 happens twice",
			"30 2 * * *", "Europe/Berlin", "2026-10-24T00:00:00+02:00",
			[]string{"2026-10-24T02:30:00+02:00", "2026-10-25T02:30:00+02:00", "2026-10-26T02:30:00+01:00"}},
		{"a daily 02:30 asked for during the repeated hour's second pass waits for the next day",
			"30 2 * * *", "Europe/Berlin", "2026-10-25T02:10:00+01:00",
			[]string{"2026-10-26T02:30:00+01:00"}},
		{"six fields with seconds follow the same rule",
			"15 30 2 * * *", "Europe/Berlin", "2026-03-29T00:00:00+01:00",
			[]string{"2026-03-29T03:00:00+02:00", "2026-03-30T02:30:15+02:00"}},
		{"two times inside the skipped hour fire once between them",
			"0,30 2 * * *", "Europe/Berlin", "2026-03-29T00:00:00+01:00",
			[]string{"2026-03-29T03:00:00+02:00", "2026-03-30T02:00:00+02:00"}},
		{"an hourly spec runs in both passes of the repeated hour",
			"0 * * * *", "Europe/Berlin", "2026-10-25T01:00:00+02:00",
			[]string{"2026-10-25T02:00:00+02:00", "2026-10-25T02:00:00+01:00", "2026-10-25T03:00:00+01:00"}},
		{"an hourly spec has no run in the skipped hour",
			"0 * * * *", "Europe/Berlin", "2026-03-29T01:00:00+01:00",
			[]string{"2026-03-29T03:00:00+02:00", "2026-03-29T04:00:00+02:00"}},
		{"New York's 01:30 fires once when the clock falls back",
			"30 1 * * *", "America/New_York", "2026-11-01T00:00:00-04:00",
			[]string{"2026-11-01T01:30:00-04:00", "2026-11-02T01:30:00-05:00"}},
		{"New York's 02:30 fires at 03:00 when the clock springs forward",
			"30 2 * * *", "America/New_York", "2026-03-08T00:00:00-05:00",
			[]string{"2026-03-08T03:00:00-04:00", "2026-03-09T02:30:00-04:00"}},
		{"@daily is midnight in the zone",
			"@daily", "Asia/Kolkata", "2026-06-01T12:00:00+05:30",
			[]string{"2026-06-02T00:00:00+05:30", "2026-06-03T00:00:00+05:30"}},
		{"weekdays at nine skip the weekend",
			"0 9 * * 1-5", "UTC", "2026-11-27T10:00:00Z", // a Friday
			[]string{"2026-11-30T09:00:00Z", "2026-12-01T09:00:00Z"}},
		{"@every counts real time from the last tick, at whole seconds",
			"@every 90m", "Europe/Berlin", "2026-10-25T01:00:00.5+02:00",
			[]string{"2026-10-25T02:30:00+02:00", "2026-10-25T03:00:00+01:00"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sp, err := ParseSpec(tt.spec, tt.tz)
			if err != nil {
				t.Fatal(err)
			}
			from, err := time.Parse(time.RFC3339Nano, tt.from)
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, n := range sp.NextN(from, len(tt.want)) {
				got = append(got, n.Format(time.RFC3339))
			}
			if strings.Join(got, " ") != strings.Join(tt.want, " ") {
				t.Fatalf("next after %s\n got %v\nwant %v", tt.from, got, tt.want)
			}
		})
	}
}

func TestParseSpecRefuses(t *testing.T) {
	tests := []struct {
		name, spec, tz, want string
	}{
		{"a minute past 59", "61 * * * *", "", "end of range"},
		{"four fields", "* * * *", "", "expected 5 to 6 fields"},
		{"a zone inside the spec", "TZ=Europe/Paris 0 3 * * *", "", "give the time zone in timezone"},
		{"CRON_TZ inside the spec", "CRON_TZ=UTC 0 3 * * *", "", "give the time zone in timezone"},
		{"@every below a second", "@every 500ms", "", "at least 1s"},
		{"@every with a fraction of a second", "@every 1500ms", "", "whole number of seconds"},
		{"an unknown descriptor", "@fortnightly", "", "unrecognized descriptor"},
		{"an unknown zone", "0 3 * * *", "Mars/Olympus", "unknown time zone"},
		{"the controller's local zone", "0 3 * * *", "Local", "depends on the controller"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ParseSpec(tt.spec, tt.tz)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("ParseSpec(%q, %q) = %v, want an error containing %q", tt.spec, tt.tz, err, tt.want)
			}
		})
	}
}

func TestSpecLatest(t *testing.T) {
	at := func(s string) time.Time {
		v, err := time.Parse(time.RFC3339, s)
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	tests := []struct {
		name, spec, tz, after, now string
		want                       string // "" for none
	}{
		{"nothing before the first tick", "0 * * * *", "", "2026-01-01T00:00:00Z", "2026-01-01T00:59:59Z", ""},
		{"the tick itself counts", "0 * * * *", "", "2026-01-01T00:00:00Z", "2026-01-01T01:00:00Z", "2026-01-01T01:00:00Z"},
		{"the latest of several missed ticks", "0 * * * *", "", "2026-01-01T00:00:00Z", "2026-01-01T05:30:00Z", "2026-01-01T05:00:00Z"},
		{"a per-second spec missed for a week", "* * * * * *", "", "2026-01-01T00:00:00Z", "2026-01-08T00:00:00.7Z", "2026-01-08T00:00:00Z"},
		{"a yearly spec missed for two years", "0 0 1 1 *", "", "2024-06-01T00:00:00Z", "2026-06-01T00:00:00Z", "2026-01-01T00:00:00Z"},
		{"@every from its base", "@every 7m", "", "2026-01-01T00:00:00Z", "2026-01-01T01:00:00Z", "2026-01-01T00:56:00Z"},
		{"@every before its first tick", "@every 7m", "", "2026-01-01T00:00:00Z", "2026-01-01T00:06:59Z", ""},
		{"a skipped wall time is the tick at the jump", "30 2 * * *", "Europe/Berlin", "2026-03-28T12:00:00Z", "2026-03-29T01:30:00Z", "2026-03-29T01:00:00Z"},
		{"a repeated wall time is one tick, the first", "30 2 * * *", "Europe/Berlin", "2026-10-24T12:00:00Z", "2026-10-25T02:00:00Z", "2026-10-25T00:30:00Z"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sp, err := ParseSpec(tt.spec, tt.tz)
			if err != nil {
				t.Fatal(err)
			}
			now, err := time.Parse(time.RFC3339Nano, tt.now)
			if err != nil {
				t.Fatal(err)
			}
			got, ok := sp.Latest(at(tt.after), now)
			switch {
			case tt.want == "" && ok:
				t.Fatalf("Latest = %s, want none", got)
			case tt.want != "" && (!ok || !got.Equal(at(tt.want))):
				t.Fatalf("Latest = %s %v, want %s", got, ok, tt.want)
			}
		})
	}
}
