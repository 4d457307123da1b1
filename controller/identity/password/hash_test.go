package password

import (
	"context"
	"errors"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// Cheap parameters for tests that don't measure cost. They are below
// MinParams, so these hashers are built with newHasher.
var (
	testParams = Params{Memory: 128, Time: 2, Threads: 1, SaltLen: 16, KeyLen: 32}
	oldParams  = Params{Memory: 64, Time: 1, Threads: 1, SaltLen: 16, KeyLen: 32}
	newParams  = Params{Memory: 256, Time: 3, Threads: 2, SaltLen: 16, KeyLen: 32}
)

func testHasher(t testing.TB, p Params, maxConcurrent int) *Hasher {
	t.Helper()
	h, err := newHasher(p, maxConcurrent, idKey)
	if err != nil {
		t.Fatalf("newHasher: %v", err)
	}
	return h
}

func mustHash(t testing.TB, h *Hasher, pw string) string {
	t.Helper()
	enc, err := h.Hash(context.Background(), pw)
	if err != nil {
		t.Fatalf("Hash: %v", err)
	}
	return enc
}

func TestVerify(t *testing.T) {
	h := testHasher(t, testParams, 2)
	const pw = "correct horse battery staple"
	current := mustHash(t, h, pw)
	older := mustHash(t, testHasher(t, oldParams, 1), pw)
	newer := mustHash(t, testHasher(t, newParams, 1), pw)

	tests := []struct {
		name            string
		password        string
		encoded         string
		wantOK          bool
		wantNeedsRehash bool
	}{
		{"the right password verifies and needs no rehash", pw, current, true, false},
		{"a wrong password does not verify", "correct horse battery stapler", current, false, false},
		{"a password differing only in case does not verify", strings.ToUpper(pw), current, false, false},
		{"an empty password does not verify", "", current, false, false},
		{"a hash made with lower parameters verifies and needs a rehash", pw, older, true, true},
		{"a hash made with other parameters verifies and needs a rehash", pw, newer, true, true},
		{"a wrong password against a hash with lower parameters asks for no rehash", "nope", older, false, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ok, rehash, err := h.Verify(context.Background(), tt.password, tt.encoded)
			if err != nil {
				t.Fatalf("Verify: %v", err)
			}
			if ok != tt.wantOK || rehash != tt.wantNeedsRehash {
				t.Errorf("Verify = ok %v, needsRehash %v; want %v, %v", ok, rehash, tt.wantOK, tt.wantNeedsRehash)
			}
		})
	}
}

func TestHashFormat(t *testing.T) {
	h := testHasher(t, testParams, 1)
	a, b := mustHash(t, h, "same password"), mustHash(t, h, "same password")
	re := regexp.MustCompile(`^\$argon2id\$v=19\$m=128,t=2,p=1\$[A-Za-z0-9+/]{22}\$[A-Za-z0-9+/]{43}$`)
	for _, enc := range []string{a, b} {
		if !re.MatchString(enc) {
			t.Errorf("Hash = %q, want a PHC string matching %s", enc, re)
		}
	}
	if a == b {
		t.Error("two hashes of the same password are equal; the salt is not random")
	}
	if strings.Contains(a, "same password") {
		t.Error("the hash contains the password")
	}
}

// TestDefaultParams pins DefaultParams to OWASP's argon2id recommendation and
// checks interoperability both ways with the reference implementation (the
// argon2 command from the PHC repository, Debian package argon2).
func TestDefaultParams(t *testing.T) {
	if want := (Params{Memory: 19456, Time: 2, Threads: 1, SaltLen: 16, KeyLen: 32}); DefaultParams != want {
		t.Fatalf("DefaultParams = %+v, want OWASP's %+v", DefaultParams, want)
	}
	h, err := NewHasher(DefaultParams, 1)
	if err != nil {
		t.Fatalf("NewHasher(DefaultParams): %v", err)
	}

	t.Run("a hash from the reference implementation verifies", func(t *testing.T) {
		// echo -n "correct horse battery staple" | argon2 opsconductor-salt -id -t 2 -k 19456 -p 1 -l 32 -e
		// (the salt is 17 bytes; the reference accepts any length >= 8)
		const ref = "$argon2id$v=19$m=19456,t=2,p=1$b3BzY29uZHVjdG9yLXNhbHQ$QcxcozRJ1oKpci8mmk9YmlSDjqr60HO6/u1L+p3XNOw"
		ok, rehash, err := h.Verify(context.Background(), "correct horse battery staple", ref)
		if err != nil || !ok {
			t.Fatalf("Verify(reference hash) = %v, %v; want true", ok, err)
		}
		if !rehash {
			t.Error("a 17-byte salt differs from SaltLen 16, want needsRehash")
		}
	})
	t.Run("a hash made with DefaultParams has the reference format and verifies", func(t *testing.T) {
		enc := mustHash(t, h, "correct horse battery staple")
		if !strings.HasPrefix(enc, "$argon2id$v=19$m=19456,t=2,p=1$") {
			t.Errorf("Hash = %q, want the prefix $argon2id$v=19$m=19456,t=2,p=1$", enc)
		}
		ok, rehash, err := h.Verify(context.Background(), "correct horse battery staple", enc)
		if err != nil || !ok || rehash {
			t.Errorf("Verify = %v, %v, %v; want true, false, nil", ok, rehash, err)
		}
	})
}

func TestNewHasher(t *testing.T) {
	weaker := func(f func(*Params)) Params { p := DefaultParams; f(&p); return p }
	tests := []struct {
		name          string
		params        Params
		maxConcurrent int
		wantWeak      bool
	}{
		{"less memory than MinParams is refused as weak", weaker(func(p *Params) { p.Memory = 19455 }), 1, true},
		{"fewer passes than MinParams is refused as weak", weaker(func(p *Params) { p.Time = 1 }), 1, true},
		{"zero threads is refused as weak", weaker(func(p *Params) { p.Threads = 0 }), 1, true},
		{"a shorter salt than MinParams is refused as weak", weaker(func(p *Params) { p.SaltLen = 8 }), 1, true},
		{"a shorter key than MinParams is refused as weak", weaker(func(p *Params) { p.KeyLen = 16 }), 1, true},
		{"memory above 4 GiB is refused", weaker(func(p *Params) { p.Memory = maxMemory + 1 }), 1, false},
		{"more than 100 passes is refused", weaker(func(p *Params) { p.Time = 101 }), 1, false},
		{"zero concurrency is refused", DefaultParams, 0, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h, err := NewHasher(tt.params, tt.maxConcurrent)
			if err == nil {
				t.Fatalf("NewHasher = %v, want an error", h)
			}
			if errors.Is(err, ErrWeakParams) != tt.wantWeak {
				t.Errorf("NewHasher error %q: errors.Is(ErrWeakParams) = %v, want %v", err, !tt.wantWeak, tt.wantWeak)
			}
		})
	}
}

// recorder replaces a Hasher's key function to see what each call derives.
type recorder struct {
	mu    sync.Mutex
	calls []Params
}

func (r *recorder) key(pw, salt []byte, p Params) []byte {
	r.mu.Lock()
	r.calls = append(r.calls, p)
	r.mu.Unlock()
	return idKey(pw, salt, p)
}

func TestVerifyDummy(t *testing.T) {
	h := testHasher(t, testParams, 1)
	enc := mustHash(t, h, "the real password")
	var rec recorder
	h.key = rec.key

	t.Run("it returns false and no error", func(t *testing.T) {
		for _, pw := range []string{"", "the real password", "anything else"} {
			ok, err := h.VerifyDummy(context.Background(), pw)
			if ok || err != nil {
				t.Errorf("VerifyDummy(%q) = %v, %v; want false, nil", pw, ok, err)
			}
		}
	})
	t.Run("it derives one key with the hasher's parameters, as Verify of a wrong password does", func(t *testing.T) {
		rec.calls = nil
		if _, err := h.VerifyDummy(context.Background(), "unknown user's guess"); err != nil {
			t.Fatal(err)
		}
		if _, _, err := h.Verify(context.Background(), "known user's wrong guess", enc); err != nil {
			t.Fatal(err)
		}
		if len(rec.calls) != 2 || rec.calls[0] != testParams || rec.calls[1] != testParams {
			t.Errorf("key derivations = %+v, want one each, both with %+v", rec.calls, testParams)
		}
	})
	t.Run("its hash is a real one made with the hasher's parameters", func(t *testing.T) {
		p, _, _, err := Decode(h.dummy)
		if err != nil || p != testParams {
			t.Errorf("Decode(dummy) = %+v, %v; want %+v", p, err, testParams)
		}
	})
}

// blocker is a key function that holds its semaphore slot until released.
type blocker struct {
	entered chan struct{}
	release chan struct{}
}

func newBlocker() *blocker {
	return &blocker{entered: make(chan struct{}, 16), release: make(chan struct{})}
}

func (b *blocker) key(pw, salt []byte, p Params) []byte {
	b.entered <- struct{}{}
	<-b.release
	return idKey(pw, salt, p)
}

func TestWaitingCallerGivesUp(t *testing.T) {
	calls := []struct {
		name string
		call func(ctx context.Context, h *Hasher, enc string) error
	}{
		{"Hash returns the context's error when it is cancelled while waiting", func(ctx context.Context, h *Hasher, _ string) error {
			_, err := h.Hash(ctx, "pw")
			return err
		}},
		{"Verify returns the context's error when it is cancelled while waiting", func(ctx context.Context, h *Hasher, enc string) error {
			_, _, err := h.Verify(ctx, "pw", enc)
			return err
		}},
		{"VerifyDummy returns the context's error when it is cancelled while waiting", func(ctx context.Context, h *Hasher, _ string) error {
			_, err := h.VerifyDummy(ctx, "pw")
			return err
		}},
	}
	for _, c := range calls {
		t.Run(c.name, func(t *testing.T) {
			// synctest.Wait returns once every goroutine of the bubble is
			// blocked, so the waiter is known to be parked on the semaphore
			// when its context is cancelled, without sleeping.
			synctest.Test(t, func(t *testing.T) {
				h := testHasher(t, testParams, 1)
				enc := mustHash(t, h, "pw")
				b := newBlocker()
				h.key = b.key

				holder := make(chan error, 1)
				go func() {
					_, err := h.Hash(context.Background(), "holder")
					holder <- err
				}()
				<-b.entered // the holder has the only slot

				ctx, cancel := context.WithCancel(context.Background())
				done := make(chan error, 1)
				go func() { done <- c.call(ctx, h, enc) }()
				synctest.Wait()
				select {
				case err := <-done:
					t.Fatalf("returned %v while the only slot was taken, want it to wait", err)
				default:
				}
				cancel()
				if err := <-done; !errors.Is(err, context.Canceled) {
					t.Errorf("err = %v, want context.Canceled", err)
				}
				if len(b.entered) != 0 {
					t.Error("the key was derived for the caller that gave up")
				}

				close(b.release)
				if err := <-holder; err != nil {
					t.Errorf("the caller holding the slot: %v", err)
				}
			})
		})
	}

	t.Run("a caller whose context has ended gets no free slot", func(t *testing.T) {
		h := testHasher(t, testParams, 1)
		var rec recorder
		h.key = rec.key
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		if _, err := h.Hash(ctx, "pw"); !errors.Is(err, context.Canceled) {
			t.Errorf("Hash with an ended context: err = %v, want context.Canceled", err)
		}
		if len(rec.calls) != 0 {
			t.Error("the key was derived for a caller whose context had ended")
		}
	})
}

func TestConcurrencyIsBounded(t *testing.T) {
	const limit, callers = 2, 8
	h := testHasher(t, testParams, limit)
	var inFlight, peak atomic.Int32
	h.key = func(pw, salt []byte, p Params) []byte {
		n := inFlight.Add(1)
		for {
			old := peak.Load()
			if n <= old || peak.CompareAndSwap(old, n) {
				break
			}
		}
		defer inFlight.Add(-1)
		return idKey(pw, salt, p)
	}
	var wg sync.WaitGroup
	for range callers {
		wg.Go(func() {
			if _, err := h.Hash(context.Background(), "pw"); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	if got := peak.Load(); got > limit {
		t.Errorf("%d hashes ran at once, want at most %d", got, limit)
	}
}

func BenchmarkHash(b *testing.B) {
	h, err := NewHasher(DefaultParams, 1)
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	for b.Loop() {
		if _, err := h.Hash(ctx, "correct horse battery staple"); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "hashes/s")
}

// BenchmarkHashParallel is the login throughput of one controller with one
// hash per core, at one DefaultParams.Memory each.
func BenchmarkHashParallel(b *testing.B) {
	h, err := NewHasher(DefaultParams, 2)
	if err != nil {
		b.Fatal(err)
	}
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := h.Hash(context.Background(), "correct horse battery staple"); err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "hashes/s")
}

// BenchmarkVerify and BenchmarkVerifyDummy should report the same figures:
// a login for an unknown user costs what a wrong password for a known one does.
func BenchmarkVerify(b *testing.B) {
	h, err := NewHasher(DefaultParams, 1)
	if err != nil {
		b.Fatal(err)
	}
	enc := mustHash(b, h, "correct horse battery staple")
	for b.Loop() {
		if _, _, err := h.Verify(context.Background(), "wrong guess", enc); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "verifies/s")
}

func BenchmarkVerifyDummy(b *testing.B) {
	h, err := NewHasher(DefaultParams, 1)
	if err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		if _, err := h.VerifyDummy(context.Background(), "wrong guess"); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "verifies/s")
}
