package httpguard

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/agentwire/agentwire"
	"github.com/agentwire/agentwire/agent"
	"github.com/agentwire/agentwire/engine"
	"github.com/agentwire/agentwire/engine/pool"
)

// upstreamRecord is what a test upstream saw of one request.
type upstreamRecord struct {
	body          string
	contentLength int64
	chunked       bool
	err           error
}

// bodyUpstream returns a reverse proxy to a loopback upstream that reads
// the request body and answers 200 "got N"; its requests are recorded.
func bodyUpstream(t *testing.T) (http.Handler, chan upstreamRecord) {
	t.Helper()
	recs := make(chan upstreamRecord, 64)
	up := newTestServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, err := io.ReadAll(r.Body)
		recs <- upstreamRecord{body: string(b), contentLength: r.ContentLength, chunked: len(r.TransferEncoding) > 0, err: err}
		if err != nil {
			return
		}
		fmt.Fprintf(w, "got %d", len(b))
	}))
	return reverseProxy(t, up.URL), recs
}

// TestGuardRequestBodyStream: a streaming agent gets the body chunk by
// chunk as the client sends it (its first chunk before the client sent
// the rest), numbered, with cumulative sizes, and an empty last chunk when
// it still asks for more at the end (needs_more); its mutations reach the
// upstream (which then gets no stale Content-Length), and a provisional
// block (needs_more) is not enforced.
func TestGuardRequestBodyStream(t *testing.T) {
	rec := newRecorder()
	h := agent.Funcs{RequestBodyChunk: func(_ context.Context, ev *agentwire.BodyChunk, r *agentwire.AgentResponse) error {
		rec.mu.Lock()
		rec.chunks = append(rec.chunks, copyChunk(ev))
		rec.mu.Unlock()
		rec.note()
		r.NeedsMore = true
		switch {
		case bytes.Contains(ev.Data, []byte("secret")):
			r.RequestBodyMutation = agentwire.Some(agentwire.BodyMutation{Action: agentwire.MutationReplace, Data: bytes.ReplaceAll(ev.Data, []byte("secret"), []byte("[redacted]"))})
		case bytes.Contains(ev.Data, []byte("maybe")):
			r.Decision = agentwire.Block(403) // provisional
		}
		return nil
	}}
	ag := startUDSAgent(t, h)
	_, pl, as := newPipeline(t, true, agentOpts(ag.Endpoint(), pool.WithEvents(agentwire.EventRequestHeaders, agentwire.EventRequestBodyChunk)))
	rp, recs := bodyUpstream(t)
	_, srv := newGuard(t, rp, pl, WithBodyConfig(as[0], BodyConfig{Mode: ModeStream}, BodyConfig{}))
	c := newClient(t)

	pr, pw := io.Pipe()
	done := make(chan struct{})
	var st int
	var body string
	go func() {
		defer close(done)
		st, body, _ = do(t, c, mustReq(t, "POST", srv.URL+"/up", pr))
	}()
	if _, err := io.WriteString(pw, "maybe hello "); err != nil {
		t.Fatal(err)
	}
	rec.wait(t, "the first chunk before the rest of the body was sent", func() bool { return len(rec.chunks) >= 1 })
	io.WriteString(pw, "secret")
	pw.Close()
	<-done
	if st != 200 || body != "got 22" {
		t.Fatalf("response %d %q", st, body)
	}
	got := <-recs
	if got.body != "maybe hello [redacted]" || got.contentLength != -1 {
		t.Fatalf("upstream got %+v", got)
	}
	rec.mu.Lock()
	defer rec.mu.Unlock()
	var all []byte
	for i, ch := range rec.chunks {
		all = append(all, ch.Data...)
		if ch.ChunkIndex != uint32(i) || ch.BytesTransferred != uint64(len(all)) || ch.TotalSize.Valid || ch.IsLast != (i == len(rec.chunks)-1) {
			t.Fatalf("chunk %d: %+v", i, ch)
		}
	}
	if last := rec.chunks[len(rec.chunks)-1]; string(all) != "maybe hello secret" || len(last.Data) != 0 {
		t.Fatalf("chunks %q, last %+v (want an empty last chunk: the agent asked for more)", all, last)
	}
}

// TestGuardRequestBodyStreamBlock: a final block in the middle of a
// streamed body stops it: the upstream's request is cut off and the client
// gets the block's response, not the reverse proxy's 502.
func TestGuardRequestBodyStreamBlock(t *testing.T) {
	h := agent.Funcs{RequestBodyChunk: func(_ context.Context, ev *agentwire.BodyChunk, r *agentwire.AgentResponse) error {
		if bytes.Contains(ev.Data, []byte("DROP TABLE")) {
			r.Decision = agentwire.Decision{Kind: agentwire.DecisionBlock, Status: 400, Body: agentwire.Some("sql")}
		}
		return nil
	}}
	ag := startUDSAgent(t, h)
	_, pl, as := newPipeline(t, true, agentOpts(ag.Endpoint(), pool.WithEvents(agentwire.EventRequestHeaders, agentwire.EventRequestBodyChunk)))
	rp, _ := bodyUpstream(t)
	g, srv := newGuard(t, rp, pl, WithBodyConfig(as[0], BodyConfig{Mode: ModeStream}, BodyConfig{}))
	c := newClient(t)
	pr, pw := io.Pipe()
	go func() {
		io.WriteString(pw, "id=1;")
		io.WriteString(pw, "DROP TABLE users")
		pw.Close()
	}()
	st, body, _ := do(t, c, mustReq(t, "POST", srv.URL+"/q", pr))
	if st != 400 || body != "sql" {
		t.Fatalf("response %d %q, want the block's 400", st, body)
	}
	if s := g.Stats(); s.RequestBodyBlocked != 1 || s.Aborted != 0 {
		t.Fatalf("stats %+v", s)
	}
}

// TestGuardRequestBodyBuffer: a buffering agent (the default) gets the
// whole body in one last chunk before the handler runs: its block answers
// without the upstream ever being called, its mutation reaches the
// upstream with the exact new Content-Length.
func TestGuardRequestBodyBuffer(t *testing.T) {
	rec := newRecorder()
	h := agent.Funcs{RequestBodyChunk: func(_ context.Context, ev *agentwire.BodyChunk, r *agentwire.AgentResponse) error {
		rec.mu.Lock()
		rec.chunks = append(rec.chunks, copyChunk(ev))
		rec.mu.Unlock()
		if bytes.Contains(ev.Data, []byte("evil")) {
			r.Decision = agentwire.Block(403)
			return nil
		}
		r.RequestBodyMutation = agentwire.Some(agentwire.BodyMutation{Action: agentwire.MutationReplace, Data: bytes.ReplaceAll(ev.Data, []byte("a"), []byte("bb"))})
		return nil
	}}
	ag := startUDSAgent(t, h)
	_, pl, _ := newPipeline(t, true, agentOpts(ag.Endpoint(), pool.WithEvents(agentwire.EventRequestHeaders, agentwire.EventRequestBodyChunk)))
	rp, recs := bodyUpstream(t)
	_, srv := newGuard(t, rp, pl)
	c := newClient(t)

	if st, _, _ := do(t, c, mustReq(t, "POST", srv.URL+"/", strings.NewReader("x=evil"))); st != 403 {
		t.Fatalf("evil: %d", st)
	}
	select {
	case r := <-recs:
		t.Fatalf("the upstream got a blocked body: %+v", r)
	default:
	}
	big := strings.Repeat("a", 100<<10)
	// Unknown length (chunked), so that the exact length comes from the
	// buffered body.
	st, body, _ := do(t, c, mustReq(t, "POST", srv.URL+"/", io.MultiReader(strings.NewReader(big))))
	if st != 200 || body != fmt.Sprintf("got %d", 200<<10) {
		t.Fatalf("big: %d %q", st, body)
	}
	got := <-recs
	if got.contentLength != 200<<10 || got.chunked || got.body != strings.Repeat("b", 200<<10) {
		t.Fatalf("upstream: length %d chunked %v, %d bytes", got.contentLength, got.chunked, len(got.body))
	}
	rec.mu.Lock()
	defer rec.mu.Unlock()
	if len(rec.chunks) != 2 {
		t.Fatalf("%d chunks, want one per request", len(rec.chunks))
	}
	ch := rec.chunks[1]
	if !ch.IsLast || ch.ChunkIndex != 0 || len(ch.Data) != 100<<10 || ch.BytesTransferred != 100<<10 {
		t.Fatalf("chunk %+v (%d bytes)", ch.ChunkIndex, len(ch.Data))
	}
}

// TestGuardRequestBodyLimit: a body over the agent's limit is a 413 for a
// fail-closed agent, before the upstream is called whether the length is
// declared or found while buffering; a fail-open agent is skipped and the
// upstream gets the whole body, the bytes the agent held included.
func TestGuardRequestBodyLimit(t *testing.T) {
	var chunks atomic.Int64
	h := agent.Funcs{RequestBodyChunk: func(context.Context, *agentwire.BodyChunk, *agentwire.AgentResponse) error {
		chunks.Add(1)
		return nil
	}}
	ag := startUDSAgent(t, h)
	body := strings.Repeat("z", 3000)
	c := newClient(t)
	for _, tc := range []struct {
		name   string
		mode   engine.FailureMode
		bc     BodyConfig
		sized  bool
		status int
		chunks int64
	}{
		{"closed-declared", engine.FailClosed, BodyConfig{}, true, 413, 0},
		{"closed-buffered", engine.FailClosed, BodyConfig{}, false, 413, 0},
		{"open-declared", engine.FailOpen, BodyConfig{}, true, 200, 0},
		{"open-buffered", engine.FailOpen, BodyConfig{}, false, 200, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			chunks.Store(0)
			_, pl, as := newPipeline(t, true, agentOpts(ag.Endpoint(), pool.WithEvents(agentwire.EventRequestHeaders, agentwire.EventRequestBodyChunk),
				pool.WithBodyLimits(2000, 2000), pool.WithFailurePolicy(engine.FailurePolicy{Mode: tc.mode})))
			rp, recs := bodyUpstream(t)
			_, srv := newGuard(t, rp, pl, WithBodyConfig(as[0], tc.bc, BodyConfig{}))
			var rd io.Reader = strings.NewReader(body)
			if !tc.sized {
				rd = io.MultiReader(rd)
			}
			st, _, _ := do(t, c, mustReq(t, "POST", srv.URL+"/", rd))
			if st != tc.status || chunks.Load() != tc.chunks {
				t.Fatalf("%d with %d chunks sent, want %d with %d", st, chunks.Load(), tc.status, tc.chunks)
			}
			select {
			case got := <-recs:
				if tc.status != 200 || got.body != body {
					t.Fatalf("upstream got %d bytes (%v)", len(got.body), got.err)
				}
			default:
				if tc.status == 200 {
					t.Fatal("the upstream got nothing")
				}
			}
		})
	}
}

// TestGuardSlowClientBody: a client that sends its body slower than the
// agents' timeout is served: the timeout bounds each agent call, not the
// client's pace.
func TestGuardSlowClientBody(t *testing.T) {
	ag := startUDSAgent(t, agent.Funcs{})
	for _, bc := range []BodyConfig{{Mode: ModeStream}, {Mode: ModeBuffer}} {
		_, pl, as := newPipeline(t, true, agentOpts(ag.Endpoint(), pool.WithEvents(agentwire.EventRequestHeaders, agentwire.EventRequestBodyChunk), pool.WithTimeout(50*time.Millisecond)))
		rp, recs := bodyUpstream(t)
		_, srv := newGuard(t, rp, pl, WithBodyConfig(as[0], bc, BodyConfig{}))
		pr, pw := io.Pipe()
		go func() {
			for range 4 {
				io.WriteString(pw, "slow ")
				time.Sleep(60 * time.Millisecond) // the client's pace, not a synchronisation
			}
			pw.Close()
		}()
		st, body, _ := do(t, newClient(t), mustReq(t, "POST", srv.URL+"/", pr))
		if st != 200 || body != "got 20" {
			t.Fatalf("%v: %d %q", bc.Mode, st, body)
		}
		<-recs
	}
}

// TestGuardClientDisconnectMidBody: a client that goes away in the middle
// of its body cancels the request at the agent (reason client
// disconnect), which had seen its first chunk.
func TestGuardClientDisconnectMidBody(t *testing.T) {
	rec := newRecorder()
	var cid atomic.Value
	h := agent.Funcs{
		RequestHeaders: func(_ context.Context, ev *agentwire.RequestHeadersEvent, _ *agentwire.AgentResponse) error {
			cid.Store(ev.Metadata.CorrelationID)
			return nil
		},
		RequestBodyChunk: func(_ context.Context, ev *agentwire.BodyChunk, r *agentwire.AgentResponse) error {
			rec.mu.Lock()
			rec.chunks = append(rec.chunks, copyChunk(ev))
			rec.mu.Unlock()
			rec.note()
			r.NeedsMore = true
			return nil
		},
		Cancel: func(_ context.Context, c agentwire.Cancel) {
			rec.mu.Lock()
			rec.cancels = append(rec.cancels, c)
			rec.mu.Unlock()
			rec.note()
		},
	}
	ag := startUDSAgent(t, h)
	_, pl, as := newPipeline(t, true, agentOpts(ag.Endpoint(), pool.WithEvents(agentwire.EventRequestHeaders, agentwire.EventRequestBodyChunk)))
	rp, recs := bodyUpstream(t)
	g, srv := newGuard(t, rp, pl, WithBodyConfig(as[0], BodyConfig{Mode: ModeStream}, BodyConfig{}))

	nc, err := net.Dial("tcp", srv.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	fmt.Fprintf(nc, "POST /up HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n")
	rec.wait(t, "the first chunk", func() bool { return len(rec.chunks) == 1 })
	nc.Close()
	rec.wait(t, "a cancel", func() bool { return len(rec.cancels) == 1 })
	rec.mu.Lock()
	c := rec.cancels[0]
	rec.mu.Unlock()
	if c.CorrelationID != cid.Load().(string) || c.Reason != agentwire.CancelClientDisconnect {
		t.Fatalf("cancel %+v, want client disconnect of %s", c, cid.Load())
	}
	if got := <-recs; got.err == nil {
		t.Fatalf("the upstream got a complete body: %+v", got)
	}
	if err := g.Wait(testCtx(t)); err != nil {
		t.Fatal(err)
	}
	if s := g.Stats(); s.ClientDisconnects != 1 {
		t.Fatalf("stats %+v", s)
	}
}

// TestGuardStageOverLimit: an agent's stage that goes over its limit after
// holding part of the body (buffer and hybrid modes) passes the held bytes
// on with the rest when the agent is fail-open (skipped), and stops the
// body with the policy's 413 when it is fail-closed; nothing is sent to
// the agent.
func TestGuardStageOverLimit(t *testing.T) {
	var chunks atomic.Int64
	ag := startUDSAgent(t, agent.Funcs{RequestBodyChunk: func(context.Context, *agentwire.BodyChunk, *agentwire.AgentResponse) error {
		chunks.Add(1)
		return nil
	}})
	for _, mode := range []engine.FailureMode{engine.FailOpen, engine.FailClosed} {
		for _, bc := range []BodyConfig{{Mode: ModeBuffer}, {Mode: ModeHybrid, Threshold: 1500}} {
			_, pl, _ := newPipeline(t, true, agentOpts(ag.Endpoint(), pool.WithBodyLimits(2000, 2000), pool.WithFailurePolicy(engine.FailurePolicy{Mode: mode})))
			g, err := New(http.NotFoundHandler(), pl)
			if err != nil {
				t.Fatal(err)
			}
			x := &exchange{g: g, ctx: testCtx(t), cid: "over-" + fmt.Sprint(mode, bc.Mode)}
			pl.RequestHeaders(x.ctx, &x.pr, &agentwire.RequestHeadersEvent{Metadata: agentwire.RequestMetadata{CorrelationID: x.cid}})
			s := addStage(&x.reqSt, 0, bc)
			s.bs.Reset(x.cid, TotalFromContentLength(-1))
			if err := s.pl.Reset(bc.Mode, bc.Threshold, 2000, -1); err != nil {
				t.Fatal(err)
			}
			first, second := bytes.Repeat([]byte("1"), 1000), bytes.Repeat([]byte("2"), 1500)
			if out, err := x.runStages(x.reqSt, first, false, false); len(out) != 0 || err != nil {
				t.Fatalf("first piece: %d bytes out, %v (want held)", len(out), err)
			}
			out, err := x.runStages(x.reqSt, second, false, false)
			if mode == engine.FailOpen {
				if err != nil || string(out) != string(first)+string(second) {
					t.Fatalf("%v %v: %d bytes out, %v; want the held bytes and the piece", mode, bc.Mode, len(out), err)
				}
				if out2, err := x.runStages(x.reqSt, []byte("3"), true, false); err != nil || string(out2) != "3" {
					t.Fatalf("after the skip: %q %v", out2, err)
				}
			} else if err != ErrBlocked || x.resp.Status != 413 {
				t.Fatalf("%v %v: %v, status %d; want ErrBlocked and 413", mode, bc.Mode, err, x.resp.Status)
			}
			pl.End(&x.pr)
		}
	}
	if n := chunks.Load(); n != 0 {
		t.Fatalf("%d chunks reached the agent", n)
	}
}

// TestGuardLateBodyRead: a request body read that outlives the handler (a
// reverse proxy's transport may still be writing the body when the
// response is done) never touches a recycled exchange: a read that was
// running when ServeHTTP returned finishes the request itself (then the
// request-complete event goes out), a read after it fails with
// ErrBodyState; later requests through the guard are unaffected. Run
// under -race.
func TestGuardLateBodyRead(t *testing.T) {
	rec := newRecorder()
	h := agent.Funcs{
		RequestBodyChunk: func(_ context.Context, ev *agentwire.BodyChunk, _ *agentwire.AgentResponse) error {
			rec.mu.Lock()
			rec.chunks = append(rec.chunks, copyChunk(ev))
			rec.mu.Unlock()
			rec.note()
			return nil
		},
		RequestComplete: func(_ context.Context, ev *agentwire.RequestCompleteEvent, _ *agentwire.AgentResponse) error {
			rec.mu.Lock()
			rec.complete = append(rec.complete, *ev)
			rec.mu.Unlock()
			rec.note()
			return nil
		},
	}
	ag := startUDSAgent(t, h)
	_, pl, as := newPipeline(t, true, agentOpts(ag.Endpoint(), pool.WithEvents(agentwire.EventRequestHeaders, agentwire.EventRequestBodyChunk, agentwire.EventRequestComplete)))
	lateErrs := make(chan [2]error, 1)
	app := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/late" {
			b, _ := io.ReadAll(r.Body)
			w.Write(b)
			return
		}
		started := make(chan struct{})
		body := r.Body
		go func() {
			buf := make([]byte, 64)
			close(started)
			_, err1 := body.Read(buf) // the client sends the rest after the response
			_, err2 := body.Read(buf)
			lateErrs <- [2]error{err1, err2}
		}()
		<-started
		// Full duplex: net/http would otherwise drain the unread body
		// before answering, waiting for the read the goroutine runs.
		if err := http.NewResponseController(w).EnableFullDuplex(); err != nil {
			t.Error(err)
		}
		w.WriteHeader(http.StatusAccepted)
	})
	g, srv := newGuard(t, app, pl, WithBodyConfig(as[0], BodyConfig{Mode: ModeStream}, BodyConfig{}))
	paths := map[string]int{}
	c := newClient(t)
	for i := range 10 {
		// By hand: net/http's client would wait for its body writer.
		nc, err := net.Dial("tcp", srv.Listener.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(nc, "POST /late HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n")
		res, err := http.ReadResponse(bufio.NewReader(nc), nil)
		if err != nil || res.StatusCode != http.StatusAccepted {
			t.Fatalf("late %d: %v %v", i, res, err)
		}
		_, _ = io.WriteString(nc, "4\r\nlate\r\n0\r\n\r\n") // the server may have closed already
		errs := <-lateErrs
		nc.Close()
		switch {
		case !errors.Is(errs[0], ErrBodyState) && errors.Is(errs[1], ErrBodyState):
			// The read was running: it ended with the client's data or
			// with net/http cutting it off after the response.
			paths["read running when the handler returned"]++
		case errors.Is(errs[0], ErrBodyState) && errors.Is(errs[1], ErrBodyState):
			paths["read after the handler returned"]++
		default:
			t.Fatalf("late %d: reads returned %v, %v", i, errs[0], errs[1])
		}
		want := fmt.Sprint("normal ", i)
		if st, body, _ := do(t, c, mustReq(t, "POST", srv.URL+"/", strings.NewReader(want))); st != 200 || body != want {
			t.Fatalf("normal %d: %d %q", i, st, body)
		}
	}
	rec.wait(t, "20 request-complete events", func() bool { return len(rec.complete) == 20 })
	if err := g.Wait(testCtx(t)); err != nil {
		t.Fatal(err)
	}
	t.Logf("%v", paths)
}

// TestGuardClientDisconnectBuffering: a client that goes away while a
// buffering agent waits for its whole body (read before the handler runs)
// cancels the request at the agent; the upstream is never called.
func TestGuardClientDisconnectBuffering(t *testing.T) {
	rec := newRecorder()
	h := agent.Funcs{
		RequestHeaders: func(_ context.Context, ev *agentwire.RequestHeadersEvent, _ *agentwire.AgentResponse) error {
			rec.mu.Lock()
			rec.rheads = append(rec.rheads, agentwire.ResponseHeadersEvent{CorrelationID: ev.Metadata.CorrelationID})
			rec.mu.Unlock()
			rec.note()
			return nil
		},
		Cancel: func(_ context.Context, c agentwire.Cancel) {
			rec.mu.Lock()
			rec.cancels = append(rec.cancels, c)
			rec.mu.Unlock()
			rec.note()
		},
	}
	ag := startUDSAgent(t, h)
	_, pl, _ := newPipeline(t, true, agentOpts(ag.Endpoint(), pool.WithEvents(agentwire.EventRequestHeaders, agentwire.EventRequestBodyChunk)))
	rp, recs := bodyUpstream(t)
	g, srv := newGuard(t, rp, pl)
	nc, err := net.Dial("tcp", srv.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	fmt.Fprintf(nc, "POST /up HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\nhello")
	rec.wait(t, "the request headers", func() bool { return len(rec.rheads) == 1 })
	nc.Close()
	rec.wait(t, "a cancel", func() bool { return len(rec.cancels) == 1 })
	rec.mu.Lock()
	c, cid := rec.cancels[0], rec.rheads[0].CorrelationID
	rec.mu.Unlock()
	if c.CorrelationID != cid || c.Reason != agentwire.CancelClientDisconnect {
		t.Fatalf("cancel %+v, want client disconnect of %s", c, cid)
	}
	if err := g.Wait(testCtx(t)); err != nil {
		t.Fatal(err)
	}
	select {
	case got := <-recs:
		t.Fatalf("the upstream was called: %+v", got)
	default:
	}
}
