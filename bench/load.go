package bench

import (
	"context"
	"errors"
	"fmt"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/HdrHistogram/hdrhistogram-go"
)

// RoundTrip performs one unit of load (for example one request-headers
// round trip). worker is the caller's index in [0, Concurrency) and seq
// increases per worker from 0, so worker and seq together make a unique id.
// It must be safe for concurrent use by different workers.
type RoundTrip func(ctx context.Context, worker int, seq uint64) error

// Config describes one closed-loop load run.
type Config struct {
	// Concurrency is the number of callers, each keeping one request in
	// flight. Default 64.
	Concurrency int
	// Duration of the measured window. Default 10s.
	Duration time.Duration
	// Warmup runs before the measured window and is not recorded.
	// Default 500ms.
	Warmup time.Duration
	// Progress, when set, is called about every 100ms of the measured window
	// with the elapsed time and the requests completed so far.
	Progress func(elapsed time.Duration, done int64)
	// Gap, when positive, is a pause of each caller between its round
	// trips (think time): the processes then idle between calls, as an
	// agent does behind an HTTP proxy at low load, instead of being kept
	// busy by back-to-back calls. The pause is not part of the latencies.
	Gap time.Duration
	// AgentPID, when positive, is the pid of an agent running in another
	// process: its CPU time over the measured window is reported too
	// (Result.AgentCPUusPerRequest, read from /proc with 10 ms resolution).
	AgentPID int
	// Window, when positive, splits the measured window into windows of
	// this length and reports each one's requests and latency quantiles
	// (Result.Windows), to show whether the latency stays bounded over a
	// long run. Default 0: no windows.
	Window time.Duration
}

// Result is what one run measured. CPU and allocations are those of the
// calling process over the measured window.
type Result struct {
	Concurrency      int           `json:"concurrency"`
	Duration         time.Duration `json:"-"`
	Requests         int64         `json:"requests"`
	Errors           int64         `json:"errors"`
	RequestsPerSec   float64       `json:"requests_per_sec"`
	P50us            float64       `json:"p50_us"`
	P90us            float64       `json:"p90_us"`
	P99us            float64       `json:"p99_us"`
	P999us           float64       `json:"p999_us"`
	MaxUs            float64       `json:"max_us"`
	AllocsPerRequest float64       `json:"allocs_per_request"`
	BytesPerRequest  float64       `json:"bytes_per_request"`
	CPUusPerRequest  float64       `json:"cpu_us_per_request"`
	CPUCores         float64       `json:"cpu_cores"`
	// AgentCPUusPerRequest and AgentCPUCores are measured only with
	// Config.AgentPID.
	AgentCPUusPerRequest float64 `json:"agent_cpu_us_per_request,omitempty"`
	AgentCPUCores        float64 `json:"agent_cpu_cores,omitempty"`
	FirstError           string  `json:"first_error,omitempty"`
	// Windows are the measured window's consecutive windows of
	// Config.Window, in order (only with Config.Window).
	Windows []Window `json:"windows,omitempty"`
}

// String formats r as one human-readable line.
func (r Result) String() string {
	return fmt.Sprintf("c=%d rps=%.0f p50=%.0fµs p90=%.0fµs p99=%.0fµs p99.9=%.0fµs allocs/req=%.1f B/req=%.0f cpu/req=%.1fµs errors=%d",
		r.Concurrency, r.RequestsPerSec, r.P50us, r.P90us, r.P99us, r.P999us,
		r.AllocsPerRequest, r.BytesPerRequest, r.CPUusPerRequest, r.Errors)
}

// histDigits is the histograms' precision in significant digits: 2 keeps
// every recorded latency within 1% and the per-worker histograms small
// (about 30 KiB each instead of about 200 KiB with 3 digits), so recording
// one round trip stays a cache hit instead of a miss in the load
// generator's own CPU time, which the client CPU per request includes.
const histDigits = 2

// histMaxNs is the longest latency the histograms hold, in nanoseconds.
const histMaxNs = 60_000_000_000

// nsToUs converts a histogram value to microseconds.
func nsToUs(ns int64) float64 { return float64(ns) / 1000 }

// ErrNoRequests is returned when not a single request completed.
var ErrNoRequests = errors.New("agentwire: bench: no request completed")

const (
	phaseWarm int32 = iota
	phaseMeasure
	phaseStop
)

// A worker whose round trip failed pauses before its next one: errPauseMin
// after the first failure in a row, doubling with each further one up to
// errPauseMax. A lost connection fails calls at once; without the pause
// every worker would spin on it, burning the cores the agent needs to
// recover and counting millions of errors that say nothing more than the
// first.
const (
	errPauseMin = 100 * time.Microsecond
	errPauseMax = 50 * time.Millisecond
)

// nextErrPause returns the pause after a failure that follows a pause of d
// (0 after a success).
func nextErrPause(d time.Duration) time.Duration {
	if d < errPauseMin {
		return errPauseMin
	}
	return min(2*d, errPauseMax)
}

// Run drives rt with cfg.Concurrency closed-loop workers and measures the
// window after the warm-up. It returns when every worker has stopped.
// A worker pauses after a failed round trip, from 100 µs after the first
// failure in a row up to 50 ms (doubling), so that a lost connection does
// not turn the workers into busy loops; every failure in the measured
// window is counted.
// Cancelling ctx ends the run early (the result covers the time measured).
func Run(ctx context.Context, cfg Config, rt RoundTrip) (Result, error) {
	if cfg.Concurrency <= 0 {
		cfg.Concurrency = 64
	}
	if cfg.Duration <= 0 {
		cfg.Duration = 10 * time.Second
	}
	var agentCPU func() time.Duration
	if cfg.AgentPID > 0 {
		if _, err := ProcessCPU(cfg.AgentPID); err != nil {
			return Result{Concurrency: cfg.Concurrency}, fmt.Errorf("agentwire: bench: agent process: %w", err)
		}
		agentCPU = func() time.Duration { d, _ := ProcessCPU(cfg.AgentPID); return d }
	}
	if cfg.Warmup < 0 {
		cfg.Warmup = 0
	} else if cfg.Warmup == 0 {
		cfg.Warmup = 500 * time.Millisecond
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()

	// Completed round trips, one counter per worker on a cache line of its
	// own: one shared counter would bounce between the cores on every
	// round trip, and that cost would be booked as the client's.
	counts := make([]workerCount, cfg.Concurrency)
	done := func() int64 {
		var n int64
		for i := range counts {
			n += counts[i].n.Load()
		}
		return n
	}
	stop := make(chan struct{}) // closed with phaseStop: ends error pauses
	var (
		phase    atomic.Int32
		curWin   atomic.Pointer[winHist] // the window being recorded (Config.Window)
		errs     atomic.Int64
		firstErr atomic.Pointer[string]
		wg       sync.WaitGroup
	)
	hists := make([]*hdrhistogram.Histogram, cfg.Concurrency)
	for w := range hists {
		// 1ns .. 60s (in nanoseconds: a whole-µs unit made p50s of 8
		// and 9 µs, the floor's at one in flight, differ by 12%).
		hists[w] = hdrhistogram.New(1, histMaxNs, histDigits)
	}
	for w := 0; w < cfg.Concurrency; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			// A context per worker (cancelled with the run's): a call
			// that waits selects on this worker's own done channel, so
			// the workers do not all contend for the lock of one shared
			// channel (a proxy's requests have contexts of their own too).
			ctx, cancel := context.WithCancel(ctx)
			defer cancel()
			h := hists[w]
			// One monotonic clock read per round trip: the end of one is
			// the start of the next, so a latency also covers the loop's
			// own few instructions (the phase check and the previous
			// histogram record, well under the 1 µs resolution).
			t0 := monoNow()
			var pause time.Duration // after the last failure in a row
			for seq := uint64(0); ; seq++ {
				p := phase.Load()
				if p == phaseStop || ctx.Err() != nil {
					return
				}
				err := rt(ctx, w, seq)
				t1 := monoNow()
				el := t1 - t0
				t0 = t1
				if cfg.Gap > 0 {
					time.Sleep(cfg.Gap)
					t0 = monoNow()
				}
				if err != nil {
					if ctx.Err() != nil {
						return
					}
					if p == phaseMeasure && errs.Add(1) == 1 {
						s := err.Error()
						firstErr.Store(&s)
					}
					pause = nextErrPause(pause)
					t := time.NewTimer(pause)
					select {
					case <-t.C:
					case <-stop:
					case <-ctx.Done():
					}
					t.Stop()
					t0 = monoNow()
					continue
				}
				pause = 0
				if p != phaseMeasure {
					continue
				}
				counts[w].n.Add(1)
				_ = h.RecordValue(int64(el))
				if cfg.Window > 0 {
					if wh := curWin.Load(); wh != nil {
						wh.record(int64(el))
					}
				}
			}
		}(w)
	}

	sleep := func(d time.Duration) {
		t := time.NewTimer(d)
		defer t.Stop()
		select {
		case <-t.C:
		case <-ctx.Done():
		}
	}
	sleep(cfg.Warmup)

	var ms0, ms1 runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&ms0)
	cpu0 := processCPU()
	var agent0 time.Duration
	if agentCPU != nil {
		agent0 = agentCPU()
	}
	var windows []Window
	var winStart time.Duration // of the window being recorded, since start
	if cfg.Window > 0 {
		curWin.Store(new(winHist))
	}
	start := time.Now()
	phase.Store(phaseMeasure)
	if cfg.Progress == nil && cfg.Window <= 0 {
		sleep(cfg.Duration)
	} else {
		deadline := start.Add(cfg.Duration)
		for ctx.Err() == nil {
			left := time.Until(deadline)
			if left <= 0 {
				break
			}
			step := left
			if cfg.Progress != nil {
				step = min(step, 100*time.Millisecond)
			}
			if cfg.Window > 0 {
				step = min(step, max(winStart+cfg.Window-time.Since(start), 0))
			}
			sleep(step)
			now := time.Since(start)
			if cfg.Window > 0 && now >= winStart+cfg.Window && now < cfg.Duration {
				// Round trips that complete while the pointer moves
				// land in the window they completed closest to.
				prev := curWin.Swap(new(winHist))
				windows = append(windows, prev.result(winStart, now-winStart))
				winStart = now
			}
			if cfg.Progress != nil {
				cfg.Progress(now, done())
			}
		}
	}
	n := done()
	nErr := errs.Load()
	phase.Store(phaseStop)
	close(stop)
	elapsed := time.Since(start)
	if cfg.Window > 0 {
		windows = append(windows, curWin.Load().result(winStart, elapsed-winStart))
	}
	runtime.ReadMemStats(&ms1)
	cpu1 := processCPU()
	var agent1 time.Duration
	if agentCPU != nil {
		agent1 = agentCPU()
	}
	wg.Wait()

	total := hdrhistogram.New(1, histMaxNs, histDigits)
	for _, h := range hists {
		total.Merge(h)
	}
	res := Result{
		Concurrency:    cfg.Concurrency,
		Duration:       elapsed,
		Requests:       n,
		Errors:         nErr,
		RequestsPerSec: float64(n) / elapsed.Seconds(),
		P50us:          nsToUs(total.ValueAtQuantile(50)),
		P90us:          nsToUs(total.ValueAtQuantile(90)),
		P99us:          nsToUs(total.ValueAtQuantile(99)),
		P999us:         nsToUs(total.ValueAtQuantile(99.9)),
		MaxUs:          nsToUs(total.Max()),
		CPUCores:       (cpu1 - cpu0).Seconds() / elapsed.Seconds(),
		Windows:        windows,
	}
	if p := firstErr.Load(); p != nil {
		res.FirstError = *p
	}
	if n == 0 {
		return res, ErrNoRequests
	}
	res.AllocsPerRequest = float64(ms1.Mallocs-ms0.Mallocs) / float64(n)
	res.BytesPerRequest = float64(ms1.TotalAlloc-ms0.TotalAlloc) / float64(n)
	res.CPUusPerRequest = float64((cpu1 - cpu0).Microseconds()) / float64(n)
	if agentCPU != nil {
		res.AgentCPUusPerRequest = float64((agent1 - agent0).Microseconds()) / float64(n)
		res.AgentCPUCores = (agent1 - agent0).Seconds() / elapsed.Seconds()
	}
	return res, nil
}

// workerCount is one worker's count of completed round trips, padded to
// two cache lines (the adjacent-line prefetcher pairs lines).
type workerCount struct {
	n atomic.Int64
	_ [120]byte
}

// monoEpoch anchors monoNow.
var monoEpoch = time.Now()

// monoNow reads the monotonic clock only (time.Now reads the wall clock
// too).
func monoNow() time.Duration { return time.Since(monoEpoch) }

// processCPU returns the user+system CPU time consumed by this process.
func processCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// ProcessCPU returns the CPU time (user+system) of process pid, read from
// /proc. It is used to account for an agent running in a child process.
func ProcessCPU(pid int) (time.Duration, error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, err
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 || i+2 > len(s) {
		return 0, fmt.Errorf("agentwire: bench: malformed /proc stat for pid %d", pid)
	}
	f := strings.Fields(s[i+2:])
	if len(f) < 13 {
		return 0, fmt.Errorf("agentwire: bench: short /proc stat for pid %d", pid)
	}
	u, err1 := strconv.ParseInt(f[11], 10, 64)
	st, err2 := strconv.ParseInt(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		return 0, fmt.Errorf("agentwire: bench: unparsable /proc stat for pid %d", pid)
	}
	// Clock ticks are 100 Hz on Linux.
	return time.Duration(u+st) * 10 * time.Millisecond, nil
}
