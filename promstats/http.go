package promstats

import (
	"errors"
	"fmt"
	"net"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Handler returns an http.Handler that serves the metrics of the
// collectors cs, registered on a registry of their own, in the Prometheus
// exposition formats: text, or protobuf to a scraper that asks for it
// (the format that carries native histograms). A family that fails to
// gather is left out and the rest still served (promhttp.ContinueOnError).
// It fails when a collector cannot be registered (a nil one, or two that
// describe one family). The handler is safe for concurrent use.
func Handler(cs ...prometheus.Collector) (http.Handler, error) {
	reg := prometheus.NewRegistry()
	for i, c := range cs {
		if c == nil {
			return nil, invalidf("collector %d is nil", i)
		}
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("agentwire: promstats: registering collector %d: %w", i, err)
		}
	}
	return promhttp.HandlerFor(reg, promhttp.HandlerOpts{ErrorHandling: promhttp.ContinueOnError}), nil
}

// MetricsPath is the path ListenHTTP serves the metrics on.
const MetricsPath = "/metrics"

// HTTPServer serves a metrics handler on MetricsPath (ListenHTTP). Its
// methods are safe for concurrent use.
type HTTPServer struct {
	srv  *http.Server
	ln   net.Listener
	done chan struct{}
	err  error
}

// ListenHTTP binds addr (host:port; port 0 picks a free one) and serves h
// on MetricsPath, and 404 elsewhere, on one goroutine of its own until
// Close. Requests must send their headers within 10 s.
func ListenHTTP(addr string, h http.Handler) (*HTTPServer, error) {
	if h == nil {
		return nil, invalidf("nil handler")
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("agentwire: promstats: listen %s: %w", addr, err)
	}
	mux := http.NewServeMux()
	mux.Handle(MetricsPath, h)
	s := &HTTPServer{
		srv:  &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second},
		ln:   ln,
		done: make(chan struct{}),
	}
	go func() {
		defer close(s.done)
		if err := s.srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
			s.err = err
		}
	}()
	return s, nil
}

// Addr returns the address the server is bound to (host:port).
func (s *HTTPServer) Addr() string { return s.ln.Addr().String() }

// URL returns the metrics URL, http://Addr()/metrics.
func (s *HTTPServer) URL() string { return "http://" + s.Addr() + MetricsPath }

// Close stops the server at once (scrapes in progress are cut) and returns
// after its goroutine has exited, with the error that stopped it early,
// if any. It is idempotent.
func (s *HTTPServer) Close() error {
	_ = s.srv.Close()
	<-s.done
	return s.err
}
