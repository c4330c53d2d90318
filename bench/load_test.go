package bench

import (
	"context"
	"errors"
	"os"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestRunCountsRequestsAndErrors(t *testing.T) {
	var calls atomic.Int64
	res, err := Run(context.Background(), Config{Concurrency: 4, Duration: 200 * time.Millisecond, Warmup: 20 * time.Millisecond},
		func(ctx context.Context, w int, seq uint64) error {
			if w < 0 || w >= 4 {
				t.Errorf("worker %d out of range", w)
			}
			calls.Add(1)
			time.Sleep(100 * time.Microsecond)
			if seq%10 == 9 {
				return errors.New("boom")
			}
			return nil
		})
	if err != nil {
		t.Fatal(err)
	}
	if res.Requests == 0 || res.Errors == 0 {
		t.Fatalf("requests=%d errors=%d", res.Requests, res.Errors)
	}
	if res.Requests+res.Errors > calls.Load() {
		t.Fatalf("counted %d > calls %d", res.Requests+res.Errors, calls.Load())
	}
	if res.P50us < 100 || res.P99us < res.P50us || res.RequestsPerSec <= 0 {
		t.Fatalf("implausible result %+v", res)
	}
	if res.FirstError != "boom" {
		t.Fatalf("first error %q", res.FirstError)
	}
}

func TestRunNoRequests(t *testing.T) {
	_, err := Run(context.Background(), Config{Concurrency: 2, Duration: 50 * time.Millisecond, Warmup: -1},
		func(ctx context.Context, w int, seq uint64) error { return errors.New("always") })
	if !errors.Is(err, ErrNoRequests) {
		t.Fatalf("err = %v", err)
	}
}

// A worker whose calls keep failing pauses between them (doubling up to
// errPauseMax) instead of spinning; the run still ends on time.
func TestRunPausesAfterErrors(t *testing.T) {
	var calls atomic.Int64
	start := time.Now()
	res, err := Run(context.Background(), Config{Concurrency: 2, Duration: 300 * time.Millisecond, Warmup: -1},
		func(ctx context.Context, w int, seq uint64) error {
			calls.Add(1)
			return errors.New("connection lost")
		})
	took := time.Since(start)
	if !errors.Is(err, ErrNoRequests) {
		t.Fatalf("err = %v", err)
	}
	// Per worker: 0.1+0.2+...+25.6 ms is 51 ms in 9 calls, then one per
	// 50 ms: about 14 calls in 300 ms. Without the pause, hundreds of
	// thousands.
	if n := calls.Load(); n > 2*40 {
		t.Fatalf("%d calls in %v: the workers did not pause after failing", n, took)
	}
	if res.Errors == 0 || res.Errors > calls.Load() {
		t.Fatalf("errors = %d of %d calls", res.Errors, calls.Load())
	}
	if took > 300*time.Millisecond+time.Second {
		t.Fatalf("run took %v", took)
	}
}

func TestNextErrPause(t *testing.T) {
	d, prev := time.Duration(0), time.Duration(0)
	for i := 0; i < 20; i++ {
		d = nextErrPause(d)
		if d < errPauseMin || d > errPauseMax || d < prev {
			t.Fatalf("pause %d = %v after %v", i, d, prev)
		}
		prev = d
	}
	if d != errPauseMax {
		t.Fatalf("pause after 20 failures = %v, want %v", d, errPauseMax)
	}
}

func TestRunStopsOnCancel(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, _ = Run(ctx, Config{Concurrency: 2, Duration: time.Hour, Warmup: -1},
		func(ctx context.Context, w int, seq uint64) error { time.Sleep(time.Millisecond); return nil })
	if time.Since(start) > 5*time.Second {
		t.Fatal("run did not stop on ctx cancel")
	}
}

func TestAppendIDUnique(t *testing.T) {
	seen := map[string]bool{}
	var buf []byte
	for w := 0; w < 5; w++ {
		for s := uint64(0); s < 300; s++ {
			buf = AppendID(buf[:0], w, s)
			if seen[string(buf)] {
				t.Fatalf("duplicate id %s", buf)
			}
			seen[string(buf)] = true
		}
	}
	if got := string(AppendID(nil, 1, 255)); got != "00000001-ff" {
		t.Fatalf("got %q", got)
	}
}

func TestProcessCPU(t *testing.T) {
	if _, err := ProcessCPU(1 << 30); err == nil {
		t.Fatal("expected error for missing pid")
	}
}

func TestRunAgentCPU(t *testing.T) {
	// The "agent" is this process: its CPU time over the window is seen.
	res, err := Run(context.Background(), Config{Concurrency: 2, Duration: 300 * time.Millisecond, Warmup: -1, AgentPID: os.Getpid()},
		func(ctx context.Context, w int, seq uint64) error {
			x := 0
			for i := range 20000 {
				x += i * i
			}
			sink.Add(int64(x))
			return nil
		})
	if err != nil {
		t.Fatal(err)
	}
	if res.AgentCPUusPerRequest <= 0 || res.AgentCPUCores <= 0 {
		t.Fatalf("agent CPU not measured: %+v", res)
	}
	if _, err := Run(context.Background(), Config{Concurrency: 1, Duration: time.Millisecond, AgentPID: 1 << 30},
		func(ctx context.Context, w int, seq uint64) error { return nil }); err == nil {
		t.Fatal("missing agent process accepted")
	}
}

var sink atomic.Int64

func TestProcessRSS(t *testing.T) {
	self, err := ProcessRSS(0)
	if err != nil || self <= 0 {
		t.Fatalf("own resident memory %d KiB, err %v", self, err)
	}
	byPID, err := ProcessRSS(os.Getpid())
	if err != nil || byPID <= 0 {
		t.Fatalf("resident memory by pid %d KiB, err %v", byPID, err)
	}
	if _, err := ProcessRSS(1 << 30); err == nil {
		t.Fatal("no error for a missing process")
	}
}
