package promstats

import (
	"context"
	"io"
	"net/http"
	"sort"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"go.uber.org/goleak"

	"github.com/agentwire/agentwire/agent"
	"github.com/agentwire/agentwire/internal/testagent"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

const testTimeout = 20 * time.Second

func testCtx(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	t.Cleanup(cancel)
	return ctx
}

// udsAgent is a real agent on a Unix socket that can be killed
// (internal/testagent).
type udsAgent = testagent.UDS

func startUDSAgent(tb testing.TB, h agent.Handler, opts ...agent.Option) *udsAgent {
	return testagent.Start(tb, h, opts...)
}

// families is a parsed scrape.
type families map[string]*dto.MetricFamily

// scrapeText GETs url and parses the text exposition strictly (legacy
// metric and label names).
func scrapeText(t testing.TB, url string) families {
	t.Helper()
	body, header := get(t, url, "")
	if ct := header.Get("Content-Type"); !strings.HasPrefix(ct, "text/plain") {
		t.Fatalf("content type %q", ct)
	}
	p := expfmt.NewTextParser(model.LegacyValidation)
	fams, err := p.TextToMetricFamilies(strings.NewReader(body))
	if err != nil {
		t.Fatalf("parsing the scrape: %v\n%s", err, body)
	}
	return fams
}

// scrapeProto GETs url asking for the protobuf format (what carries
// native histograms) and decodes it.
func scrapeProto(t testing.TB, url string) families {
	t.Helper()
	body, header := get(t, url, string(expfmt.NewFormat(expfmt.TypeProtoDelim)))
	dec := expfmt.NewDecoder(strings.NewReader(body), expfmt.ResponseFormat(header))
	out := families{}
	for {
		var mf dto.MetricFamily
		if err := dec.Decode(&mf); err != nil {
			if err == io.EOF {
				break
			}
			t.Fatalf("decoding the protobuf scrape: %v", err)
		}
		out[mf.GetName()] = &mf
	}
	if len(out) == 0 {
		t.Fatal("empty protobuf scrape")
	}
	return out
}

func get(t testing.TB, url, accept string) (string, http.Header) {
	t.Helper()
	req, err := http.NewRequestWithContext(testCtx(t), http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	if accept != "" {
		req.Header.Set("Accept", accept)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %s\n%s", url, resp.Status, b)
	}
	return string(b), resp.Header
}

// metric returns the metric of family name whose labels include want
// (all of them), nil when there is none; it fails on several matches.
func (f families) metric(t testing.TB, name string, want map[string]string) *dto.Metric {
	t.Helper()
	mf := f[name]
	if mf == nil {
		return nil
	}
	var found *dto.Metric
	for _, m := range mf.Metric {
		if hasLabels(m, want) {
			if found != nil {
				t.Fatalf("%s%v matches several series", name, want)
			}
			found = m
		}
	}
	return found
}

// sum adds the values (counter, gauge, or histogram count) of the
// metrics of family name whose labels include want.
func (f families) sum(name string, want map[string]string) float64 {
	mf := f[name]
	if mf == nil {
		return 0
	}
	var s float64
	for _, m := range mf.Metric {
		if hasLabels(m, want) {
			s += value(m)
		}
	}
	return s
}

// value returns a metric's value (a histogram's count).
func value(m *dto.Metric) float64 {
	switch {
	case m.Counter != nil:
		return m.Counter.GetValue()
	case m.Gauge != nil:
		return m.Gauge.GetValue()
	case m.Histogram != nil:
		return float64(m.Histogram.GetSampleCount())
	case m.Untyped != nil:
		return m.Untyped.GetValue()
	}
	return 0
}

func hasLabels(m *dto.Metric, want map[string]string) bool {
	for k, v := range want {
		ok := false
		for _, l := range m.Label {
			if l.GetName() == k && l.GetValue() == v {
				ok = true
				break
			}
		}
		if !ok {
			return false
		}
	}
	return true
}

// labelValues returns the sorted distinct values of label in family name.
func (f families) labelValues(name, label string) []string {
	seen := map[string]bool{}
	if mf := f[name]; mf != nil {
		for _, m := range mf.Metric {
			for _, l := range m.Label {
				if l.GetName() == label {
					seen[l.GetValue()] = true
				}
			}
		}
	}
	out := make([]string, 0, len(seen))
	for v := range seen {
		out = append(out, v)
	}
	sort.Strings(out)
	return out
}

// L builds a label set from name, value pairs.
func L(kv ...string) map[string]string {
	m := make(map[string]string, len(kv)/2)
	for i := 0; i+1 < len(kv); i += 2 {
		m[kv[i]] = kv[i+1]
	}
	return m
}

// eventually polls cond (with a scrape or a read of atomics behind it)
// until it holds or the test's time runs out; for states with no event
// to wait on.
func eventually(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(testTimeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}
