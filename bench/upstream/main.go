// Command upstream is the HTTP service behind `agentwire gateway` in
// bench/gateway.sh: GET (any path) answers "ok" at once; POST reads the
// request body, at most --sink-rate bytes per second per request when set
// (so that many requests stay in flight with their bodies streaming), and
// answers the number of bytes read. It prints "listening on http://ADDR"
// on stdout once it accepts connections and runs until SIGTERM or SIGINT.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strconv"
	"syscall"
	"time"
)

func main() {
	listen := flag.String("listen", "127.0.0.1:0", "HOST:PORT to listen on")
	rate := flag.Int("sink-rate", 0, "bytes per second a POST body is read at, per request (0: as fast as it comes)")
	flag.Parse()
	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		fmt.Fprintln(os.Stderr, "upstream:", err)
		os.Exit(1)
	}
	srv := &http.Server{Handler: handler(*rate), ReadHeaderTimeout: 10 * time.Second}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	go func() {
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(sctx)
	}()
	fmt.Printf("listening on http://%s\n", ln.Addr())
	if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
		fmt.Fprintln(os.Stderr, "upstream:", err)
		os.Exit(1)
	}
}

var ok = []byte("ok")

func handler(rate int) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost {
			w.Header().Set("Content-Length", "2")
			_, _ = w.Write(ok)
			return
		}
		n, err := sink(r.Body, rate)
		if err != nil {
			w.WriteHeader(http.StatusBadRequest)
			return
		}
		_, _ = io.WriteString(w, strconv.FormatInt(n, 10))
	})
}

// sink reads body to its end, at most rate bytes per second when rate > 0.
func sink(body io.Reader, rate int) (int64, error) {
	if rate <= 0 {
		return io.Copy(io.Discard, body)
	}
	const tick = 50 * time.Millisecond
	per := max(rate/int(time.Second/tick), 1)
	buf := make([]byte, per)
	var total int64
	t := time.NewTicker(tick)
	defer t.Stop()
	for {
		n, err := io.ReadFull(body, buf)
		total += int64(n)
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			return total, nil
		}
		if err != nil {
			return total, err
		}
		<-t.C
	}
}
