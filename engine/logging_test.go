package engine

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/agentwire/agentwire"
	"github.com/agentwire/agentwire/agent"
)

// logCapture is a slog.Handler recording every record at Debug and above.
type logCapture struct {
	mu      *sync.Mutex
	records *[]logRecord
	attrs   []slog.Attr
	added   chan struct{} // signalled after each record
}

type logRecord struct {
	level slog.Level
	msg   string
	attrs map[string]string
}

func newLogCapture() logCapture {
	return logCapture{mu: new(sync.Mutex), records: new([]logRecord), added: make(chan struct{}, 1)}
}

func (h logCapture) Enabled(context.Context, slog.Level) bool { return true }

func (h logCapture) Handle(_ context.Context, r slog.Record) error {
	rec := logRecord{level: r.Level, msg: r.Message, attrs: map[string]string{}}
	for _, a := range h.attrs {
		rec.attrs[a.Key] = a.Value.String()
	}
	r.Attrs(func(a slog.Attr) bool {
		rec.attrs[a.Key] = a.Value.String()
		return true
	})
	h.mu.Lock()
	*h.records = append(*h.records, rec)
	h.mu.Unlock()
	select {
	case h.added <- struct{}{}:
	default:
	}
	return nil
}

// wait waits until a record from index from on contains msg, and returns
// the records then.
func (h logCapture) wait(t *testing.T, from int, msg string) []logRecord {
	t.Helper()
	timeout := time.After(testTimeout)
	for {
		recs := h.snapshot()
		if _, i := find(recs, from, msg); i >= 0 {
			return recs
		}
		select {
		case <-h.added:
		case <-timeout:
			t.Fatalf("no %q line:\n%s", msg, dumpLogs(recs[min(from, len(recs)):]))
		}
	}
}

func (h logCapture) WithAttrs(as []slog.Attr) slog.Handler {
	h.attrs = append(append([]slog.Attr(nil), h.attrs...), as...)
	return h
}

func (h logCapture) WithGroup(string) slog.Handler { return h }

// snapshot returns the records so far.
func (h logCapture) snapshot() []logRecord {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]logRecord(nil), *h.records...)
}

// find returns the first record from index from on whose message contains
// msg, and its index; -1 when there is none.
func find(recs []logRecord, from int, msg string) (logRecord, int) {
	for i := from; i < len(recs); i++ {
		if strings.Contains(recs[i].msg, msg) {
			return recs[i], i
		}
	}
	return logRecord{}, -1
}

func dumpLogs(recs []logRecord) string {
	var b strings.Builder
	for _, r := range recs {
		fmt.Fprintf(&b, "  %v %s %v\n", r.level, r.msg, r.attrs)
	}
	return b.String()
}

// TestDefaultLoggerDiscards: without WithLogger, the Conn's logger is
// enabled at no level (nothing is even formatted).
func TestDefaultLoggerDiscards(t *testing.T) {
	l := defaultOptions().logger
	for _, lv := range []slog.Level{slog.LevelDebug, slog.LevelInfo, slog.LevelWarn, slog.LevelError} {
		if l.Enabled(context.Background(), lv) {
			t.Errorf("default logger enabled at %v", lv)
		}
	}
}

// TestLifecycleLogs: at Debug, a Conn logs its connection's life cycle —
// dial and handshake, the loss with its cause, every reconnect attempt
// with its reason and backoff, the new handshake, the drain and the close —
// and nothing per request: a load of successful requests adds no line, on
// the engine's logger or the agent's.
func TestLifecycleLogs(t *testing.T) {
	path := sockPath(t)
	alog := newLogCapture()
	ag := startUDSAgentAt(t, path, agent.BaseHandler{}, agent.WithLogger(slog.New(alog)))
	elog := newLogCapture()
	states := make(chan ConnState, 16)
	c := dialUDS(t, path, WithLogger(slog.New(elog)), WithReconnectBackoff(time.Millisecond, 20*time.Millisecond),
		WithOnStateChange(func(_, to ConnState) { states <- to }))

	recs := elog.snapshot()
	_, i := find(recs, 0, "dialing agent")
	hs, j := find(recs, max(i, 0), "handshake accepted")
	if i < 0 || j < 0 || hs.level != slog.LevelDebug || hs.attrs["encoding"] != "json" || hs.attrs["agent"] != "unix://"+path {
		t.Fatalf("connect: no dial then handshake line:\n%s", dumpLogs(recs))
	}
	// The agent logs it after sending its handshake answer.
	alog.wait(t, 0, "connection established")

	// Under load, at Debug: no line per request, on either side.
	nEngine, nAgent := len(elog.snapshot()), len(alog.snapshot())
	var wg sync.WaitGroup
	for w := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			dst := new(agentwire.AgentResponse)
			for i := range 200 {
				if err := c.RequestHeadersInto(testCtx(t), headersEvent(fmt.Sprintf("load-%d-%d", w, i)), dst); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	if recs := elog.snapshot(); len(recs) != nEngine {
		t.Fatalf("engine logged under load:\n%s", dumpLogs(recs[nEngine:]))
	}
	if recs := alog.snapshot(); len(recs) != nAgent {
		t.Fatalf("agent logged under load:\n%s", dumpLogs(recs[nAgent:]))
	}

	// The agent is killed and restarted: loss, reconnect attempts with
	// reason and backoff, a new handshake.
	mark := len(elog.snapshot())
	ag.stop()
	waitState(t, states, StateReconnecting)
	startUDSAgentAt(t, path, agent.BaseHandler{})
	waitState(t, states, StateConnected)
	// The Info line follows the state change.
	recs = elog.wait(t, mark, "reconnected to agent")
	lost, i := find(recs, mark, "connection to agent lost")
	if i < 0 || lost.level != slog.LevelWarn || lost.attrs["err"] == "" {
		t.Fatalf("reconnect: no loss line with its cause:\n%s", dumpLogs(recs[mark:]))
	}
	rc, j := find(recs, i, "reconnecting")
	if j < 0 || rc.level != slog.LevelDebug || rc.attrs["reason"] == "" || rc.attrs["backoff"] == "" || rc.attrs["attempt"] != "1" {
		t.Fatalf("reconnect: no reconnect line with reason and backoff:\n%s", dumpLogs(recs[mark:]))
	}
	if _, k := find(recs, j, "handshake accepted"); k < 0 {
		t.Fatalf("reconnect: no new handshake line:\n%s", dumpLogs(recs[mark:]))
	}
	if _, k := find(recs, j, "reconnected to agent"); k < 0 {
		t.Fatalf("reconnect: no reconnected line:\n%s", dumpLogs(recs[mark:]))
	}

	// Drain.
	mark = len(recs)
	if err := c.Drain(testCtx(t)); err != nil {
		t.Fatal(err)
	}
	recs = elog.snapshot()
	_, i = find(recs, mark, "draining connection")
	_, j = find(recs, max(i, 0), "drained; closing connection")
	_, k := find(recs, max(j, 0), "closing connection")
	if i < 0 || j < 0 || k < 0 {
		t.Fatalf("drain: lines missing:\n%s", dumpLogs(recs[mark:]))
	}
}

// waitState waits for the Conn's state callback to report want.
func waitState(t *testing.T, states <-chan ConnState, want ConnState) {
	t.Helper()
	timeout := time.After(testTimeout)
	for {
		select {
		case s := <-states:
			if s == want {
				return
			}
		case <-timeout:
			t.Fatalf("state %v not reached", want)
		}
	}
}
