package channel

import "time"

// Backoff bounds: the first retry waits up to BackoffBase, each further one
// doubles the ceiling, and no wait exceeds BackoffCap.
const (
	BackoffBase = time.Second
	BackoffCap  = 10 * time.Minute
)

// Rand is the randomness Backoff needs; *math/rand/v2.Rand satisfies it, and
// tests pass a seeded one so that the schedule is reproducible.
type Rand interface {
	Int64N(n int64) int64
}

// Backoff returns how long to wait before attempt number attempt (1 for the
// first retry) using exponential backoff with full jitter: a uniform wait in
// [0, min(cap, base·2^(attempt-1))]. Full jitter spreads the retries of many
// deliveries that failed together (one receiver down, 500 events queued), so
// they do not come back as one storm.
func Backoff(attempt int, rng Rand) time.Duration {
	ceiling := BackoffCap
	if attempt < 1 {
		attempt = 1
	}
	// 2^20 s already exceeds the cap; stop shifting before it can overflow.
	if attempt <= 20 {
		if d := BackoffBase << (attempt - 1); d < ceiling {
			ceiling = d
		}
	}
	return time.Duration(rng.Int64N(int64(ceiling) + 1))
}
