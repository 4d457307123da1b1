package channel

import (
	"math/rand/v2"
	"testing"
	"time"
)

// maxRand always draws the largest value, exposing Backoff's ceiling.
type maxRand struct{}

func (maxRand) Int64N(n int64) int64 { return n - 1 }

func TestBackoffCeilingDoublesUpToTheCap(t *testing.T) {
	cases := []struct {
		attempt int
		want    time.Duration
	}{
		{attempt: 0, want: time.Second},
		{attempt: 1, want: time.Second},
		{attempt: 2, want: 2 * time.Second},
		{attempt: 5, want: 16 * time.Second},
		{attempt: 10, want: 512 * time.Second},
		{attempt: 11, want: BackoffCap},
		{attempt: 64, want: BackoffCap},
		{attempt: 1 << 30, want: BackoffCap},
	}
	for _, tc := range cases {
		if got := Backoff(tc.attempt, maxRand{}); got != tc.want {
			t.Errorf("Backoff(%d) ceiling = %s, want %s", tc.attempt, got, tc.want)
		}
	}
}

func TestBackoffIsFullJitterAndReproducibleWithASeed(t *testing.T) {
	const seed = 42
	t.Logf("seed %d", seed)
	a := rand.New(rand.NewPCG(seed, seed))
	b := rand.New(rand.NewPCG(seed, seed))
	var below time.Duration
	for attempt := 1; attempt <= 30; attempt++ {
		ceiling := min(BackoffBase<<min(attempt-1, 20), BackoffCap)
		x, y := Backoff(attempt, a), Backoff(attempt, b)
		if x != y {
			t.Fatalf("attempt %d: %s and %s from the same seed", attempt, x, y)
		}
		if x < 0 || x > ceiling {
			t.Errorf("attempt %d: %s outside [0, %s]", attempt, x, ceiling)
		}
		if attempt > 12 && x < ceiling {
			below++
		}
	}
	if below == 0 {
		t.Error("no capped attempt drew below the cap: the jitter is missing")
	}
}
