package waf

import (
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/corazawaf/coraza/v3"
	corazahttp "github.com/corazawaf/coraza/v3/http"
	"github.com/corazawaf/coraza/v3/types"

	"github.com/agentwire/agentwire"
	"github.com/agentwire/agentwire/internal/wafcorpus"
)

// oracle evaluates a request in-process with Coraza's own net/http
// middleware, over a WAF built from the same configuration as the agent's,
// and records which logged rules of the request phases (1 and 2) matched.
type oracle struct {
	waf  coraza.WAF
	mu   sync.Mutex
	hits []string
}

func newOracle(t testing.TB, opts ...Option) *oracle {
	t.Helper()
	o := &oracle{}
	wc, err := CorazaConfig(opts...)
	if err != nil {
		t.Fatal(err)
	}
	w, err := coraza.NewWAF(wc.WithErrorCallback(func(m types.MatchedRule) {
		if m.Rule().Phase() <= types.PhaseRequestBody {
			o.mu.Lock()
			o.hits = append(o.hits, strconv.Itoa(m.Rule().ID()))
			o.mu.Unlock()
		}
	}))
	if err != nil {
		t.Fatal(err)
	}
	o.waf = w
	return o
}

// verdict is what the differential compares.
type verdict struct {
	blocked bool
	status  int
	rules   []string // sorted, unique
}

func sortedUnique(ids []string) []string {
	ids = slices.Clone(ids)
	slices.Sort(ids)
	return slices.Compact(ids)
}

// eval runs r through the middleware (one request at a time: the rule
// hits are collected per call).
func (o *oracle) eval(t testing.TB, r *wafcorpus.Request) verdict {
	t.Helper()
	req, err := r.HTTPRequest()
	if err != nil {
		t.Fatal(err)
	}
	if got := req.URL.String(); got != r.Target {
		t.Fatalf("%s: the middleware would inspect %q, not the request target %q: fix the corpus entry", r.Name, got, r.Target)
	}
	called := false
	h := corazahttp.WrapHandler(o.waf, http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		called = true
		_, _ = io.Copy(io.Discard, req.Body)
		w.Header().Set("Content-Type", "text/plain")
		_, _ = w.Write([]byte("ok"))
	}))
	o.mu.Lock()
	o.hits = o.hits[:0]
	o.mu.Unlock()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	o.mu.Lock()
	defer o.mu.Unlock()
	return verdict{blocked: !called, status: rec.Code, rules: sortedUnique(o.hits)}
}

func agentVerdict(resp *agentwire.AgentResponse) verdict {
	v := verdict{rules: sortedUnique(resp.Audit.RuleIDs)}
	if resp.Decision.Kind == agentwire.DecisionBlock {
		v.blocked, v.status = true, int(resp.Decision.Status)
	} else {
		v.status = 200
	}
	return v
}

// chunkSizes are the body chunk sizes per transport: the verdict must not
// depend on how a body is cut.
var chunkSizes = map[string]int{"uds-json": 64, "uds-msgpack": 1 << 20, "grpc": 17}

// TestDifferentialCRS is the differential test of the issue: for every
// corpus request (attacks of each CRS family, benign traffic with bodies
// and multipart forms), the verdict of the agent through the engine, over
// the Unix socket (JSON and MessagePack) and over gRPC, equals the verdict
// of Coraza's net/http middleware with the same rules in-process: blocked
// or not, the block status, and the set of logged rules of the request
// phases that matched. The corpus's own labels (attack or benign) are
// checked against the oracle too.
func TestDifferentialCRS(t *testing.T) {
	opts := []Option{WithParanoia(1)}
	o := newOracle(t, opts...)
	a := newAgent(t, opts...)
	trs := transports(t, a)
	ctx := testCtx(t)
	families := map[string]int{}
	for i := range wafcorpus.All {
		r := &wafcorpus.All[i]
		want := o.eval(t, r)
		if want.blocked != r.Attack {
			t.Errorf("%s: the oracle blocked=%v (status %d, rules %v), the corpus says attack=%v", r.Name, want.blocked, want.status, want.rules, r.Attack)
		}
		if want.blocked {
			families[r.Family]++
		}
		for _, tr := range trs {
			cid := tr.name + "-" + r.Name
			resp, more, err := sendRequest(ctx, tr.c, r, cid, chunkSizes[tr.name])
			if err != nil {
				t.Fatalf("%s over %s: %v", r.Name, tr.name, err)
			}
			got := agentVerdict(resp)
			if got.blocked != want.blocked || got.status != want.status || !slices.Equal(got.rules, want.rules) {
				t.Errorf("%s over %s: agent %+v, in-process Coraza %+v", r.Name, tr.name, got, want)
			}
			if resp.NeedsMore {
				t.Errorf("%s over %s: the final reply still asks for more", r.Name, tr.name)
			}
			if r.Body != "" && !want.blocked && more == 0 {
				t.Errorf("%s over %s: a request with a body was decided without it", r.Name, tr.name)
			}
			if got.blocked && !slices.Contains(resp.Audit.Tags, TagBlocked) {
				t.Errorf("%s over %s: block without the %s tag: %+v", r.Name, tr.name, TagBlocked, resp.Audit)
			}
		}
	}
	for _, f := range []string{wafcorpus.SQLi, wafcorpus.XSS, wafcorpus.RCE, wafcorpus.LFI, wafcorpus.RFI, wafcorpus.PHP, wafcorpus.Java, wafcorpus.Protocol, wafcorpus.Scanner} {
		if families[f] == 0 {
			t.Errorf("no blocked request of family %s in the corpus", f)
		}
	}
	st := a.Stats()
	if st.Open != 0 || st.Opened != st.Closed || st.Errors != 0 || st.Opened != uint64(len(wafcorpus.All)*len(trs)) {
		t.Errorf("after the corpus: %+v (want every transaction closed, none failed)", st)
	}
}

// TestDifferentialDetectionOnly: in detection-only mode the agent allows
// every request and reports the same rules as in-process Coraza in
// detection-only mode, and the would-block tag exactly where blocking
// Coraza blocks, with the status it blocks with.
func TestDifferentialDetectionOnly(t *testing.T) {
	block := newOracle(t)
	detect := newOracle(t, WithDetectionOnly())
	a := newAgent(t, WithDetectionOnly())
	uds, _ := serve(t, a, serverOpts(a)...)
	c := dial(t, uds)
	ctx := testCtx(t)
	for i := range wafcorpus.All {
		r := &wafcorpus.All[i]
		wantBlock, wantDetect := block.eval(t, r), detect.eval(t, r)
		if wantDetect.blocked {
			t.Fatalf("%s: detection-only Coraza blocked", r.Name)
		}
		resp, _, err := sendRequest(ctx, c, r, "do-"+r.Name, 100)
		if err != nil {
			t.Fatal(err)
		}
		got := agentVerdict(resp)
		if got.blocked || !slices.Equal(got.rules, wantDetect.rules) {
			t.Errorf("%s: agent %+v, detection-only Coraza %+v", r.Name, got, wantDetect)
		}
		would := slices.Contains(resp.Audit.Tags, TagWouldBlock)
		if would != wantBlock.blocked {
			t.Errorf("%s: would-block tag %v, blocking Coraza blocked=%v", r.Name, would, wantBlock.blocked)
		}
		if would {
			raw := string(resp.Audit.Custom[CustomKey])
			if want := `"status":` + strconv.Itoa(wantBlock.status); !strings.Contains(raw, want) || !strings.Contains(raw, `"detection_only":true`) {
				t.Errorf("%s: custom %s, want %s and detection_only", r.Name, raw, want)
			}
		}
		if len(got.rules) > 0 && !slices.Contains(resp.Audit.Tags, TagDetectionOnly) {
			t.Errorf("%s: audit without the %s tag: %+v", r.Name, TagDetectionOnly, resp.Audit)
		}
	}
	if st := a.Stats(); st.Blocked != 0 || st.Open != 0 || st.Detected == 0 {
		t.Errorf("stats %+v", st)
	}
}
