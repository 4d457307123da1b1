package schedule

import (
	"encoding/json"
	"testing"
	"time"
)

// FuzzInput feeds the schedule decoder what a client may send: the JSON
// body the gateway decodes into Input, then normalize, which parses the
// cron spec and zone. It must never panic, and whatever it accepts must
// have a spec that parses again and whose ticks move strictly forward in
// the schedule's zone.
func FuzzInput(f *testing.F) {
	for _, seed := range []string{
		`{"name":"nightly","job":"backup","cron":"30 2 * * *","timezone":"Europe/Berlin"}`,
		`{"name":"n","job":"j","cron":"0 30 2 * * *","timezone":"America/New_York","overlap":"allow","catch_up":"once"}`,
		`{"name":"n","job":"j","cron":"@every 5m"}`,
		`{"name":"n","job":"j","cron":"@every 0s"}`,
		`{"name":"n","job":"j","cron":"@daily","timezone":"Local"}`,
		`{"name":"n","job":"j","cron":"TZ=UTC 0 * * * *"}`,
		`{"name":"n","job":"j","cron":"0 0 30 2 *"}`,
		`{"name":"n","job":"j","cron":"*/0 * * * *"}`,
		`{"name":"n","job":"j","cron":"0-59/61 * * * *"}`,
		`{"name":"n","job":"j","cron":"* * * * * * *"}`,
		`{"name":"n","job":"j","cron":"@every -1h"}`,
		`{"name":"n","job":"j","cron":"0 3 L * *"}`,
		`{"name":"n","job":"j","cron":"0 3 ? * MON-FRI","params":{"a":[1,{"b":null}]}}`,
		`{"name":"UPPER","job":"","cron":"","timezone":"Mars/Olympus","overlap":"x","catch_up":"y"}`,
		`{"name":"n","job":"j","cron":"0 2 * * *","timezone":"Australia/Lord_Howe"}`,
		`{}`,
		`[]`,
	} {
		f.Add([]byte(seed))
	}
	from := time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)
	f.Fuzz(func(t *testing.T, data []byte) {
		var in Input
		if err := json.Unmarshal(data, &in); err != nil {
			return
		}
		sc, errs := normalize(in)
		if len(errs) > 0 {
			for _, e := range errs {
				if e.Field == "" {
					t.Fatalf("a problem names no field: %v", e)
				}
			}
			return
		}
		sp, err := ParseSpec(sc.Cron, sc.Timezone)
		if err != nil {
			t.Fatalf("accepted %q in %q but it does not parse again: %v", sc.Cron, sc.Timezone, err)
		}
		prev := from
		ticks := sp.NextN(from, 5)
		if len(ticks) == 5 {
			// Latest walks back from now; it must agree with walking
			// forward.
			if got, ok := sp.Latest(from, ticks[3].Add(-time.Nanosecond)); !ok || !got.Equal(ticks[2]) {
				t.Fatalf("%q in %q: Latest before %s = %s %v, want %s", sc.Cron, sc.Timezone, ticks[3], got, ok, ticks[2])
			}
		}
		for _, n := range ticks {
			if !n.After(prev) {
				t.Fatalf("%q in %q: tick %s is not after %s", sc.Cron, sc.Timezone, n, prev)
			}
			if n.Location() != sp.Location() {
				t.Fatalf("%q: tick %s is not in the zone %s", sc.Cron, n, sp.Location())
			}
			prev = n
		}
	})
}
