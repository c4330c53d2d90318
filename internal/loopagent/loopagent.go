// Package loopagent is an allocation-free fake agent on a Unix socket for
// the exact allocation tests of the proxy side (engine, engine/pool,
// httpguard, promstats). Those counts cover the whole process, so the
// agent must not allocate per request for them to be the proxy side's.
// It imports no part of the proxy side, so that the engine's own tests
// can use it.
package loopagent

import (
	"bytes"
	"net"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"github.com/tinylib/msgp/msgp"

	"github.com/agentwire/agentwire"
	"github.com/agentwire/agentwire/codec/frame"
	"github.com/agentwire/agentwire/internal/payload"
)

// Config says how the agent answers.
type Config struct {
	// Encoding is the encoding the handshake announces (agentwire.EncodingJSON
	// when empty, or agentwire.EncodingMsgpack).
	Encoding string
	// SetProcessed adds the request-header operation set
	// x-agent-processed: true to every reply, as the reference echo agent
	// does.
	SetProcessed bool
}

// Start runs the agent on a new Unix socket in a temporary directory until
// the test ends, and returns the socket's path. It accepts any number of
// connections, answers each handshake with every event kind supported, and
// answers every request-headers event and request body chunk with an allow
// that carries the event's correlation id in audit.custom, built in a
// reused buffer.
func Start(tb testing.TB, c Config) string {
	if c.Encoding == "" {
		c.Encoding = agentwire.EncodingJSON
	}
	return Listen(tb, func(nc net.Conn) { serve(nc, &c) })
}

// Listen runs serve on a goroutine for every connection accepted on a new
// Unix socket in a temporary directory, and returns the socket's path.
// When the test ends it closes the listener and every accepted connection
// and waits for the serve calls to return.
func Listen(tb testing.TB, serve func(net.Conn)) string {
	tb.Helper()
	dir, err := os.MkdirTemp("", "aw-loop-")
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { os.RemoveAll(dir) })
	path := filepath.Join(dir, "a.sock")
	ln, err := net.Listen("unix", path)
	if err != nil {
		tb.Fatal(err)
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	var conns []net.Conn
	wg.Go(func() {
		for {
			nc, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, nc)
			mu.Unlock()
			wg.Go(func() { serve(nc) })
		}
	})
	tb.Cleanup(func() {
		ln.Close()
		mu.Lock()
		for _, nc := range conns {
			nc.Close()
		}
		mu.Unlock()
		wg.Wait()
	})
	return path
}

func serve(nc net.Conn, c *Config) {
	rd := frame.NewReader(nc, 0)
	defer rd.Release()
	if _, _, err := rd.ReadFrame(); err != nil {
		return
	}
	resp := agentwire.HandshakeResponse{ProtocolVersion: 2, Success: true, Encoding: c.Encoding,
		Capabilities: agentwire.Capabilities{AgentID: "loop", Name: "loop", Version: "1",
			SupportedEvents: []int32{0, 1, 2, 3, 4, 5, 6, 7},
			Features:        agentwire.FullFeatures(), Limits: agentwire.DefaultLimits()}}
	hs, _ := frame.AppendFrame(nil, frame.TypeHandshakeResponse, payload.AppendHandshakeResponseJSON(nil, &resp))
	if _, err := nc.Write(hs); err != nil {
		return
	}
	msgpack := c.Encoding == agentwire.EncodingMsgpack
	out := make([]byte, 0, 4096)
	jsonKey := []byte(`"correlation_id":"`)
	for {
		typ, p, err := rd.ReadFrame()
		if err != nil {
			return
		}
		if typ != frame.TypeRequestHeaders && typ != frame.TypeRequestBodyChunk {
			continue
		}
		var id []byte
		if msgpack {
			id, _ = payload.EventCorrelationIDMsgpack(p)
		} else if i := bytes.Index(p, jsonKey); i >= 0 {
			id = p[i+len(jsonKey):]
			id = id[:bytes.IndexByte(id, '"')]
		}
		var start int
		out, start = frame.BeginFrame(out[:0], frame.TypeAgentResponse)
		if msgpack {
			n := uint32(3)
			if c.SetProcessed {
				n++
			}
			out = msgp.AppendMapHeader(out, n)
			out = msgp.AppendString(out, "version")
			out = msgp.AppendUint32(out, 2)
			out = msgp.AppendString(out, "decision")
			out = msgp.AppendString(out, "allow")
			if c.SetProcessed {
				out = msgp.AppendString(out, "request_headers")
				out = msgp.AppendArrayHeader(out, 1)
				out = msgp.AppendMapHeader(out, 1)
				out = msgp.AppendString(out, "set")
				out = msgp.AppendMapHeader(out, 2)
				out = msgp.AppendString(out, "name")
				out = msgp.AppendString(out, "x-agent-processed")
				out = msgp.AppendString(out, "value")
				out = msgp.AppendString(out, "true")
			}
			out = msgp.AppendString(out, "audit")
			out = msgp.AppendMapHeader(out, 1)
			out = msgp.AppendString(out, "custom")
			out = msgp.AppendMapHeader(out, 1)
			out = msgp.AppendString(out, "correlation_id")
			out = msgp.AppendStringFromBytes(out, id)
		} else {
			out = append(out, `{"version":2,"decision":"allow",`...)
			if c.SetProcessed {
				out = append(out, `"request_headers":[{"set":{"name":"x-agent-processed","value":"true"}}],`...)
			}
			out = append(out, `"audit":{"custom":{"correlation_id":"`...)
			out = append(out, id...)
			out = append(out, `"}}}`...)
		}
		if frame.EndFrame(out, start) != nil {
			return
		}
		if _, err := nc.Write(out); err != nil {
			return
		}
	}
}
