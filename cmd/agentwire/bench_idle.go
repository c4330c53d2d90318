package main

import (
	"context"
	"fmt"
	"runtime"
	"runtime/debug"
	"strings"
	"time"

	"github.com/agentwire/agentwire/bench"
)

// idleReport is the --idle part of bench's report: the resident memory
// (VmRSS, KiB) of this process (the proxy side) and, with --agent-pid, of
// the agent, before any connection was opened, with the connections open
// and idle before the load, and idle again after it; and what each
// connection added, per side. This process returns its free memory to the
// operating system before each reading (runtime/debug.FreeOSMemory); the
// agent process is read as it is, so its after-load figure also holds
// whatever garbage it has not collected yet (an upper bound).
type idleReport struct {
	Conns int     `json:"conns"`
	WaitS float64 `json:"wait_s"`

	ProxyRSSKiBBefore        int64   `json:"proxy_rss_kib_before"`
	ProxyRSSKiBIdle          int64   `json:"proxy_rss_kib_idle"`
	ProxyKiBPerConn          float64 `json:"proxy_kib_per_conn"`
	ProxyRSSKiBAfterLoad     int64   `json:"proxy_rss_kib_after_load"`
	ProxyKiBPerConnAfterLoad float64 `json:"proxy_kib_per_conn_after_load"`

	AgentRSSKiBBefore        int64   `json:"agent_rss_kib_before,omitempty"`
	AgentRSSKiBIdle          int64   `json:"agent_rss_kib_idle,omitempty"`
	AgentKiBPerConn          float64 `json:"agent_kib_per_conn,omitempty"`
	AgentRSSKiBAfterLoad     int64   `json:"agent_rss_kib_after_load,omitempty"`
	AgentKiBPerConnAfterLoad float64 `json:"agent_kib_per_conn_after_load,omitempty"`
}

// rssPair is one reading of both sides' resident memory (agent 0 without
// an agent pid).
type rssPair struct{ proxy, agent int64 }

// readRSS waits wait (or until ctx ends), returns this process's free
// memory to the operating system and reads both sides' resident memory.
func readRSS(ctx context.Context, wait time.Duration, agentPID int) (rssPair, error) {
	if wait > 0 {
		t := time.NewTimer(wait)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return rssPair{}, ctx.Err()
		}
	}
	runtime.GC()
	debug.FreeOSMemory()
	var p rssPair
	var err error
	if p.proxy, err = bench.ProcessRSS(0); err != nil {
		return p, err
	}
	if agentPID > 0 {
		if p.agent, err = bench.ProcessRSS(agentPID); err != nil {
			return p, fmt.Errorf("agent process: %w", err)
		}
	}
	return p, nil
}

// fill completes the report from the three readings.
func (r *idleReport) fill(before, idle, after rssPair) {
	n := float64(r.Conns)
	r.ProxyRSSKiBBefore, r.ProxyRSSKiBIdle, r.ProxyRSSKiBAfterLoad = before.proxy, idle.proxy, after.proxy
	r.ProxyKiBPerConn = float64(idle.proxy-before.proxy) / n
	r.ProxyKiBPerConnAfterLoad = float64(after.proxy-before.proxy) / n
	if before.agent > 0 {
		r.AgentRSSKiBBefore, r.AgentRSSKiBIdle, r.AgentRSSKiBAfterLoad = before.agent, idle.agent, after.agent
		r.AgentKiBPerConn = float64(idle.agent-before.agent) / n
		r.AgentKiBPerConnAfterLoad = float64(after.agent-before.agent) / n
	}
}

// writeIdleRows writes the --idle and --window rows of the text report.
func writeIdleRows(b *strings.Builder, rep *benchReport) {
	for _, w := range rep.Windows {
		fmt.Fprintf(b, "window %5.1fs    %.0f requests/s, p50 %s, p99 %s, max %s\n",
			w.StartS, w.RequestsPerSec, fmtUs(w.P50us), fmtUs(w.P99us), fmtUs(w.MaxUs))
	}
	if r := rep.Idle; r != nil {
		fmt.Fprintf(b, "idle conns       %d, after %.1fs idle: proxy RSS %d -> %d KiB (%.1f KiB/conn), after the load %d KiB (%.1f KiB/conn)\n",
			r.Conns, r.WaitS, r.ProxyRSSKiBBefore, r.ProxyRSSKiBIdle, r.ProxyKiBPerConn, r.ProxyRSSKiBAfterLoad, r.ProxyKiBPerConnAfterLoad)
		if r.AgentRSSKiBBefore > 0 {
			fmt.Fprintf(b, "                 agent RSS %d -> %d KiB (%.1f KiB/conn), after the load %d KiB (%.1f KiB/conn)\n",
				r.AgentRSSKiBBefore, r.AgentRSSKiBIdle, r.AgentKiBPerConn, r.AgentRSSKiBAfterLoad, r.AgentKiBPerConnAfterLoad)
		}
	}
}
