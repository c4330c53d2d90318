package main

import (
	"syscall"
	"testing"
	"time"
)

// TestServeRestartAfterKill: serve started again on the socket path of a
// killed serve (its socket file left behind) reports it listens, every
// time. Watching for a socket file other than the stale one missed the
// restarts whose new socket got the stale one's inode number.
func TestServeRestartAfterKill(t *testing.T) {
	sock := shortSocketPath(t, "r.sock")
	for i := range 8 {
		p := startProc(t, "serve", "--listen", "unix://"+sock, "--agent", "echo")
		if m := listeningRE.FindStringSubmatch(waitMatchOrEmpty(&p.stderr, 5*time.Second)); m == nil {
			t.Fatalf("start %d: no listening line within 5s; stderr: %q", i, p.stderr.String())
		}
		p.stop(t, syscall.SIGKILL)
	}
}

// waitMatchOrEmpty waits up to d for listeningRE in buf and returns the
// buffer's content.
func waitMatchOrEmpty(buf *syncBuffer, d time.Duration) string {
	deadline := time.Now().Add(d)
	for !listeningRE.MatchString(buf.String()) && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	return buf.String()
}
