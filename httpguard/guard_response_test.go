package httpguard

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/agentwire/agentwire"
	"github.com/agentwire/agentwire/agent"
	"github.com/agentwire/agentwire/engine"
	"github.com/agentwire/agentwire/engine/pool"
)

// respAgent blocks response bodies containing "leak" and masks
// "hunter2"; it records the chunks it saw.
func respAgent(rec *recorder) agent.Funcs {
	return agent.Funcs{ResponseBodyChunk: func(_ context.Context, ev *agentwire.BodyChunk, r *agentwire.AgentResponse) error {
		rec.mu.Lock()
		rec.rchunks = append(rec.rchunks, copyChunk(ev))
		rec.mu.Unlock()
		rec.note()
		if bytes.Contains(ev.Data, []byte("leak")) {
			r.Decision = agentwire.Block(403)
			return nil
		}
		if bytes.Contains(ev.Data, []byte("hunter2")) {
			r.ResponseBodyMutation = agentwire.Some(agentwire.BodyMutation{Action: agentwire.MutationReplace, Data: bytes.ReplaceAll(ev.Data, []byte("hunter2"), []byte("***"))})
		}
		return nil
	}}
}

var respEvents = pool.WithEvents(agentwire.EventRequestHeaders, agentwire.EventResponseBodyChunk)

// TestGuardResponseBodyBuffer: a buffering agent sees the whole response
// body in one last chunk before the client gets any of it, the status
// included: its block replaces the response (even when the upstream
// streams it with flushes), its mutation reaches the client without a
// stale Content-Length.
func TestGuardResponseBodyBuffer(t *testing.T) {
	rec := newRecorder()
	ag := startUDSAgent(t, respAgent(rec))
	_, pl, _ := newPipeline(t, true, agentOpts(ag.Endpoint(), respEvents))
	up := newTestServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/pw":
			io.WriteString(w, "password=hunter2")
		case "/leak":
			io.WriteString(w, "the leak is here")
		case "/leak-streamed":
			io.WriteString(w, "part one, ")
			w.(http.Flusher).Flush()
			io.WriteString(w, "the leak")
		}
	}))
	g, srv := newGuard(t, reverseProxy(t, up.URL), pl)
	c := newClient(t)
	st, body, _ := do(t, c, mustReq(t, "GET", srv.URL+"/pw", nil))
	if st != 200 || body != "password=***" {
		t.Fatalf("/pw: %d %q", st, body)
	}
	for _, p := range []string{"/leak", "/leak-streamed"} {
		st, body, _ = do(t, c, mustReq(t, "GET", srv.URL+p, nil))
		if st != 403 || body != "Forbidden\n" {
			t.Fatalf("%s: %d %q, want the block's response", p, st, body)
		}
	}
	if s := g.Stats(); s.ResponseBodyBlocked != 2 || s.Aborted != 0 {
		t.Fatalf("stats %+v", s)
	}
	rec.mu.Lock()
	defer rec.mu.Unlock()
	if len(rec.rchunks) != 3 {
		t.Fatalf("%d chunks, want one per response", len(rec.rchunks))
	}
	for i, want := range []string{"password=hunter2", "the leak is here", "part one, the leak"} {
		if ch := rec.rchunks[i]; string(ch.Data) != want || !ch.IsLast || ch.ChunkIndex != 0 {
			t.Fatalf("chunk %d: %q last=%v index=%d", i, ch.Data, ch.IsLast, ch.ChunkIndex)
		}
	}
}

// TestGuardResponseBodyStream: a streaming agent's response is not
// buffered (the client reads the first part while the upstream still
// holds the rest), and a block after the headers went out cuts the
// response off: the client sees a broken response, not a complete one.
func TestGuardResponseBodyStream(t *testing.T) {
	rec := newRecorder()
	ag := startUDSAgent(t, respAgent(rec))
	_, pl, as := newPipeline(t, true, agentOpts(ag.Endpoint(), respEvents))
	release := make(chan struct{})
	up := newTestServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "part one, ")
		w.(http.Flusher).Flush()
		<-release
		io.WriteString(w, "the leak")
	}))
	g, srv := newGuard(t, reverseProxy(t, up.URL), pl, WithBodyConfig(as[0], BodyConfig{}, BodyConfig{Mode: ModeStream}))
	res, err := newClient(t).Do(mustReq(t, "GET", srv.URL+"/", nil))
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	buf := make([]byte, len("part one, "))
	if _, err := io.ReadFull(res.Body, buf); err != nil || string(buf) != "part one, " || res.StatusCode != 200 {
		t.Fatalf("first part: %q %v (status %d)", buf, err, res.StatusCode)
	}
	close(release)
	rest, err := io.ReadAll(res.Body)
	if err == nil || !errors.Is(err, io.ErrUnexpectedEOF) || strings.Contains(string(rest), "leak") {
		t.Fatalf("rest %q, %v; want the response cut off", rest, err)
	}
	if err := g.Wait(testCtx(t)); err != nil {
		t.Fatal(err)
	}
	if s := g.Stats(); s.Aborted != 1 || s.ResponseBodyBlocked != 1 {
		t.Fatalf("stats %+v", s)
	}
}

// TestGuardResponseBodyLimit: a response over a fail-closed agent's limit
// is answered by its policy (413) as soon as its Content-Length says so;
// a fail-open agent is skipped and the body passes intact.
func TestGuardResponseBodyLimit(t *testing.T) {
	rec := newRecorder()
	ag := startUDSAgent(t, respAgent(rec))
	body := strings.Repeat("y", 100)
	up := newTestServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, body) }))
	c := newClient(t)
	for _, tc := range []struct {
		mode engine.FailureMode
		st   int
		body string
	}{{engine.FailClosed, 413, http.StatusText(413) + "\n"}, {engine.FailOpen, 200, body}} {
		_, pl, _ := newPipeline(t, true, agentOpts(ag.Endpoint(), respEvents, pool.WithBodyLimits(10, 10), pool.WithFailurePolicy(engine.FailurePolicy{Mode: tc.mode})))
		_, srv := newGuard(t, reverseProxy(t, up.URL), pl)
		if st, got, _ := do(t, c, mustReq(t, "GET", srv.URL+"/", nil)); st != tc.st || got != tc.body {
			t.Fatalf("%v: %d %q", tc.mode, st, got)
		}
	}
	rec.mu.Lock()
	defer rec.mu.Unlock()
	if len(rec.rchunks) != 0 {
		t.Fatalf("%d chunks reached the agent", len(rec.rchunks))
	}
}
