package pool

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/agentwire/agentwire"
	"github.com/agentwire/agentwire/agent"
	"github.com/agentwire/agentwire/engine"
)

// The timeline of a parallel fan-out: where the time of one fan-out to 3
// agents at 1 in flight goes. The child agents note the wall-clock time at
// which each handler starts (timelineEnv names the file they write at
// exit); the proxy notes when its three events are written and when the
// three replies are in. Wall-clock times compare across the two processes.

const (
	timelineEnv = "POOL_TEST_TIMELINE"
	noSpinEnv   = "POOL_TEST_NO_SPIN" // the child agents do not spin (agent.WithReadSpin(0))
)

// timelineFile is where a child agent process writes its handler start
// times ("" when not asked to).
var timelineFile = os.Getenv(timelineEnv)

type timelineMark struct {
	cid string
	at  int64 // wall clock, ns
}

var (
	timelineMu    sync.Mutex
	timelineMarks []timelineMark
)

// timelineHandler allows everything, as agent.BaseHandler, noting when
// each request-headers handler starts.
type timelineHandler struct{ agent.BaseHandler }

func (timelineHandler) OnRequestHeaders(_ context.Context, ev *agentwire.RequestHeadersEvent, _ *agentwire.AgentResponse) error {
	at := time.Now().UnixNano()
	timelineMu.Lock()
	timelineMarks = append(timelineMarks, timelineMark{ev.Metadata.CorrelationID, at})
	timelineMu.Unlock()
	return nil
}

// childHandler is the child agents' handler.
func childHandler() agent.Handler {
	if timelineFile != "" {
		timelineMarks = make([]timelineMark, 0, 1<<20)
		return timelineHandler{}
	}
	return agent.BaseHandler{}
}

// writeTimeline writes the child's marks, one "cid ns" line each.
func writeTimeline() {
	if timelineFile == "" {
		return
	}
	f, err := os.Create(timelineFile)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return
	}
	w := bufio.NewWriter(f)
	timelineMu.Lock()
	for _, m := range timelineMarks {
		fmt.Fprintln(w, m.cid, m.at)
	}
	timelineMu.Unlock()
	_ = w.Flush()
	_ = f.Close()
}

// BenchmarkFanOutTimeline runs BenchmarkFanOutBare's fan-out (three bare
// Conns to three agents in one child process, 1 in flight) with the read
// spin on (the default) and off on both sides, and reports the p50, from
// the start of each fan-out, of: sent-µs, all three events written
// (StartRequestHeaders returned); agent1/2/3-µs, the first, second and
// third handler starting in the agent process; done-µs, all three replies
// in; and one-µs, the p50 of b.N single calls on one of the Conns, made
// first in the same run.
func BenchmarkFanOutTimeline(b *testing.B) {
	for _, spin := range []bool{true, false} {
		b.Run(fmt.Sprintf("spin=%v", spin), func(b *testing.B) { fanOutTimeline(b, spin) })
	}
}

func fanOutTimeline(b *testing.B, spin bool) {
	file := b.TempDir() + "/timeline"
	env := []string{timelineEnv + "=" + file}
	var opts []engine.Option
	if !spin {
		env = append(env, noSpinEnv+"=1")
		opts = append(opts, engine.WithReadSpin(0))
	}
	paths, stop := startChildAgentsEnv(b, 3, env...)
	ctx := context.Background()
	conns := dialConns(b, paths, opts...)
	type fanOut struct{ start, sent, done int64 }
	var (
		dsts  [3]agentwire.AgentResponse
		calls [3]engine.Call
		runs  = make([]fanOut, 0, b.N)
		one   = make([]float64, 0, b.N)
	)
	ev := benchEvent()
	prefix := fmt.Sprintf("tl%d-", b.N)
	b.ResetTimer()
	for i := range b.N {
		ev.Metadata.CorrelationID = "one-" + strconv.Itoa(i)
		start := time.Now()
		if err := conns[0].RequestHeadersInto(ctx, &ev, &dsts[0]); err != nil {
			b.Fatal(err)
		}
		one = append(one, float64(time.Since(start).Nanoseconds())/1e3)
	}
	for i := range b.N {
		ev.Metadata.CorrelationID = prefix + strconv.Itoa(i)
		start := time.Now()
		for j := range conns {
			if ok, err := conns[j].StartRequestHeaders(ctx, &ev, &dsts[j], &calls[j]); !ok {
				b.Fatalf("not started: %v", err)
			}
		}
		sent := time.Now()
		for j := range calls {
			if err := calls[j].Wait(); err != nil {
				b.Fatal(err)
			}
		}
		runs = append(runs, fanOut{start.UnixNano(), sent.UnixNano(), time.Now().UnixNano()})
	}
	b.StopTimer()
	for _, c := range conns {
		c.Close()
	}
	stop()
	marks := map[string][]int64{}
	f, err := os.Open(file)
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		cid, at, _ := strings.Cut(sc.Text(), " ")
		if strings.HasPrefix(cid, prefix) {
			ns, _ := strconv.ParseInt(at, 10, 64)
			marks[cid] = append(marks[cid], ns)
		}
	}
	var sent, a1, a2, a3, done []float64
	for i, r := range runs {
		m := marks[prefix+strconv.Itoa(i)]
		if len(m) != 3 {
			b.Fatalf("fan-out %d: %d handler marks, want 3", i, len(m))
		}
		slices.Sort(m)
		us := func(t int64) float64 { return float64(t-r.start) / 1e3 }
		sent, a1, a2, a3, done = append(sent, us(r.sent)), append(a1, us(m[0])), append(a2, us(m[1])), append(a3, us(m[2])), append(done, us(r.done))
	}
	for _, s := range []struct {
		unit string
		v    []float64
	}{{"one-µs", one}, {"sent-µs", sent}, {"agent1-µs", a1}, {"agent2-µs", a2}, {"agent3-µs", a3}, {"done-µs", done}} {
		slices.Sort(s.v)
		b.ReportMetric(s.v[len(s.v)/2], s.unit)
	}
}
