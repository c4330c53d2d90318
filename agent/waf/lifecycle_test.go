package waf

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/agentwire/agentwire"
	"github.com/agentwire/agentwire/engine"
)

// do calls a handler method directly, as the agent server does, with a
// fresh reply.
func do[E any](f func(context.Context, E, *agentwire.AgentResponse) error, ev E) (*agentwire.AgentResponse, error) {
	r := &agentwire.AgentResponse{}
	return r, f(context.Background(), ev, r)
}

func mustDo[E any](t *testing.T, f func(context.Context, E, *agentwire.AgentResponse) error, ev E) *agentwire.AgentResponse {
	t.Helper()
	r, err := do(f, ev)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// isDecision compares the kind and status of r's decision with d.
func isDecision(r *agentwire.AgentResponse, d agentwire.Decision) bool {
	return r.Decision.Kind == d.Kind && r.Decision.Status == d.Status
}

func wantStats(t *testing.T, a *Agent, check func(Stats) bool) {
	t.Helper()
	if st := a.Stats(); !check(st) {
		t.Fatalf("stats %+v", st)
	}
}

// TestRequestBodyStreaming: a request with a body gets a provisional allow
// with needs_more for its headers and every chunk but the last; an attack
// split across chunks is found at the last one (block with the rule's
// status, id and message, the tag and the interruption in the audit), and
// the transaction is then closed. A benign body is allowed at its last
// chunk; a request without a body is decided on its headers.
func TestRequestBodyStreaming(t *testing.T) {
	log := newCloseLog()
	a := newAgent(t, smallRules(log.option())...)
	uds, _ := serve(t, a, serverOpts(a)...)
	c := dial(t, uds)
	ctx := testCtx(t)

	body := []string{"x=hel", "lo att", "ack world"}
	ev := headers("s1", "POST", "/form", "content-type", "application/x-www-form-urlencoded", "content-length", "20")
	r, err := c.RequestHeaders(ctx, ev)
	if err != nil || !r.NeedsMore || r.Decision.Kind != agentwire.DecisionAllow {
		t.Fatalf("headers: %+v %v (want allow with needs_more)", r, err)
	}
	for i, d := range body {
		last := i == len(body)-1
		r, err = c.RequestBodyChunk(ctx, chunk("s1", d, uint32(i), last))
		if err != nil {
			t.Fatal(err)
		}
		if !last && (!r.NeedsMore || r.Decision.Kind != agentwire.DecisionAllow) {
			t.Fatalf("chunk %d: %+v (want allow with needs_more)", i, r)
		}
	}
	if r.NeedsMore || !isDecision(r, agentwire.Block(403)) {
		t.Fatalf("last chunk: %+v (want block 403, final)", r)
	}
	if !slices.Equal(r.Audit.RuleIDs, []string{"1001"}) || !slices.Equal(r.Audit.ReasonCodes, []string{"attack in the request"}) ||
		!slices.Contains(r.Audit.Tags, TagBlocked) || !strings.Contains(string(r.Audit.Custom[CustomKey]), `"rule_id":1001`) {
		t.Fatalf("audit %+v custom %s", r.Audit, r.Audit.Custom[CustomKey])
	}
	if log.wait(t, "s1") != closeDone {
		t.Fatal("closed for another reason")
	}

	// Benign body: allowed at the last chunk, transaction closed.
	if r, err = c.RequestHeaders(ctx, headers("s2", "POST", "/form", "content-length", "8")); err != nil || !r.NeedsMore {
		t.Fatalf("%+v %v", r, err)
	}
	if r, _ = c.RequestBodyChunk(ctx, chunk("s2", "x=1", 0, false)); !r.NeedsMore {
		t.Fatalf("%+v", r)
	}
	if r, _ = c.RequestBodyChunk(ctx, chunk("s2", "&y=2", 1, true)); r.NeedsMore || r.Decision.Kind != agentwire.DecisionAllow || len(r.Audit.RuleIDs) != 0 {
		t.Fatalf("%+v", r)
	}
	log.wait(t, "s2")

	// No body: decided on the headers (query attack blocked, no needs_more).
	if r, err = c.RequestHeaders(ctx, headers("s3", "GET", "/?q=an+attack")); err != nil || r.NeedsMore || !isDecision(r, agentwire.Block(403)) {
		t.Fatalf("%+v %v", r, err)
	}
	if r, err = c.RequestHeaders(ctx, headers("s4", "POST", "/?q=fine", "content-length", "0")); err != nil || r.NeedsMore || r.Decision.Kind != agentwire.DecisionAllow {
		t.Fatalf("%+v %v", r, err)
	}
	// A phase-1 block stops a request with a body at its headers.
	if r, err = c.RequestHeaders(ctx, headers("s5", "POST", "/", "x-block", "now", "content-length", "5")); err != nil || r.NeedsMore || !isDecision(r, agentwire.Block(406)) {
		t.Fatalf("%+v %v", r, err)
	}
	// A rule that only logs is reported on an allow.
	if r, err = c.RequestHeaders(ctx, headers("s6", "GET", "/", "x-note", "yes")); err != nil || r.Decision.Kind != agentwire.DecisionAllow || !slices.Equal(r.Audit.RuleIDs, []string{"1003"}) || len(r.Audit.Tags) != 0 {
		t.Fatalf("%+v %v", r, err)
	}
	wantStats(t, a, func(s Stats) bool {
		return s.Open == 0 && s.Opened == 6 && s.ClosedDone == 6 && s.Blocked == 3 && s.Errors == 0
	})
}

// TestLastChunkByTotalSize: a chunk whose bytes reach the announced total
// size ends the body even without is_last (the Rust proxy sends a body
// longer than its inspection limit as one such chunk and nothing more).
func TestLastChunkByTotalSize(t *testing.T) {
	a := newAgent(t, smallRules()...)
	mustDo(t, a.OnRequestHeaders, headers("t1", "POST", "/", "content-type", "application/x-www-form-urlencoded", "content-length", "5000000"))
	ch := chunk("t1", "x=attack", 0, false)
	ch.TotalSize, ch.BytesTransferred = agentwire.Some[uint64](8), 8
	if r := mustDo(t, a.OnRequestBodyChunk, ch); r.NeedsMore || !isDecision(r, agentwire.Block(403)) {
		t.Fatalf("%+v", r)
	}
	wantStats(t, a, func(s Stats) bool { return s.Open == 0 })
}

// TestBodyLimit: Coraza's request body limit decides before the body ends.
// With Reject (the default action) the request is blocked with 413 at the
// chunk that crosses the limit. With ProcessPartial the rules run on what
// fits at that chunk (a final verdict without needs_more); the rest of the
// body is answered allow, uninspected, and the transaction closes at the
// last chunk.
func TestBodyLimit(t *testing.T) {
	t.Run("reject", func(t *testing.T) {
		a := newAgent(t, smallRules(WithDirectives("SecRequestBodyInMemoryLimit 10\nSecRequestBodyLimit 10"))...)
		mustDo(t, a.OnRequestHeaders, headers("l1", "POST", "/", "content-length", "30"))
		if r := mustDo(t, a.OnRequestBodyChunk, chunk("l1", "0123456", 0, false)); !r.NeedsMore {
			t.Fatalf("%+v", r)
		}
		if r := mustDo(t, a.OnRequestBodyChunk, chunk("l1", "789abcdef", 1, false)); r.NeedsMore || !isDecision(r, agentwire.Block(413)) {
			t.Fatalf("%+v", r)
		}
		wantStats(t, a, func(s Stats) bool { return s.Open == 0 && s.Blocked == 1 })
	})
	t.Run("partial", func(t *testing.T) {
		log := newCloseLog()
		a := newAgent(t, smallRules(log.option(), WithDirectives("SecRequestBodyInMemoryLimit 10\nSecRequestBodyLimit 10\nSecRequestBodyLimitAction ProcessPartial"))...)
		// The attack is beyond the limit: allowed at the limit, final.
		mustDo(t, a.OnRequestHeaders, headers("p1", "POST", "/", "content-type", "application/x-www-form-urlencoded", "content-length", "40"))
		if r := mustDo(t, a.OnRequestBodyChunk, chunk("p1", "x=0123456789", 0, false)); r.NeedsMore || r.Decision.Kind != agentwire.DecisionAllow {
			t.Fatalf("at the limit: %+v", r)
		}
		if r := mustDo(t, a.OnRequestBodyChunk, chunk("p1", "attack", 1, false)); r.NeedsMore || r.Decision.Kind != agentwire.DecisionAllow {
			t.Fatalf("after the limit: %+v", r)
		}
		if log.count("p1") != 0 || a.Stats().Open != 1 {
			t.Fatalf("closed before the body ended: %+v", a.Stats())
		}
		if r := mustDo(t, a.OnRequestBodyChunk, chunk("p1", "more", 2, true)); r.NeedsMore || r.Decision.Kind != agentwire.DecisionAllow {
			t.Fatalf("last: %+v", r)
		}
		if log.wait(t, "p1") != closeDone {
			t.Fatal("reason")
		}
		// The attack is within the limit: blocked at the chunk that
		// reaches it.
		mustDo(t, a.OnRequestHeaders, headers("p2", "POST", "/", "content-type", "application/x-www-form-urlencoded", "content-length", "40"))
		if r := mustDo(t, a.OnRequestBodyChunk, chunk("p2", "q=attack-and-more", 0, false)); !isDecision(r, agentwire.Block(403)) {
			t.Fatalf("%+v", r)
		}
		wantStats(t, a, func(s Stats) bool { return s.Open == 0 && s.Errors == 0 })
	})
}

// TestResponseInspection: with response inspection the request phases'
// verdict is final without needs_more, then the response headers and body
// are inspected the same way (needs_more until the body's last chunk); a
// response Coraza does not inspect (content type, 204, HEAD) is decided on
// its headers, and its body chunks are absorbed until the last one closes
// the transaction.
func TestResponseInspection(t *testing.T) {
	log := newCloseLog()
	a := newAgent(t, smallRules(log.option(), WithResponseInspection(true))...)
	uds, _ := serve(t, a, serverOpts(a)...)
	c := dial(t, uds)
	ctx := testCtx(t)
	respHeaders := func(cid string, status uint16, kv ...string) *agentwire.ResponseHeadersEvent {
		ev := &agentwire.ResponseHeadersEvent{CorrelationID: cid, Status: status}
		for i := 0; i+1 < len(kv); i += 2 {
			ev.Headers.Add(kv[i], kv[i+1])
		}
		return ev
	}
	open := func(cid, method string) {
		t.Helper()
		r, err := c.RequestHeaders(ctx, headers(cid, method, "/page"))
		if err != nil || r.NeedsMore || r.Decision.Kind != agentwire.DecisionAllow {
			t.Fatalf("%+v %v", r, err)
		}
	}

	open("r1", "GET")
	r, err := c.ResponseHeaders(ctx, respHeaders("r1", 200, "content-type", "text/html", "content-length", "20"))
	if err != nil || !r.NeedsMore {
		t.Fatalf("response headers: %+v %v", r, err)
	}
	if r, _ = c.ResponseBodyChunk(ctx, chunk("r1", "<p>a le", 0, false)); !r.NeedsMore {
		t.Fatalf("%+v", r)
	}
	if r, _ = c.ResponseBodyChunk(ctx, chunk("r1", "ak here</p>", 1, true)); r.NeedsMore || !isDecision(r, agentwire.Block(502)) || !slices.Equal(r.Audit.RuleIDs, []string{"1004"}) {
		t.Fatalf("%+v", r)
	}
	log.wait(t, "r1")

	open("r2", "GET")
	if r, _ = c.ResponseHeaders(ctx, respHeaders("r2", 200, "x-leak", "yes", "content-length", "5")); !isDecision(r, agentwire.Block(503)) {
		t.Fatalf("%+v", r)
	}
	log.wait(t, "r2")

	open("r3", "GET") // not an inspected content type
	if r, _ = c.ResponseHeaders(ctx, respHeaders("r3", 200, "content-type", "image/png", "content-length", "9")); r.NeedsMore || r.Decision.Kind != agentwire.DecisionAllow {
		t.Fatalf("%+v", r)
	}
	if log.count("r3") != 0 {
		t.Fatal("closed before its body ended")
	}
	if r, _ = c.ResponseBodyChunk(ctx, chunk("r3", "leak", 0, false)); r.NeedsMore || r.Decision.Kind != agentwire.DecisionAllow {
		t.Fatalf("%+v", r)
	}
	if r, _ = c.ResponseBodyChunk(ctx, chunk("r3", "leak!", 1, true)); r.Decision.Kind != agentwire.DecisionAllow {
		t.Fatalf("%+v", r)
	}
	log.wait(t, "r3")

	open("r4", "GET") // no body
	if r, _ = c.ResponseHeaders(ctx, respHeaders("r4", 204, "content-type", "text/html")); r.NeedsMore || r.Decision.Kind != agentwire.DecisionAllow {
		t.Fatalf("%+v", r)
	}
	log.wait(t, "r4")
	open("r5", "HEAD") // no body either, whatever the headers say
	if r, _ = c.ResponseHeaders(ctx, respHeaders("r5", 200, "content-type", "text/html", "content-length", "300")); r.NeedsMore {
		t.Fatalf("%+v", r)
	}
	log.wait(t, "r5")

	// The response may start before the request body ended.
	if r, _ = c.RequestHeaders(ctx, headers("r6", "POST", "/", "content-length", "100")); !r.NeedsMore {
		t.Fatalf("%+v", r)
	}
	if r, _ = c.RequestBodyChunk(ctx, chunk("r6", "a=1", 0, false)); !r.NeedsMore {
		t.Fatalf("%+v", r)
	}
	if r, _ = c.ResponseHeaders(ctx, respHeaders("r6", 413, "content-length", "0")); r.Decision.Kind != agentwire.DecisionAllow {
		t.Fatalf("%+v", r)
	}
	log.wait(t, "r6")
	wantStats(t, a, func(s Stats) bool { return s.Open == 0 && s.ClosedDone == 6 && s.Errors == 0 })
}

// TestCancelFreesTransaction: a cancel from the proxy (through the engine)
// closes the request's transaction; a later body chunk of that request is
// not inspected and gets the server's error decision, not an allow.
func TestCancelFreesTransaction(t *testing.T) {
	log := newCloseLog()
	a := newAgent(t, smallRules(log.option())...)
	uds, grpcEP := serve(t, a, serverOpts(a)...)
	for _, ep := range []string{uds, grpcEP} {
		c := dial(t, ep)
		ctx := testCtx(t)
		cid := "c-" + ep[:4]
		if r, err := c.RequestHeaders(ctx, headers(cid, "POST", "/", "content-length", "10")); err != nil || !r.NeedsMore {
			t.Fatalf("%+v %v", r, err)
		}
		if err := c.Cancel(cid, agentwire.CancelClientDisconnect); err != nil {
			t.Fatal(err)
		}
		if why := log.wait(t, cid); why != closeCancel {
			t.Fatalf("closed for %v", why)
		}
		if r, err := c.RequestBodyChunk(ctx, chunk(cid, "x=1", 0, true)); err != nil || !isDecision(r, agentwire.Block(500)) {
			t.Fatalf("chunk after cancel: %+v %v (want the error decision)", r, err)
		}
	}
	wantStats(t, a, func(s Stats) bool { return s.Open == 0 && s.ClosedCancel == 2 && s.Errors == 2 })
}

// TestCancelWhileInspecting: a cancel that arrives while an event of the
// request holds its transaction does not block and does not close it under
// the event's feet; the transaction closes as the event ends.
func TestCancelWhileInspecting(t *testing.T) {
	log := newCloseLog()
	a := newAgent(t, smallRules(log.option())...)
	mustDo(t, a.OnRequestHeaders, headers("b1", "POST", "/", "content-length", "10"))
	tr := a.acquire("b1") // an event is inspecting
	a.OnCancel(context.Background(), agentwire.Cancel{CorrelationID: "b1"})
	if log.count("b1") != 0 || tr.tx == nil {
		t.Fatal("closed while an event held it")
	}
	var err error
	a.end(tr, &err) // the event ends
	if log.count("b1") != 1 || log.why["b1"] != closeCancel {
		t.Fatalf("not closed by the cancel when the event ended: %v", log.counts)
	}
	wantStats(t, a, func(s Stats) bool { return s.Open == 0 && s.ClosedCancel == 1 })
}

// TestExpiryFreesTransaction: a transaction idle for longer than the TTL
// is closed by a sweep (a busy one is skipped), and the sweeper goroutine
// does it on its own.
func TestExpiryFreesTransaction(t *testing.T) {
	log := newCloseLog()
	a := newAgent(t, smallRules(log.option(), WithTransactionTTL(time.Hour))...)
	mustDo(t, a.OnRequestHeaders, headers("e1", "POST", "/", "content-length", "10"))
	mustDo(t, a.OnRequestHeaders, headers("e2", "POST", "/", "content-length", "10"))
	a.sweep(a.now())
	if a.Stats().Open != 2 {
		t.Fatal("expired before the TTL")
	}
	busy := a.acquire("e2")
	later := a.now() + int64(time.Hour) + 1
	a.sweep(later)
	if log.why["e1"] != closeExpired || log.count("e1") != 1 || log.count("e2") != 0 {
		t.Fatalf("after the sweep: %v %v", log.counts, log.why)
	}
	busy.mu.Unlock()
	a.sweep(later)
	if log.count("e2") != 1 {
		t.Fatal("idle transaction not expired")
	}
	if _, err := do(a.OnRequestBodyChunk, chunk("e1", "x", 0, true)); !errors.Is(err, ErrNoTransaction) {
		t.Fatalf("chunk after expiry: %v", err)
	}
	wantStats(t, a, func(s Stats) bool { return s.Open == 0 && s.ClosedExpired == 2 })

	// The sweeper itself.
	log2 := newCloseLog()
	b := newAgent(t, smallRules(log2.option(), WithTransactionTTL(20*time.Millisecond))...)
	mustDo(t, b.OnRequestHeaders, headers("e3", "POST", "/", "content-length", "10"))
	if log2.wait(t, "e3") != closeExpired {
		t.Fatal("reason")
	}
}

// TestBound: at WithMaxTransactions open transactions a new request is not
// inspected and gets the overflow decision (block 503 by default, tagged,
// counted), its later events find no transaction; a closed transaction
// frees its slot. A request decided on its headers holds no slot after its
// reply.
func TestBound(t *testing.T) {
	a := newAgent(t, smallRules(WithMaxTransactions(2))...)
	for _, cid := range []string{"m1", "m2"} {
		if r := mustDo(t, a.OnRequestHeaders, headers(cid, "POST", "/", "content-length", "10")); !r.NeedsMore {
			t.Fatalf("%+v", r)
		}
	}
	r := mustDo(t, a.OnRequestHeaders, headers("m3", "POST", "/", "content-length", "10"))
	if !isDecision(r, agentwire.Block(503)) || r.NeedsMore || !slices.Equal(r.Audit.Tags, []string{TagOverloaded}) {
		t.Fatalf("at the bound: %+v", r)
	}
	if _, err := do(a.OnRequestBodyChunk, chunk("m3", "x=1", 0, true)); !errors.Is(err, ErrNoTransaction) {
		t.Fatalf("%v", err)
	}
	wantStats(t, a, func(s Stats) bool { return s.Open == 2 && s.Rejected == 1 && s.Opened == 2 })
	mustDo(t, a.OnRequestComplete, &agentwire.RequestCompleteEvent{CorrelationID: "m1"})
	if r := mustDo(t, a.OnRequestHeaders, headers("m4", "POST", "/", "content-length", "10")); !r.NeedsMore {
		t.Fatalf("after a close: %+v", r)
	}
	wantStats(t, a, func(s Stats) bool { return s.Open == 2 && s.ClosedComplete == 1 })

	b := newAgent(t, smallRules(WithMaxTransactions(1), WithOverflowDecision(agentwire.Allow()))...)
	for i := range 20 {
		if r := mustDo(t, b.OnRequestHeaders, headers(fmt.Sprint("g", i), "GET", "/")); r.Decision.Kind != agentwire.DecisionAllow || len(r.Audit.Tags) != 0 {
			t.Fatalf("%+v", r)
		}
	}
	mustDo(t, b.OnRequestHeaders, headers("h1", "POST", "/", "content-length", "10"))
	if r := mustDo(t, b.OnRequestHeaders, headers("h2", "GET", "/?q=attack")); r.Decision.Kind != agentwire.DecisionAllow || !slices.Equal(r.Audit.Tags, []string{TagOverloaded}) {
		t.Fatalf("overflow allow: %+v", r)
	}
	wantStats(t, b, func(s Stats) bool { return s.Rejected == 1 && s.Open == 1 })
}

// TestReplacedCorrelationID: request headers that reuse the correlation id
// of an open transaction close it and start a new one.
func TestReplacedCorrelationID(t *testing.T) {
	log := newCloseLog()
	a := newAgent(t, smallRules(log.option())...)
	mustDo(t, a.OnRequestHeaders, headers("d1", "POST", "/", "content-length", "10"))
	mustDo(t, a.OnRequestHeaders, headers("d1", "POST", "/", "content-type", "application/x-www-form-urlencoded", "content-length", "10"))
	if log.why["d1"] != closeReplaced || a.Stats().Open != 1 {
		t.Fatalf("%v %+v", log.why, a.Stats())
	}
	if r := mustDo(t, a.OnRequestBodyChunk, chunk("d1", "x=attack", 0, true)); !isDecision(r, agentwire.Block(403)) {
		t.Fatalf("the new transaction: %+v", r)
	}
	wantStats(t, a, func(s Stats) bool { return s.Open == 0 && s.ClosedReplaced == 1 && s.ClosedDone == 1 })
}

// TestCloseExactlyOnce races every way a transaction can end (body end,
// request complete, cancels concurrent with body chunks, sweeps, replaced
// ids, Close) over many requests: each transaction is closed exactly once
// and none is left open.
func TestCloseExactlyOnce(t *testing.T) {
	log := newCloseLog()
	a, err := New(smallRules(log.option(), WithTransactionTTL(time.Hour))...)
	if err != nil {
		t.Fatal(err)
	}
	// A cancel or a sweep that found the transaction just before it was
	// closed (the cancel runs on another connection's reader) finds it
	// closed and does nothing.
	mustDo(t, a.OnRequestHeaders, headers("once", "POST", "/", "content-length", "10"))
	stale, _ := a.txns.Load("once")
	mustDo(t, a.OnRequestComplete, &agentwire.RequestCompleteEvent{CorrelationID: "once"})
	a.requestClose(stale, closeCancel)
	a.OnCancel(context.Background(), agentwire.Cancel{CorrelationID: "once"})
	a.sweep(a.now() + int64(time.Hour) + 1)
	if n := log.count("once"); n != 1 || a.Stats().Open != 0 || a.Stats().Closed != 1 {
		t.Fatalf("closed %d times, stats %+v", n, a.Stats())
	}

	const workers, perWorker = 8, 60
	var wg sync.WaitGroup
	stopSweep := make(chan struct{})
	sweepDone := make(chan struct{})
	go func() {
		defer close(sweepDone)
		for {
			select {
			case <-stopSweep:
				return
			default:
				a.sweep(a.now() + int64(time.Hour) + 1) // everything idle expires
			}
		}
	}()
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(w), 7))
			for i := range perWorker {
				cid := fmt.Sprintf("x%d-%d", w, i%50) // ids are reused: replaced transactions
				if _, err := do(a.OnRequestHeaders, headers(cid, "POST", "/", "content-length", "12")); err != nil {
					t.Error(err)
					return
				}
				var inner sync.WaitGroup
				switch rng.IntN(4) {
				case 0:
					_, _ = do(a.OnRequestBodyChunk, chunk(cid, "a=1", 0, false))
					_, _ = do(a.OnRequestBodyChunk, chunk(cid, "&b=2", 1, true))
				case 1:
					_, _ = do(a.OnRequestComplete, &agentwire.RequestCompleteEvent{CorrelationID: cid})
				case 2:
					inner.Add(1)
					go func() {
						defer inner.Done()
						a.OnCancel(context.Background(), agentwire.Cancel{CorrelationID: cid})
					}()
					_, _ = do(a.OnRequestBodyChunk, chunk(cid, "a=attack", 0, true))
				case 3: // left for the sweeper
				}
				inner.Wait()
			}
		}()
	}
	wg.Wait()
	close(stopSweep)
	<-sweepDone
	_ = a.Close()
	st := a.Stats()
	if st.Open != 0 || st.Opened != st.Closed || st.Opened != workers*perWorker+1 {
		t.Fatalf("stats %+v", st)
	}
	log.mu.Lock()
	defer log.mu.Unlock()
	total := 0
	for _, n := range log.counts {
		total += n
	}
	if uint64(total) != st.Closed {
		t.Fatalf("close hook calls %d, closed %d", total, st.Closed)
	}
	// Every transaction object was closed once: the hook ran as often as
	// transactions were opened, and the table is empty.
	if n := a.txns.Size(); n != 0 {
		t.Fatalf("%d entries left in the table", n)
	}
}

// TestErrorsAreNeverSilentAllows: events the agent cannot inspect (no
// transaction, out of sequence) and a panic inside Coraza are returned as
// errors, which the agent server answers with its error decision (block
// 500 here) — never an allow —, and leave no transaction behind; the agent
// keeps working afterwards.
func TestErrorsAreNeverSilentAllows(t *testing.T) {
	a := newAgent(t, smallRules(WithResponseInspection(true), WithDirectives(`SecRule ARGS:boom "@agentwireTestPanic" "id:1999,phase:2,pass,log"`))...)
	uds, grpcEP := serve(t, a, serverOpts(a)...)
	for _, ep := range []string{uds, grpcEP} {
		c := dial(t, ep)
		ctx := testCtx(t)
		p := ep[:4]
		check := func(what string, r *agentwire.AgentResponse, err error, want agentwire.Decision) {
			t.Helper()
			if err != nil || r.Decision.Kind != want.Kind || r.Decision.Status != want.Status {
				t.Fatalf("%s: %+v %v (want %+v)", what, r, err, want)
			}
		}
		r, err := c.RequestBodyChunk(ctx, chunk(p+"n1", "x=1", 0, true))
		check("stray chunk", r, err, agentwire.Block(500))
		r, err = c.RequestBodyChunk(ctx, chunk(p+"n2", "", 0, true))
		check("empty stray chunk", r, err, agentwire.Allow())
		r, err = c.ResponseHeaders(ctx, &agentwire.ResponseHeadersEvent{CorrelationID: p + "n3", Status: 200})
		check("stray response headers", r, err, agentwire.Block(500))

		r, err = c.RequestHeaders(ctx, headers(p+"n4", "GET", "/?boom=1"))
		check("panic in a rule", r, err, agentwire.Block(500))

		r, err = c.RequestHeaders(ctx, headers(p+"n5", "GET", "/"))
		check("request", r, err, agentwire.Allow())
		r, err = c.ResponseBodyChunk(ctx, chunk(p+"n5", "body", 0, true))
		check("response body before its headers", r, err, agentwire.Block(500))

		r, err = c.RequestHeaders(ctx, headers(p+"n6", "GET", "/?q=fine"))
		check("after the errors", r, err, agentwire.Allow())
		_, _ = c.ResponseHeaders(ctx, &agentwire.ResponseHeadersEvent{CorrelationID: p + "n6", Status: 204})
	}
	wantStats(t, a, func(s Stats) bool { return s.Open == 0 && s.ClosedError == 4 && s.Errors == 8 })
}

// TestCapabilities: the announced events are exactly those the
// configuration needs, and an engine connection refuses to send the others.
func TestCapabilities(t *testing.T) {
	for _, tc := range []struct {
		opts      []Option
		events    []int32
		streaming bool
	}{
		{nil, []int32{agentwire.EventRequestHeaders, agentwire.EventRequestBodyChunk, agentwire.EventRequestComplete}, true},
		{[]Option{WithRequestBodyInspection(false)}, []int32{agentwire.EventRequestHeaders}, false},
		{[]Option{WithResponseInspection(true)}, []int32{agentwire.EventRequestHeaders, agentwire.EventRequestBodyChunk, agentwire.EventResponseHeaders, agentwire.EventResponseBodyChunk, agentwire.EventRequestComplete}, true},
		{[]Option{WithRequestBodyInspection(false), WithResponseInspection(true)}, []int32{agentwire.EventRequestHeaders, agentwire.EventResponseHeaders, agentwire.EventResponseBodyChunk, agentwire.EventRequestComplete}, true},
	} {
		a := newAgent(t, smallRules(tc.opts...)...)
		caps := a.Capabilities()
		if !slices.Equal(caps.SupportedEvents, tc.events) || caps.Features.StreamingBody != tc.streaming || !caps.Features.Cancellation {
			t.Errorf("%d options: %+v", len(tc.opts), caps)
		}
	}

	// Headers only: the engine sends no body; a body never delays the verdict.
	a := newAgent(t, smallRules(WithRequestBodyInspection(false))...)
	uds, _ := serve(t, a, serverOpts(a)...)
	c := dial(t, uds)
	ctx := testCtx(t)
	if _, err := c.RequestBodyChunk(ctx, chunk("k1", "x", 0, true)); !errors.Is(err, engine.ErrNotSubscribed) {
		t.Fatalf("body chunk: %v", err)
	}
	if _, err := c.RequestComplete(ctx, &agentwire.RequestCompleteEvent{CorrelationID: "k1"}); !errors.Is(err, engine.ErrNotSubscribed) {
		t.Fatalf("request complete: %v", err)
	}
	if _, err := c.ResponseHeaders(ctx, &agentwire.ResponseHeadersEvent{CorrelationID: "k1", Status: 200}); !errors.Is(err, engine.ErrNotSubscribed) {
		t.Fatalf("response headers: %v", err)
	}
	if r, err := c.RequestHeaders(ctx, headers("k2", "POST", "/?q=attack", "content-length", "10")); err != nil || r.NeedsMore || !isDecision(r, agentwire.Block(403)) {
		t.Fatalf("%+v %v", r, err)
	}
	if r, err := c.RequestHeaders(ctx, headers("k3", "POST", "/", "content-length", "10")); err != nil || r.NeedsMore || r.Decision.Kind != agentwire.DecisionAllow {
		t.Fatalf("%+v %v", r, err)
	}
	// Not announced, sent anyway (a proxy that ignores capabilities): allow.
	if r, err := do(a.OnRequestBodyChunk, chunk("k3", "x=attack", 0, true)); err != nil || r.Decision.Kind != agentwire.DecisionAllow {
		t.Fatalf("%+v %v", r, err)
	}
	wantStats(t, a, func(s Stats) bool { return s.Open == 0 })
}

// TestCloseAgent: Close ends the open transactions and refuses new ones.
func TestCloseAgent(t *testing.T) {
	log := newCloseLog()
	a, err := New(smallRules(log.option())...)
	if err != nil {
		t.Fatal(err)
	}
	mustDo(t, a.OnRequestHeaders, headers("z1", "POST", "/", "content-length", "10"))
	_ = a.Close()
	_ = a.Close()
	if log.why["z1"] != closeShutdown {
		t.Fatalf("%v", log.why)
	}
	if _, err := do(a.OnRequestHeaders, headers("z2", "GET", "/")); !errors.Is(err, ErrClosed) {
		t.Fatalf("%v", err)
	}
	wantStats(t, a, func(s Stats) bool { return s.Open == 0 && s.ClosedShutdown == 1 })
}
