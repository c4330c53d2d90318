package promstats

import (
	"errors"
	"net/http"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/agentwire/agentwire/engine/pool"
)

// TestCollectorConfig: nil sources and handlers are refused with
// ErrInvalidConfig; WithNativeHistograms(false) leaves the native form
// out of the pool's histograms (on by default); an agent with no traffic
// has its series from zero (every event kind it takes); ListenHTTP serves
// the metrics on /metrics only.
func TestCollectorConfig(t *testing.T) {
	if _, err := NewPoolCollector(nil); !errors.Is(err, ErrInvalidConfig) {
		t.Errorf("nil pool: %v", err)
	}
	if _, err := Handler(nil); !errors.Is(err, ErrInvalidConfig) {
		t.Errorf("nil collector: %v", err)
	}
	if _, err := ListenHTTP("127.0.0.1:0", nil); !errors.Is(err, ErrInvalidConfig) {
		t.Errorf("nil handler: %v", err)
	}
	p, err := pool.New()
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	if _, err := p.AddAgent("idle"); err != nil {
		t.Fatal(err)
	}
	for _, native := range []bool{true, false} {
		var opts []Option
		if !native {
			opts = append(opts, WithNativeHistograms(false))
		}
		col, err := NewPoolCollector(p, opts...)
		if err != nil {
			t.Fatal(err)
		}
		reg := prometheus.NewPedanticRegistry()
		reg.MustRegister(col)
		mfs, err := reg.Gather()
		if err != nil {
			t.Fatal(err)
		}
		for _, mf := range mfs {
			switch mf.GetName() {
			case famAgentDuration:
				if len(mf.Metric) != 7 {
					t.Errorf("%d latency histograms for an idle agent, want one per event kind", len(mf.Metric))
				}
				for _, m := range mf.Metric {
					if got := m.GetHistogram().ZeroThreshold != nil; got != native {
						t.Errorf("native %v: native form present %v", native, got)
					}
				}
			case famAgentRequests:
				if len(mf.Metric) != 7*7 {
					t.Errorf("%d request series for an idle agent, want 7 event kinds x 7 decisions", len(mf.Metric))
				}
			}
		}
	}
	col, _ := NewPoolCollector(p)
	h, err := Handler(col)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Handler(col, col); err == nil {
		t.Error("a collector registered twice was accepted")
	}
	hs, err := ListenHTTP("127.0.0.1:0", h)
	if err != nil {
		t.Fatal(err)
	}
	defer hs.Close()
	if !strings.HasSuffix(hs.URL(), "/metrics") || scrapeText(t, hs.URL())[famAgentRequests] == nil {
		t.Error("no metrics on /metrics")
	}
	resp, err := http.Get("http://" + hs.Addr() + "/")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNotFound {
		t.Errorf("GET /: %s", resp.Status)
	}
	if err := hs.Close(); err != nil {
		t.Errorf("Close: %v", err)
	}
	if err := hs.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
}
