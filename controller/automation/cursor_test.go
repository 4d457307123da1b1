package automation

import (
	"testing"
	"time"
)

func TestRunCursorRoundTrips(t *testing.T) {
	tests := []struct {
		name string
		at   time.Time
		id   string
	}{
		{"now", time.Date(2026, 11, 27, 21, 0, 0, 123456789, time.UTC), "run_0123456789abcdef"},
		{"the epoch", time.Unix(0, 0).UTC(), "run_x"},
		{"before the epoch", time.Date(1960, 1, 1, 0, 0, 0, 0, time.UTC), "run_y"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			at, id, err := parseRunCursor(cursorOf(tt.at, tt.id))
			if err != nil || !at.Equal(tt.at) || id != tt.id {
				t.Fatalf("got %v %q %v", at, id, err)
			}
		})
	}
	for _, bad := range []string{"x", ".", "abc.", ".run_1", "zzzzzzzzzzzzzzzzzzzz.run_1"} {
		if _, _, err := parseRunCursor(bad); err == nil {
			t.Errorf("cursor %q accepted", bad)
		}
	}
}

// FuzzRunCursor: any cursor a client sends is refused cleanly or read
// back to what it encodes.
func FuzzRunCursor(f *testing.F) {
	f.Add(cursorOf(time.Unix(1795800000, 5), "run_1"))
	f.Add("")
	f.Add("1.")
	f.Add("-zz.run_..")
	f.Fuzz(func(t *testing.T, c string) {
		at, id, err := parseRunCursor(c)
		if err != nil || c == "" {
			return
		}
		if again := cursorOf(at, id); again != c {
			if at2, id2, err := parseRunCursor(again); err != nil || !at2.Equal(at) || id2 != id {
				t.Fatalf("%q read as %v %q, which encodes as %q", c, at, id, again)
			}
		}
	})
}

// FuzzLogCursor: a log cursor is refused cleanly or reads as a position.
func FuzzLogCursor(f *testing.F) {
	f.Add("0:0")
	f.Add("3:17")
	f.Add("-1:2")
	f.Add(":")
	f.Fuzz(func(t *testing.T, c string) {
		idx, _, err := parseLogCursor(c)
		if err == nil && idx < 0 {
			t.Fatalf("%q read as index %d", c, idx)
		}
	})
}
