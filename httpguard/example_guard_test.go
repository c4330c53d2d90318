package httpguard_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/agentwire/agentwire"
	"github.com/agentwire/agentwire/agent"
	"github.com/agentwire/agentwire/agent/refagents"
	"github.com/agentwire/agentwire/engine/pool"
	"github.com/agentwire/agentwire/httpguard"
)

// An application behind a Guard: the reference Deny agent (it blocks
// /admin and marks the other requests with X-Agent-Processed) on a Unix
// socket, one pipeline of it, the Guard around the application.
func ExampleNew() {
	dir, _ := os.MkdirTemp("", "guard")
	defer os.RemoveAll(dir)
	sock := filepath.Join(dir, "waf.sock")
	srv := agent.NewServer(refagents.Deny{})
	ln, err := srv.ListenUDS(sock)
	if err != nil {
		fmt.Println(err)
		return
	}
	go func() { _ = srv.ServeUDS(ln) }()
	defer srv.Close()

	p, _ := pool.New()
	defer p.Close()
	waf, _ := p.AddAgent("waf", pool.WithEndpoint("unix://"+sock, 1), pool.WithEvents(agentwire.EventRequestHeaders))
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = waf.WaitReady(ctx, 1)
	pl, _ := pool.NewPipeline([]pool.Step{{Agent: waf}})

	app := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "app: x-agent-processed=%s", r.Header.Get("X-Agent-Processed"))
	})
	guard, err := httpguard.New(app, pl)
	if err != nil {
		fmt.Println(err)
		return
	}
	front := httptest.NewServer(guard)
	defer front.Close()
	tr := &http.Transport{}
	defer tr.CloseIdleConnections()
	for _, path := range []string{"/x", "/admin/users"} {
		res, err := (&http.Client{Transport: tr}).Get(front.URL + path)
		if err != nil {
			fmt.Println(err)
			return
		}
		b, _ := io.ReadAll(res.Body)
		res.Body.Close()
		fmt.Println(path, res.StatusCode, strings.TrimSpace(string(b)))
	}
	// Output:
	// /x 200 app: x-agent-processed=true
	// /admin/users 403 Forbidden
}
