package agent

import (
	"context"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/agentwire/agentwire"
	"github.com/agentwire/agentwire/codec/frame"
	"github.com/agentwire/agentwire/internal/lathist"
)

// TestEventRunMatchesRecord: an eventRun that sees a sequence of events
// (runs of one kind, decision and latency bucket, broken by a change of
// each, and a decision kind out of range) publishes exactly the counters
// that recording each event directly gives.
func TestEventRunMatchesRecord(t *testing.T) {
	type ev struct {
		k  eventKind
		dk agentwire.DecisionKind
		d  time.Duration
	}
	var seq []ev
	for i := range 40 {
		seq = append(seq, ev{kindRequestHeaders, agentwire.DecisionAllow, time.Duration(i) * time.Microsecond}) // two buckets
	}
	seq = append(seq,
		ev{kindRequestHeaders, agentwire.DecisionBlock, time.Microsecond},
		ev{kindRequestHeaders, agentwire.DecisionBlock, time.Microsecond},
		ev{kindRequestComplete, agentwire.DecisionBlock, time.Microsecond},
		ev{kindRequestComplete, 7, time.Second},
		ev{kindRequestHeaders, agentwire.DecisionAllow, 3 * time.Millisecond},
		ev{kindGuardrailInspect, agentwire.DecisionChallenge, 0},
	)
	var want eventCounters
	var r eventRun
	s := &Server{}
	for i, e := range seq {
		want.record(e.k, e.dk, e.d)
		r.events++
		r.record(&s.stats.byEvent, e.k, e.dk, e.d)
		if i == 17 {
			r.publish(s) // a publish in the middle of a run
		}
	}
	r.publish(s)
	got := &s.stats.byEvent
	if n := s.stats.events.Load(); n != uint64(len(seq)) {
		t.Fatalf("events %d, want %d", n, len(seq))
	}
	for k := range eventKinds {
		for dk := range 4 {
			if a, b := got.decisions[k][dk].Load(), want.decisions[k][dk].Load(); a != b {
				t.Fatalf("kind %d decision %d: %d, want %d", k, dk, a, b)
			}
		}
		var gc, wc [lathist.Buckets]uint64
		var gs, ws time.Duration
		got.latency[k].AddTo(&gc, &gs)
		want.latency[k].AddTo(&wc, &ws)
		if gc != wc || gs != ws {
			t.Fatalf("kind %d latency %v %v, want %v %v", k, gc, gs, wc, ws)
		}
	}
	if r.events != 0 || r.n != 0 || r.sum != 0 {
		t.Fatalf("run after publish %+v, want empty", r)
	}
}

// TestUDSInlineCountersBeforeReplies: with inline handlers the counters
// of a read's events are published before their replies are written:
// once a reply has arrived, Stats.Events and the event kind's decisions
// and latency count its event, for each of 40 events read together
// (several writes of replies) and for a single event afterwards.
func TestUDSInlineCountersBeforeReplies(t *testing.T) {
	h := &funcHandler{reqHeaders: func(_ context.Context, ev *agentwire.RequestHeadersEvent, r *agentwire.AgentResponse) error {
		if strings.HasSuffix(ev.Metadata.CorrelationID, "7") {
			r.Decision = agentwire.Block(403)
		}
		return nil
	}}
	e := startUDS(t, h, WithInlineHandlers())
	p := dialRaw(t, e.path)
	p.handshake("msgpack")
	const n = 40
	var batch []byte
	for i := range n {
		var err error
		batch, err = frame.AppendFrame(batch, frame.TypeRequestHeaders, reqHeadersMsgpack("c-"+strconv.Itoa(i), "/"))
		if err != nil {
			t.Fatal(err)
		}
	}
	check := func(replies, blocked uint64) {
		t.Helper()
		st := e.srv.Stats()
		es := e.srv.EventStats(agentwire.EventRequestHeaders)
		if st.Events < replies || es.Decisions.Total() < replies || es.Decisions.Block < blocked || es.Latency.Count() < replies {
			t.Fatalf("after %d replies (%d blocked): Events %d, decisions %+v, latency count %d",
				replies, blocked, st.Events, es.Decisions, es.Latency.Count())
		}
	}
	p.writeRaw(batch)
	var blocked uint64
	for i := range n {
		if r := p.recvReply(true); r.Decision.Kind == agentwire.DecisionBlock {
			blocked++
		}
		check(uint64(i+1), blocked)
	}
	p.send(frame.TypeRequestHeaders, reqHeadersMsgpack("last", "/"))
	p.recvReply(true)
	check(n+1, blocked)
	if blocked != 4 {
		t.Fatalf("%d blocked, want 4", blocked)
	}
}
