package httpguard

import (
	"bytes"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strings"
	"testing"
	"testing/iotest"
)

// plannerHooks runs a body through a Planner and a mutation.
type plannerHooks struct {
	p      Planner
	mutate func([]byte) []byte
	fail   error // returned by Body for a chunk containing "EVIL"
	chunks []string
	ended  int
}

func newPlannerHooks(mode BodyMode, threshold int, limit int64, mutate func([]byte) []byte) *plannerHooks {
	h := &plannerHooks{mutate: mutate}
	_ = h.p.Reset(mode, threshold, limit, -1)
	return h
}

func (h *plannerHooks) Body(p []byte) ([]byte, error) {
	chunk, _, send, err := h.p.Feed(p, false)
	if err != nil || !send {
		return nil, err
	}
	return h.apply(chunk)
}

func (h *plannerHooks) End() ([]byte, error) {
	h.ended++
	chunk, _, send, err := h.p.Feed(nil, true)
	if err != nil || !send {
		return nil, err
	}
	return h.apply(chunk)
}

func (h *plannerHooks) apply(chunk []byte) ([]byte, error) {
	h.chunks = append(h.chunks, string(chunk))
	if h.fail != nil && bytes.Contains(chunk, []byte("EVIL")) {
		return nil, h.fail
	}
	if h.mutate != nil {
		return h.mutate(chunk), nil
	}
	return chunk, nil
}

func TestBodyReader(t *testing.T) {
	body := strings.Repeat("0123456789", 50) // 500 bytes
	double := func(b []byte) []byte { return bytes.Repeat(b, 2) }
	drop3 := func(b []byte) []byte { return b[min(3, len(b)):] }
	for _, tc := range []struct {
		name   string
		mode   BodyMode
		thr    int
		mutate func([]byte) []byte
		want   string
	}{
		{"stream pass", ModeStream, 0, nil, body},
		{"buffer pass", ModeBuffer, 0, nil, body},
		{"hybrid pass", ModeHybrid, 64, nil, body},
		{"stream grows", ModeStream, 0, double, ""},
		{"buffer grows", ModeBuffer, 0, double, strings.Repeat(body, 2)},
		{"stream shrinks", ModeStream, 0, drop3, ""},
		{"stream drops", ModeStream, 0, func([]byte) []byte { return nil }, ""},
	} {
		for _, rd := range []struct {
			name string
			wrap func(io.Reader) io.Reader
		}{{"whole", func(r io.Reader) io.Reader { return r }}, {"one byte", iotest.OneByteReader}, {"half", iotest.HalfReader}, {"data+EOF", iotest.DataErrReader}} {
			h := newPlannerHooks(tc.mode, tc.thr, NoLimit, tc.mutate)
			br := NewBodyReader(io.NopCloser(rd.wrap(strings.NewReader(body))), h)
			// Read with a small buffer, reusing it, as a proxy does.
			var got []byte
			buf := make([]byte, 7)
			for {
				n, err := br.Read(buf)
				got = append(got, buf[:n]...)
				clear(buf) // the reader must not rely on the caller's buffer
				if err == io.EOF {
					break
				}
				if err != nil {
					t.Fatalf("%s/%s: %v", tc.name, rd.name, err)
				}
			}
			want := tc.want
			if want == "" && tc.mutate != nil {
				for _, c := range h.chunks {
					want += string(tc.mutate([]byte(c)))
				}
			}
			if string(got) != want {
				t.Errorf("%s/%s: got %d bytes %.40q..., want %d", tc.name, rd.name, len(got), got, len(want))
			}
			if client, handler := br.Sizes(); client != 500 || handler != int64(len(want)) || h.ended != 1 || br.Err() != io.EOF {
				t.Errorf("%s/%s: sizes %d %d ended %d err %v", tc.name, rd.name, client, handler, h.ended, br.Err())
			}
			if tc.mode == ModeBuffer && len(h.chunks) != 1 {
				t.Errorf("%s/%s: buffered body sent as %d chunks", tc.name, rd.name, len(h.chunks))
			}
		}
	}
}

// TestBodyReaderErrors: a hook error and a client read error end the
// body at once, and keep ending it.
func TestBodyReaderErrors(t *testing.T) {
	blocked := errors.New("blocked by agent")
	h := newPlannerHooks(ModeStream, 0, NoLimit, nil)
	h.fail = blocked
	br := NewBodyReader(io.NopCloser(strings.NewReader("fine EVIL more")), h)
	buf := make([]byte, 5)
	n, err := br.Read(buf)
	if n != 5 || err != nil {
		t.Fatalf("%d %v", n, err)
	}
	for range 2 {
		if _, err := br.Read(buf); !errors.Is(err, blocked) {
			t.Errorf("after a block: %v", err)
		}
	}
	if h.ended != 0 {
		t.Error("End ran after a block")
	}

	cut := errors.New("client went away")
	h = newPlannerHooks(ModeBuffer, 0, NoLimit, nil)
	br = NewBodyReader(io.NopCloser(io.MultiReader(strings.NewReader("partial"), iotest.ErrReader(cut))), h)
	if _, err := io.ReadAll(br); !errors.Is(err, cut) || h.ended != 0 || !errors.Is(br.Err(), cut) {
		t.Errorf("client error: %v ended %d", err, h.ended)
	}

	// Over a fail-closed agent's limit: the Planner's ErrBodyTooLarge.
	h = newPlannerHooks(ModeBuffer, 0, 10, nil)
	br = NewBodyReader(io.NopCloser(strings.NewReader(strings.Repeat("x", 11))), h)
	if _, err := io.ReadAll(br); !errors.Is(err, ErrBodyTooLarge) {
		t.Errorf("over the limit: %v", err)
	}
}

// TestBodyReaderThroughReverseProxy: the upstream receives the hooks'
// body, streamed chunked or buffered, never the client's original.
func TestBodyReaderThroughReverseProxy(t *testing.T) {
	var got string
	upstream := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		got = string(b)
	}))
	defer upstream.Close()
	u, _ := url.Parse(upstream.URL)
	rp := httputil.NewSingleHostReverseProxy(u)
	tr := &http.Transport{}
	defer tr.CloseIdleConnections()
	rp.Transport = tr
	for _, mode := range []BodyMode{ModeStream, ModeBuffer} {
		front := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			h := newPlannerHooks(mode, 0, NoLimit, bytes.ToUpper)
			r.Body = NewBodyReader(r.Body, h)
			r.ContentLength = -1 // the body may change length
			r.Header.Del("Content-Length")
			rp.ServeHTTP(w, r)
		}))
		req, _ := http.NewRequestWithContext(testCtx(t), "POST", front.URL, strings.NewReader("secret=abc"))
		resp, err := front.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		front.Client().CloseIdleConnections()
		front.Close()
		if resp.StatusCode != 200 || got != "SECRET=ABC" {
			t.Errorf("%v: %d upstream got %q", mode, resp.StatusCode, got)
		}
	}
}
