package engine

import (
	"context"
	"errors"
	"math"
	"sync"
	"testing"
	"time"

	"github.com/agentwire/agentwire"
	"github.com/agentwire/agentwire/agent"
	"github.com/agentwire/agentwire/codec/frame"
)

func TestHealthReportsGateRequests(t *testing.T) {
	srv := startAgent(t, newTestAgent())
	var mu sync.Mutex
	var seen []agentwire.HealthState
	c := dial(t, srv.addr, WithOnHealth(func(h agentwire.HealthStatus) {
		mu.Lock()
		seen = append(seen, h.State)
		mu.Unlock()
	}))
	ctx := testCtx(t)
	if h := c.Health(); !h.Connected || !h.AcceptsRequests {
		t.Fatalf("initial health: %+v", h)
	}
	report := func(h agentwire.HealthStatus) {
		t.Helper()
		n := c.Stats().HealthReports
		srv.srv.ReportHealth(h)
		waitUntil(t, "health report", nil, func() bool { return c.Stats().HealthReports > n })
	}

	report(agentwire.HealthStatus{State: agentwire.HealthUnhealthy, UnhealthyReason: agentwire.Some("disk"), Recoverable: true})
	_, err := c.RequestHeaders(ctx, headersEvent("u"))
	mustKind(t, err, ErrAgentUnhealthy)
	if h := c.Health(); h.State != agentwire.HealthUnhealthy || h.AcceptsRequests || h.Report.UnhealthyReason.Value != "disk" {
		t.Fatalf("unhealthy snapshot: %+v", h)
	}

	report(agentwire.HealthStatus{State: agentwire.HealthDraining, DrainETAMS: agentwire.Some[uint64](100)})
	_, err = c.RequestHeaders(ctx, headersEvent("d"))
	mustKind(t, err, ErrDraining)

	report(agentwire.HealthStatus{State: agentwire.HealthHealthy})
	if _, err := c.RequestHeaders(ctx, headersEvent("h")); err != nil {
		t.Fatal(err)
	}

	// A report whose valid_until has passed no longer applies.
	past := uint64(time.Now().Add(-time.Second).UnixMilli())
	report(agentwire.HealthStatus{State: agentwire.HealthUnhealthy, ValidUntilMS: agentwire.Some(past)})
	if _, err := c.RequestHeaders(ctx, headersEvent("expired")); err != nil {
		t.Fatalf("expired report still applied: %v", err)
	}
	if h := c.Health(); !h.Expired || h.State != agentwire.HealthUnspecified || !h.AcceptsRequests {
		t.Fatalf("expired snapshot: %+v", h)
	}
	// And one that expires soon stops applying by itself.
	soon := uint64(time.Now().Add(150 * time.Millisecond).UnixMilli())
	report(agentwire.HealthStatus{State: agentwire.HealthUnhealthy, ValidUntilMS: agentwire.Some(soon)})
	_, err = c.RequestHeaders(ctx, headersEvent("soon"))
	mustKind(t, err, ErrAgentUnhealthy)
	waitUntil(t, "report expiry", nil, func() bool { return c.Health().AcceptsRequests })
	if _, err := c.RequestHeaders(ctx, headersEvent("after-expiry")); err != nil {
		t.Fatal(err)
	}

	waitUntil(t, "health callbacks", nil, func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(seen) == 5
	})
	if st := c.Stats(); st.HealthReports != 5 {
		t.Fatalf("stats: %+v", st)
	}
}

func TestDegradedStretchesDefaultTimeout(t *testing.T) {
	a := newTestAgent()
	a.reqHeaders = func(ctx context.Context, _ *agentwire.RequestHeadersEvent, _ *agentwire.AgentResponse) error {
		select {
		case <-time.After(150 * time.Millisecond):
		case <-ctx.Done():
		}
		return nil
	}
	srv := startAgent(t, a)
	c := dial(t, srv.addr, WithRequestTimeout(60*time.Millisecond))
	_, err := c.RequestHeaders(context.Background(), headersEvent("plain"))
	mustKind(t, err, ErrTimeout)
	srv.srv.ReportHealth(agentwire.HealthStatus{State: agentwire.HealthDegraded, TimeoutMultiplier: 10})
	waitUntil(t, "degraded report", nil, func() bool { return c.Health().State == agentwire.HealthDegraded })
	if _, err := c.RequestHeaders(context.Background(), headersEvent("stretched")); err != nil {
		t.Fatalf("DEGRADED multiplier not applied: %v", err)
	}
	// A context deadline is never extended.
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Millisecond)
	defer cancel()
	_, err = c.RequestHeaders(ctx, headersEvent("ctx"))
	mustKind(t, err, ErrTimeout)
}

// TestDegradedHugeMultiplierStretches: a DEGRADED report whose
// timeout_multiplier overflows the request timeout (1e39 in JSON reads as
// +Inf in the f32) stretches it as far as it goes. It used to wrap the
// product into a negative duration, so every request without a context
// deadline timed out at once.
func TestDegradedHugeMultiplierStretches(t *testing.T) {
	fa := startRawAgent(t, func(rc *rawConn) {
		if rc.handshake("") != nil {
			return
		}
		if rc.writeFrame(frame.TypeHealthStatus, []byte(`{"state":2,"timeout_multiplier":1e39}`)) != nil {
			return
		}
		for {
			typ, p, err := rc.rd.ReadFrame()
			if err != nil {
				return
			}
			if typ == frame.TypeRequestHeaders {
				time.Sleep(100 * time.Millisecond) // past the plain request timeout
				if rc.reply(eventID(p)) != nil {
					return
				}
			}
		}
	})
	c := dialUDS(t, fa.path, WithRequestTimeout(50*time.Millisecond))
	waitUntil(t, "degraded report", nil, func() bool { return c.Health().Report.State == agentwire.HealthDegraded })
	if _, err := c.RequestHeaders(context.Background(), headersEvent("stretched")); err != nil {
		t.Fatalf("DEGRADED with a huge multiplier: %v", err)
	}
}

// TestDegradedMultiplierNeverShortens: whatever float32 an agent reports as
// its DEGRADED timeout_multiplier (NaN and infinities arrive through
// MessagePack and protobuf), the default request timeout is never made
// shorter, on either path that applies it (the expirer's deadline and
// ensureDeadline's context).
func TestDegradedMultiplierNeverShortens(t *testing.T) {
	c := memConn(t)
	s := c.sess.Load()
	for _, m := range []float32{float32(math.NaN()), float32(math.Inf(1)), float32(math.Inf(-1)), math.MaxFloat32, 1e12, 0.5, 2} {
		s.onHealth(agentwire.HealthStatus{State: agentwire.HealthDegraded, TimeoutMultiplier: m})
		if d := s.stretch(DefaultRequestTimeout); d < DefaultRequestTimeout {
			t.Errorf("multiplier %v: request timeout %v", m, d)
		}
		ctx, cancel := c.ensureDeadline(context.Background(), s)
		dl, _ := ctx.Deadline()
		cancel()
		if left := time.Until(dl); left < DefaultRequestTimeout-time.Second {
			t.Errorf("multiplier %v: context deadline %v away", m, left)
		}
	}
	s.health.Store(nil)
}

func flowSignal(t *testing.T, srv *agentServer, c *Conn, f agentwire.FlowControlSignal) {
	t.Helper()
	n := c.Stats().FlowSignals
	srv.srv.SendFlowControl(f)
	waitUntil(t, "flow signal", nil, func() bool { return c.Stats().FlowSignals > n })
}

func TestFlowControlFailFast(t *testing.T) {
	srv := startAgent(t, newTestAgent())
	c := dial(t, srv.addr)
	ctx := testCtx(t)

	flowSignal(t, srv, c, agentwire.FlowControlSignal{Action: agentwire.FlowPause})
	_, err := c.RequestHeaders(ctx, headersEvent("p"))
	mustKind(t, err, ErrFlowPaused)
	if h := c.Health(); !h.Paused || h.AcceptsRequests {
		t.Fatalf("paused snapshot: %+v", h)
	}
	flowSignal(t, srv, c, agentwire.FlowControlSignal{Action: agentwire.FlowResume})
	if _, err := c.RequestHeaders(ctx, headersEvent("p")); err != nil {
		t.Fatal(err)
	}

	// Per correlation id.
	flowSignal(t, srv, c, agentwire.FlowControlSignal{Action: agentwire.FlowPause, CorrelationID: agentwire.Some("only-me")})
	_, err = c.RequestBodyChunk(ctx, &agentwire.BodyChunk{CorrelationID: "only-me"})
	mustKind(t, err, ErrFlowPaused)
	if _, err := c.RequestBodyChunk(ctx, &agentwire.BodyChunk{CorrelationID: "someone-else"}); err != nil {
		t.Fatal(err)
	}
	flowSignal(t, srv, c, agentwire.FlowControlSignal{Action: agentwire.FlowResume, CorrelationID: agentwire.Some("only-me")})
	if _, err := c.RequestBodyChunk(ctx, &agentwire.BodyChunk{CorrelationID: "only-me"}); err != nil {
		t.Fatal(err)
	}

	// UPDATE_CAPACITY caps the requests in flight.
	flowSignal(t, srv, c, agentwire.FlowControlSignal{Action: agentwire.FlowUpdateCapacity, BufferAvailable: agentwire.Some[uint64](0)})
	_, err = c.RequestHeaders(ctx, headersEvent("cap"))
	mustKind(t, err, ErrFlowPaused)
	flowSignal(t, srv, c, agentwire.FlowControlSignal{Action: agentwire.FlowUpdateCapacity, BufferAvailable: agentwire.Some[uint64](5)})
	if _, err := c.RequestHeaders(ctx, headersEvent("cap")); err != nil {
		t.Fatal(err)
	}
	if h := c.Health(); h.Capacity != 5 {
		t.Fatalf("capacity %d", h.Capacity)
	}
	flowSignal(t, srv, c, agentwire.FlowControlSignal{Action: agentwire.FlowUpdateCapacity})
	if h := c.Health(); h.Capacity != -1 {
		t.Fatalf("capacity not lifted: %d", h.Capacity)
	}
	if st := c.Stats(); st.FlowRejected != 3 {
		t.Fatalf("stats: %+v", st)
	}
}

func TestFlowControlWait(t *testing.T) {
	a := newTestAgent()
	release := make(chan struct{})
	a.reqHeaders = func(ctx context.Context, ev *agentwire.RequestHeadersEvent, _ *agentwire.AgentResponse) error {
		if ev.URI == "/hold" {
			select {
			case <-release:
			case <-ctx.Done():
			}
		}
		return nil
	}
	srv := startAgent(t, a)
	c := dial(t, srv.addr, WithFlowControl(FlowWait))
	ctx := testCtx(t)

	flowSignal(t, srv, c, agentwire.FlowControlSignal{Action: agentwire.FlowPause})
	done := make(chan error, 1)
	go func() {
		_, err := c.RequestHeaders(ctx, headersEvent("waiter"))
		done <- err
	}()
	select {
	case err := <-done:
		t.Fatalf("request went through while paused: %v", err)
	case <-time.After(50 * time.Millisecond):
	}
	flowSignal(t, srv, c, agentwire.FlowControlSignal{Action: agentwire.FlowResume})
	if err := <-done; err != nil {
		t.Fatal(err)
	}

	// A paused wait ends with the call's deadline.
	flowSignal(t, srv, c, agentwire.FlowControlSignal{Action: agentwire.FlowPause})
	short, cancel := context.WithTimeout(ctx, 40*time.Millisecond)
	defer cancel()
	_, err := c.RequestHeaders(short, headersEvent("gives-up"))
	mustKind(t, err, ErrFlowPaused)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("flow wait error should carry the deadline: %v", err)
	}
	flowSignal(t, srv, c, agentwire.FlowControlSignal{Action: agentwire.FlowResume})

	// Capacity 1: the second caller waits for the first to finish.
	flowSignal(t, srv, c, agentwire.FlowControlSignal{Action: agentwire.FlowUpdateCapacity, BufferAvailable: agentwire.Some[uint64](1)})
	first := make(chan error, 1)
	go func() {
		ev := headersEvent("first")
		ev.URI = "/hold"
		_, err := c.RequestHeaders(ctx, ev)
		first <- err
	}()
	waitUntil(t, "first in flight", nil, func() bool { return c.Stats().InFlight == 1 })
	second := make(chan error, 1)
	go func() {
		_, err := c.RequestHeaders(ctx, headersEvent("second"))
		second <- err
	}()
	select {
	case err := <-second:
		t.Fatalf("second request passed the capacity of 1: %v", err)
	case <-time.After(50 * time.Millisecond):
	}
	close(release)
	if err := <-first; err != nil {
		t.Fatal(err)
	}
	if err := <-second; err != nil {
		t.Fatal(err)
	}
}

func TestMetricsAndLogCallbacks(t *testing.T) {
	srv := startAgent(t, newTestAgent())
	metrics := make(chan *agentwire.MetricsReport, 1)
	logs := make(chan *agentwire.LogMessage, 1)
	c := dial(t, srv.addr,
		WithOnMetrics(func(r *agentwire.MetricsReport) { metrics <- r }),
		WithOnLog(func(m *agentwire.LogMessage) { logs <- m }))
	_ = c
	srv.srv.ReportMetrics(&agentwire.MetricsReport{
		Counters: []agentwire.CounterMetric{{Name: "agent_requests_total", Labels: map[string]string{"k": "v"}, Value: 42}},
		Gauges:   []agentwire.GaugeMetric{{Name: "agent_in_flight_requests", Value: 3}},
	})
	srv.srv.Log(agentwire.LogMessage{Level: agentwire.LogError, Message: "boom", CorrelationID: agentwire.Some("c1"), Fields: map[string]string{"rule": "9"}})
	ctx := testCtx(t)
	select {
	case r := <-metrics:
		if len(r.Counters) != 1 || r.Counters[0].Value != 42 || r.Counters[0].Labels["k"] != "v" || r.Gauges[0].Value != 3 || r.AgentID == "" {
			t.Fatalf("metrics: %+v", r)
		}
	case <-ctx.Done():
		t.Fatal("no metrics callback")
	}
	select {
	case m := <-logs:
		if m.Level != agentwire.LogError || m.Message != "boom" || m.CorrelationID.Value != "c1" || m.Fields["rule"] != "9" {
			t.Fatalf("log: %+v", m)
		}
	case <-ctx.Done():
		t.Fatal("no log callback")
	}
}

func TestSlowCallbackNeverBlocksReplies(t *testing.T) {
	srv := startAgent(t, newTestAgent())
	block := make(chan struct{})
	c := dial(t, srv.addr, WithCallbackQueueSize(1), WithOnLog(func(*agentwire.LogMessage) { <-block }))
	defer close(block)
	for range 20 {
		srv.srv.Log(agentwire.LogMessage{Message: "x"})
	}
	waitUntil(t, "log lines", nil, func() bool { return c.Stats().LogMessages == 20 })
	if _, err := c.RequestHeaders(testCtx(t), headersEvent("still-fast")); err != nil {
		t.Fatal(err)
	}
	if st := c.Stats(); st.CallbacksDropped == 0 {
		t.Fatalf("no dropped callbacks counted: %+v", st)
	}
}

func TestConfigUpdateRoundTrip(t *testing.T) {
	srv := startAgent(t, newTestAgent())
	var got []*agentwire.ConfigUpdateRequest
	var mu sync.Mutex
	c := dial(t, srv.addr, WithOnConfigUpdate(func(r *agentwire.ConfigUpdateRequest) agentwire.ConfigUpdateResponse {
		mu.Lock()
		got = append(got, r)
		mu.Unlock()
		if r.Kind == agentwire.ConfigListUpdate {
			return agentwire.ConfigUpdateResponse{Accepted: false, Error: agentwire.Some("lists are read-only")}
		}
		return agentwire.ConfigUpdateResponse{Accepted: true}
	}))
	_ = c
	ctx := testCtx(t)
	waitUntil(t, "control stream at the agent", nil, func() bool {
		_, err := srv.srv.RequestConfigUpdate(ctx, &agentwire.ConfigUpdateRequest{Kind: agentwire.ConfigRequestReload, RequestID: "probe-" + time.Now().String()})
		return !errors.Is(err, agent.ErrNoControlStream)
	})
	resp, err := srv.srv.RequestConfigUpdate(ctx, &agentwire.ConfigUpdateRequest{
		Kind: agentwire.ConfigRuleUpdate, RequestID: "r1", RuleSet: "crs",
		Rules: []agentwire.RuleDefinition{{ID: "942100", Definition: []byte(`{"op":"sqli"}`), Enabled: true}},
	})
	if err != nil || !resp.Accepted || resp.RequestID != "r1" || resp.TimestampMS == 0 {
		t.Fatalf("rule update: %v %+v", err, resp)
	}
	resp, err = srv.srv.RequestConfigUpdate(ctx, &agentwire.ConfigUpdateRequest{Kind: agentwire.ConfigListUpdate, RequestID: "l1", ListID: "ips", Add: []string{"10.0.0.1"}})
	if err != nil || resp.Accepted || resp.Error.Value != "lists are read-only" {
		t.Fatalf("list update: %v %+v", err, resp)
	}
	mu.Lock()
	last := got[len(got)-1]
	mu.Unlock()
	if last.Kind != agentwire.ConfigListUpdate || last.ListID != "ips" || last.Add[0] != "10.0.0.1" {
		t.Fatalf("handler saw %+v", last)
	}
	// The answer is counted just after it is queued, so the agent can
	// hold it before the counter moves.
	waitUntil(t, "three answers counted", nil, func() bool { return c.Stats().ConfigAnswered >= 3 })
	if st := c.Stats(); st.ConfigUnanswered != 0 {
		t.Fatalf("stats: %+v", st)
	}
}

func TestConfigUpdateDefaultPolicy(t *testing.T) {
	srv := startAgent(t, newTestAgent())
	c := dial(t, srv.addr)
	_ = c
	ctx := testCtx(t)
	var resp agentwire.ConfigUpdateResponse
	waitUntil(t, "control stream", nil, func() bool {
		var err error
		resp, err = srv.srv.RequestConfigUpdate(ctx, &agentwire.ConfigUpdateRequest{Kind: agentwire.ConfigRuleUpdate, RequestID: "x-" + time.Now().String()})
		return err == nil
	})
	if resp.Accepted || resp.Error.Value != "rule updates not supported" {
		t.Fatalf("default rule update answer: %+v", resp)
	}
	resp, err := srv.srv.RequestConfigUpdate(ctx, &agentwire.ConfigUpdateRequest{Kind: agentwire.ConfigRestartRequired, RequestID: "rr", Reason: "upgrade"})
	if err != nil || !resp.Accepted {
		t.Fatalf("restart notice: %v %+v", err, resp)
	}
}

func TestDrainWaitsForInFlightAndNotifiesAgent(t *testing.T) {
	release := make(chan struct{})
	a := holdingAgent(release)
	srv := startAgent(t, a)
	c := dial(t, srv.addr)
	ctx := testCtx(t)
	waitUntil(t, "control stream", nil, func() bool { return c.sess.Load().controlOK.Load() })
	inflight := make(chan error, 1)
	go func() {
		_, err := c.RequestHeaders(ctx, headersEvent("in-flight"))
		inflight <- err
	}()
	waitUntil(t, "request in flight", nil, func() bool { return c.Stats().Sent >= 1 })
	drained := make(chan error, 1)
	go func() { drained <- c.Drain(ctx) }()
	a.waitFor(t, "drain notice at the agent", func() bool { return len(a.drains) == 1 })
	_, err := c.RequestHeaders(ctx, headersEvent("new"))
	mustKind(t, err, ErrDraining)
	select {
	case err := <-drained:
		t.Fatalf("Drain returned with a request in flight: %v", err)
	case <-time.After(30 * time.Millisecond):
	}
	close(release)
	if err := <-inflight; err != nil {
		t.Fatalf("in-flight request: %v", err)
	}
	if err := <-drained; err != nil {
		t.Fatal(err)
	}
	a.waitFor(t, "shutdown notice", func() bool { return len(a.shutdowns) == 1 })
	_, err = c.RequestHeaders(ctx, headersEvent("after"))
	mustKind(t, err, ErrClosed)
	a.mu.Lock()
	d := a.drains[0]
	a.mu.Unlock()
	if d.Reason != agent.DrainManual || d.DurationMS == 0 {
		t.Fatalf("drain notice: %+v", d)
	}
}

func TestDrainTimesOut(t *testing.T) {
	a := blockingAgent()
	srv := startAgent(t, a)
	c := dial(t, srv.addr)
	go func() { _, _ = c.RequestHeaders(testCtx(t), headersEvent("stuck")) }()
	waitUntil(t, "in flight", nil, func() bool { return c.Stats().InFlight == 1 })
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Millisecond)
	defer cancel()
	mustKind(t, c.Drain(ctx), ErrTimeout)
	_, err := c.RequestHeaders(testCtx(t), headersEvent("x"))
	mustKind(t, err, ErrDraining)
	_ = c.Close()
}

// TestRequestTimeoutBounds: a request timeout must be positive and no
// longer than a stretched one may become (beyond it, deadlines computed
// from the monotonic clock would overflow).
func TestRequestTimeoutBounds(t *testing.T) {
	for _, c := range []struct {
		d  time.Duration
		ok bool
	}{{0, false}, {-time.Second, false}, {time.Second, true}, {maxStretchedTimeout, true}, {maxStretchedTimeout + 1, false}, {math.MaxInt64, false}} {
		o := defaultOptions()
		WithRequestTimeout(c.d).apply(&o)
		if err := o.validate(); (err == nil) != c.ok {
			t.Errorf("WithRequestTimeout(%v): validate() = %v", c.d, err)
		}
	}
}
