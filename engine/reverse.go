package engine

import (
	"context"
	"crypto/tls"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/agentwire/agentwire"
	"github.com/agentwire/agentwire/codec/frame"
	"github.com/agentwire/agentwire/internal/payload"
	"github.com/agentwire/agentwire/internal/spinread"
	"github.com/agentwire/agentwire/internal/unixsock"
)

// Reverse connections (SPEC 7): agents dial the proxy, register with a 0x01
// RegistrationRequest, get a 0x02 RegistrationResponse, and the socket then
// carries ordinary Unix-socket traffic in JSON, without a handshake. Unlike
// the reference listener (REFERENCE-DEFECTS 2.3), this one listens on Unix
// sockets and TCP (optionally TLS), compares the auth token, enforces its
// own per-agent connection limit and admits a connection before it answers
// success, reads every agent-to-proxy frame type on the connection, and
// fails pending requests at once when the connection dies.

// ReverseStats counts a listener's registrations.
type ReverseStats struct {
	Registered uint64 // connections admitted
	Rejected   uint64 // registrations answered with a failure
	Abandoned  uint64 // peers dropped without an answer (timeout, cut off, oversized frame)
	// DroppedPending counts connections closed at once, unread, because
	// WithMaxPendingRegistrations registrations were in progress.
	DroppedPending uint64
	Pending        int // connections still registering
	Active         int // admitted connections still open
}

// ReverseListener accepts reverse connections from agents and turns each
// admitted one into a *Conn for its agent id. All methods are safe for
// concurrent use. Create it with ListenReverse and release it with Close.
type ReverseListener struct {
	ln       net.Listener
	cfg      reverseOptions
	connOpts options
	log      *slog.Logger
	unixPath string      // socket file to remove on Close ("" for TCP)
	unixFile os.FileInfo // the socket file as created

	ctx       context.Context // cancelled by Close
	cancel    context.CancelFunc
	wg        sync.WaitGroup
	closeOnce sync.Once

	mu         sync.Mutex
	agents     map[string]*reverseAgent
	inProgress map[net.Conn]struct{}
	pending    int // connections still registering (WithMaxPendingRegistrations)
	closed     bool

	accepted chan *Conn
	lastMS   atomic.Int64

	registered, rejected, abandoned, droppedPending atomic.Uint64
}

// reverseAgent is the bookkeeping of one agent id: its live Conns and the
// slots reserved by registrations being admitted.
type reverseAgent struct {
	conns    []*Conn
	reserved int
}

// ListenReverse listens for reverse connections at endpoint until Close is
// called. ctx bounds the setup only, as Dial's bounds the first connection:
// ListenReverse fails when ctx has ended before it returns, and the
// listener it returned lives on after ctx ends (call Close).
//
// Invalid options and endpoints, and Conn options (WithConnOptions) that
// do not apply to reverse connections, fail at once with ErrInvalidConfig.
// At most WithMaxPendingRegistrations connections may be registering at
// once; further ones are closed at once (ReverseStats.DroppedPending).
//
// Endpoints: "unix:///path", "unix:path", a path starting with "/" or ".",
// or ending in ".sock" for a Unix socket; "tcp://host:port" or "host:port"
// for TCP (port 0 picks a free port; see Addr). A Unix socket file is
// created with mode 0600 (WithReverseSocketMode) before it becomes visible;
// a stale socket file nobody listens on is replaced, a live one or any
// other kind of file makes ListenReverse fail. WithReverseTLS adds TLS.
//
// For each connection the listener reads the registration within the
// registration timeout (a peer that is too slow, stops mid-frame or sends
// more than 64 KiB is dropped without an answer; another frame type or
// undecodable JSON is answered with the reason) and validates it:
// protocol_version must be 2, agent_id non-empty and, with
// WithAllowedAgents, listed; with WithAuthToken or WithTokenVerifier the
// token must match; the agent must be below its connection limit. Only
// then is the connection admitted, and answered success with connection_id
// "<agent_id>-<hex epoch ms>" (unique per listener); a failed validation is
// answered with the reason and the socket closed, and nothing else the
// peer sent is read. An admitted connection becomes a *Conn (JSON, the
// capabilities from the registration), delivered to the WithOnAgent
// callback or else to Accept, and listed by Conns until it closes. A
// reverse Conn never reconnects: when the socket dies its pending requests
// fail at once with ErrConnectionLost, it closes itself, and the agent is
// expected to dial again.
func ListenReverse(ctx context.Context, endpoint string, opts ...ReverseOption) (*ReverseListener, error) {
	cfg := defaultReverseOptions()
	for _, opt := range opts {
		if opt == nil {
			continue
		}
		if err := opt.applyReverse(&cfg); err != nil {
			return nil, err
		}
	}
	co := defaultOptions()
	for _, opt := range cfg.connOpts {
		if opt != nil {
			opt.apply(&co)
		}
	}
	if err := co.validate(); err != nil {
		return nil, err
	}
	if err := co.checkTransport(transportReverse); err != nil {
		return nil, err
	}
	network, addr, err := unixsock.SplitEndpoint(endpoint)
	if err != nil {
		return nil, &Error{Kind: ErrInvalidConfig, Detail: strings.TrimPrefix(err.Error(), "agentwire: ")}
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	l := &ReverseListener{
		cfg:        cfg,
		connOpts:   co,
		log:        co.logger,
		agents:     make(map[string]*reverseAgent),
		inProgress: make(map[net.Conn]struct{}),
		accepted:   make(chan *Conn, 16),
	}
	if network == "unix" {
		l.ln, l.unixFile, err = listenUnixSocket(addr, cfg.mode)
		l.unixPath = addr
	} else {
		l.ln, err = net.Listen("tcp", addr)
	}
	if err != nil {
		return nil, err
	}
	if cfg.tls != nil {
		l.ln = tls.NewListener(l.ln, cfg.tls)
	}
	l.ctx, l.cancel = context.WithCancel(context.Background())
	if err := ctx.Err(); err != nil {
		// ctx ended during the setup: the listener is not returned.
		l.ln.Close()
		l.removeSocketFile()
		return nil, err
	}
	l.wg.Add(1)
	go l.acceptLoop()
	return l, nil
}

// listenUnixSocket binds a Unix socket at path with the given permission
// bits (internal/unixsock) and returns the file's identity, so that Close
// removes only the file it created.
func listenUnixSocket(path string, mode os.FileMode) (net.Listener, os.FileInfo, error) {
	ln, err := unixsock.Listen(path, mode)
	if err != nil {
		return nil, nil, err
	}
	fi, err := os.Lstat(path)
	if err != nil {
		ln.Close()
		return nil, nil, fmt.Errorf("agentwire: socket %s vanished: %w", path, err)
	}
	return ln, fi, nil
}

// errReverseSocketInUse: another process accepts on the socket path.
var errReverseSocketInUse = unixsock.ErrInUse

// Addr returns the listener's address (the chosen port for "host:0").
func (l *ReverseListener) Addr() net.Addr { return l.ln.Addr() }

// acceptLoop accepts until the listener closes; transient errors (out of
// file descriptors) back off.
func (l *ReverseListener) acceptLoop() {
	defer l.wg.Done()
	var delay time.Duration
	for {
		nc, err := l.ln.Accept()
		if err != nil {
			if l.ctx.Err() != nil {
				return
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() || errors.Is(err, syscall.EMFILE) || errors.Is(err, syscall.ENFILE) {
				delay = min(max(2*delay, 5*time.Millisecond), time.Second)
				l.log.Warn("agentwire: reverse accept failed; retrying", "err", err, "delay", delay)
				select {
				case <-time.After(delay):
				case <-l.ctx.Done():
					return
				}
				continue
			}
			l.log.Error("agentwire: reverse listener stopped", "err", err)
			return
		}
		delay = 0
		l.mu.Lock()
		if l.closed {
			l.mu.Unlock()
			nc.Close()
			return
		}
		if l.pending >= l.cfg.maxPending {
			l.mu.Unlock()
			l.droppedPending.Add(1) // counted before the peer can see the close
			nc.Close()
			l.log.Debug("agentwire: reverse connection dropped: too many registrations in progress", "remote", nc.RemoteAddr().String(), "limit", l.cfg.maxPending)
			continue
		}
		l.pending++
		l.inProgress[nc] = struct{}{}
		l.wg.Add(1)
		l.mu.Unlock()
		go l.serve(nc)
	}
}

// serve registers one accepted connection and hands it over.
func (l *ReverseListener) serve(nc net.Conn) {
	defer l.wg.Done()
	keep := false
	registering := true
	// registered ends the connection's registration phase (it no longer
	// counts against WithMaxPendingRegistrations).
	registered := func() {
		if registering {
			registering = false
			l.mu.Lock()
			l.pending--
			l.mu.Unlock()
		}
	}
	defer func() {
		l.mu.Lock()
		delete(l.inProgress, nc)
		l.mu.Unlock()
		registered()
		if !keep {
			nc.Close()
		}
	}()
	nc.SetDeadline(time.Now().Add(l.cfg.regTimeout))
	req, err := readRegistration(nc)
	if errors.Is(err, errNotRegistration) || errors.Is(err, errBadRegistration) {
		l.reject(nc, "", err.Error()) // a readable frame: say what is wrong
		return
	}
	if err != nil { // silent, too slow, cut off or oversized: just drop it
		l.abandoned.Add(1)
		l.log.Warn("agentwire: reverse registration not received", "remote", nc.RemoteAddr().String(), "err", err)
		return
	}
	if msg := l.validate(req); msg != "" {
		l.reject(nc, req.AgentID, msg)
		return
	}
	// Admit before answering: a connection the listener cannot take is
	// refused with a reason, never accepted and then dropped (B-R6).
	if msg := l.reserve(req.AgentID); msg != "" {
		l.reject(nc, req.AgentID, msg)
		return
	}
	connID := l.connectionID(req.AgentID)
	if err := l.answer(nc, agentwire.RegistrationResponse{Success: true, ConnectionID: connID}); err != nil {
		l.release(req.AgentID)
		l.abandoned.Add(1)
		l.log.Warn("agentwire: reverse registration answer not sent", "agent_id", req.AgentID, "err", err)
		return
	}
	nc.SetDeadline(time.Time{})

	caps := req.Capabilities
	caps.ProtocolVersion = req.ProtocolVersion
	caps.SupportedEvents = grpcEventCodes(caps.SupportedEvents)
	if caps.AgentID == "" {
		caps.AgentID = req.AgentID
	}
	maxPayload, maxLen := udsLimits(&l.connOpts)
	sr := spinread.New(nc, l.connOpts.uds.spinBudget())
	t := newUDSTransport(nc, frame.NewReader(sr, maxLen), maxPayload, false, false, l.log)
	t.sr = sr
	t.wd.Timeout = l.connOpts.uds.writeTimeout
	c, err := newConn(context.Background(), &reverseDialer{t: t, caps: caps}, l.connOpts)
	if err != nil { // not expected: the dialer hands over an open socket
		l.release(req.AgentID)
		l.abandoned.Add(1)
		return
	}
	keep = true
	registered()
	if !l.admit(req.AgentID, c) {
		c.Close()
		return
	}
	l.registered.Add(1)
	l.log.Info("agentwire: reverse connection registered", "agent_id", req.AgentID, "connection_id", connID)
	if l.cfg.onAgent != nil {
		l.cfg.onAgent(req.AgentID, c)
		return
	}
	select {
	case l.accepted <- c:
	case <-l.ctx.Done():
	case <-c.closing:
		// The agent hung up before anyone accepted the connection: do
		// not keep this goroutine (and the dead Conn) until Close.
		l.log.Debug("agentwire: reverse connection ended before it was accepted", "agent_id", req.AgentID, "connection_id", connID)
	}
}

var (
	errNotRegistration = errors.New("agentwire: expected a registration request (0x01)")
	errBadRegistration = errors.New("agentwire: invalid registration request")
)

// readRegistration reads exactly one frame (no read-ahead: whatever the
// agent sends next stays in the socket for the Conn's reader) and decodes
// it as a RegistrationRequest.
func readRegistration(nc io.Reader) (*agentwire.RegistrationRequest, error) {
	var hdr [frame.HeaderSize]byte
	if _, err := io.ReadFull(nc, hdr[:]); err != nil {
		return nil, err
	}
	n := binary.BigEndian.Uint32(hdr[:4])
	switch {
	case n == 0:
		return nil, frame.ErrZeroLength
	case n > maxRegistrationSize:
		return nil, &frame.TooLargeError{Len: uint64(n), Max: maxRegistrationSize}
	case frame.Type(hdr[4]) != frame.TypeHandshakeRequest:
		return nil, fmt.Errorf("%w, got %v", errNotRegistration, frame.Type(hdr[4]))
	}
	p := make([]byte, n-1)
	if _, err := io.ReadFull(nc, p); err != nil {
		return nil, err
	}
	req := new(agentwire.RegistrationRequest)
	if err := payload.DecodeRegistrationRequestJSON(p, req); err != nil {
		return nil, fmt.Errorf("%w: %v", errBadRegistration, err)
	}
	return req, nil
}

// validate returns why req is refused, or "".
func (l *ReverseListener) validate(req *agentwire.RegistrationRequest) string {
	switch {
	case req.ProtocolVersion != agentwire.ProtocolVersion:
		return fmt.Sprintf("agentwire: protocol version mismatch: expected 2, got %d", req.ProtocolVersion)
	case req.AgentID == "":
		return "agentwire: agent id cannot be empty"
	}
	// The token is checked before the allow-list, so that a peer without
	// a valid token cannot tell allowed agent ids from others.
	if l.cfg.verify != nil {
		if !req.AuthToken.Valid {
			return "agentwire: authentication required but no token provided"
		}
		if !l.cfg.verify(req.AgentID, req.AuthToken.Value) {
			return "agentwire: authentication failed"
		}
	}
	if l.cfg.allowed != nil {
		if _, ok := l.cfg.allowed[req.AgentID]; !ok {
			return fmt.Sprintf("agentwire: agent %q is not in the allowed list", req.AgentID)
		}
	}
	return ""
}

// reserve takes a connection slot for agentID, or returns why it cannot.
func (l *ReverseListener) reserve(agentID string) string {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return "agentwire: proxy is shutting down"
	}
	a := l.agents[agentID]
	if a == nil {
		a = &reverseAgent{}
		l.agents[agentID] = a
	}
	if n := len(a.conns) + a.reserved; n >= l.cfg.maxPer {
		return fmt.Sprintf("agentwire: agent %q already has %d connections (limit %d)", agentID, n, l.cfg.maxPer)
	}
	a.reserved++
	return ""
}

// release gives back a reserved slot.
func (l *ReverseListener) release(agentID string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if a := l.agents[agentID]; a != nil {
		a.reserved--
		if a.reserved == 0 && len(a.conns) == 0 {
			delete(l.agents, agentID)
		}
	}
}

// admit turns agentID's reserved slot into c. It reports false when the
// listener closed meanwhile.
func (l *ReverseListener) admit(agentID string, c *Conn) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	a := l.agents[agentID]
	a.reserved--
	if l.closed {
		if a.reserved == 0 && len(a.conns) == 0 {
			delete(l.agents, agentID)
		}
		return false
	}
	a.conns = append(a.conns, c)
	// Forget c once it closes (its base context ends with Close, also the
	// self-close after the socket died).
	context.AfterFunc(c.baseCtx, func() { l.forget(agentID, c) })
	return true
}

func (l *ReverseListener) forget(agentID string, c *Conn) {
	l.mu.Lock()
	defer l.mu.Unlock()
	a := l.agents[agentID]
	if a == nil {
		return
	}
	for i, x := range a.conns {
		if x == c {
			a.conns = append(a.conns[:i], a.conns[i+1:]...)
			break
		}
	}
	if a.reserved == 0 && len(a.conns) == 0 {
		delete(l.agents, agentID)
	}
}

// reject answers a failed registration and counts it. On TCP the socket is
// then half-closed and drained briefly (nothing read is used), so that the
// peer's unread data does not make the kernel reset the connection and
// discard the answer before the agent has read it.
func (l *ReverseListener) reject(nc net.Conn, agentID, msg string) {
	l.rejected.Add(1)
	l.log.Warn("agentwire: reverse registration rejected", "agent_id", agentID, "reason", msg)
	if l.answer(nc, agentwire.RegistrationResponse{Error: agentwire.Some(msg)}) != nil {
		return
	}
	if cw, ok := nc.(interface{ CloseWrite() error }); ok && l.unixPath == "" {
		if cw.CloseWrite() == nil {
			nc.SetReadDeadline(time.Now().Add(time.Second))
			_, _ = io.Copy(io.Discard, io.LimitReader(nc, maxRegistrationSize))
		}
	}
}

// answer writes a 0x02 RegistrationResponse (within the registration
// deadline).
func (l *ReverseListener) answer(nc net.Conn, r agentwire.RegistrationResponse) error {
	r.ProxyID, r.ProxyVersion = l.connOpts.proxyID, l.connOpts.proxyVersion
	buf, start := frame.BeginFrame(make([]byte, 0, 256), frame.TypeHandshakeResponse)
	buf = payload.AppendRegistrationResponseJSON(buf, &r)
	if err := frame.EndFrame(buf, start); err != nil {
		return err
	}
	_, err := nc.Write(buf)
	return err
}

// connectionID returns "<agent_id>-<lowercase hex epoch ms>", with the
// milliseconds made strictly increasing per listener so that two
// registrations in the same millisecond get distinct ids (B-R10).
func (l *ReverseListener) connectionID(agentID string) string {
	now := time.Now().UnixMilli()
	for {
		last := l.lastMS.Load()
		ms := max(now, last+1)
		if l.lastMS.CompareAndSwap(last, ms) {
			return agentID + "-" + strconv.FormatInt(ms, 16)
		}
	}
}

// Accept returns the next admitted connection that was not delivered to
// a WithOnAgent callback. Admitted connections wait for Accept in a queue
// (they are listed by Conns and usable meanwhile). It fails with ErrClosed
// once the listener is closed and with ErrCanceled/ErrTimeout when ctx
// ends.
func (l *ReverseListener) Accept(ctx context.Context) (*Conn, error) {
	select {
	case c := <-l.accepted:
		return c, nil
	case <-l.ctx.Done():
		return nil, fresh(errClosed)
	case <-ctx.Done():
		return nil, fresh(ctxError(ctx))
	}
}

// Conns returns the open connections of agentID (a snapshot; nil when
// none).
func (l *ReverseListener) Conns(agentID string) []*Conn {
	l.mu.Lock()
	defer l.mu.Unlock()
	a := l.agents[agentID]
	if a == nil || len(a.conns) == 0 {
		return nil
	}
	return append([]*Conn(nil), a.conns...)
}

// Agents returns the ids of the agents with open connections.
func (l *ReverseListener) Agents() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	var ids []string
	for id, a := range l.agents {
		if len(a.conns) > 0 {
			ids = append(ids, id)
		}
	}
	return ids
}

// Stats returns the listener's counters.
func (l *ReverseListener) Stats() ReverseStats {
	st := ReverseStats{
		Registered:     l.registered.Load(),
		Rejected:       l.rejected.Load(),
		Abandoned:      l.abandoned.Load(),
		DroppedPending: l.droppedPending.Load(),
	}
	l.mu.Lock()
	st.Pending = l.pending
	for _, a := range l.agents {
		st.Active += len(a.conns)
	}
	l.mu.Unlock()
	return st
}

// Close stops accepting, drops registrations in progress, closes every
// admitted Conn (their pending calls fail with ErrClosed) and removes the
// socket file it created (unless it was replaced meanwhile). Every
// goroutine of the listener has exited when it returns. It is idempotent
// and returns the listener's close error.
func (l *ReverseListener) Close() error {
	var err error
	l.closeOnce.Do(func() {
		l.mu.Lock()
		l.closed = true
		for nc := range l.inProgress {
			nc.Close()
		}
		l.mu.Unlock()
		l.cancel()
		err = l.ln.Close()
		l.wg.Wait()
		var conns []*Conn
		l.mu.Lock()
		for _, a := range l.agents {
			conns = append(conns, a.conns...)
		}
		l.mu.Unlock()
		for _, c := range conns {
			c.Close()
		}
		// Forget them now: the per-Conn forget runs on a goroutine of its
		// own (context.AfterFunc) and may come after Close returns, and
		// Stats must not report closed connections as active.
		l.mu.Lock()
		for id, a := range l.agents {
			a.conns = nil
			if a.reserved == 0 {
				delete(l.agents, id)
			}
		}
		l.mu.Unlock()
		for {
			select {
			case c := <-l.accepted:
				c.Close()
				continue
			default:
			}
			break
		}
		l.removeSocketFile()
	})
	return err
}

// removeSocketFile removes the Unix socket file the listener created,
// unless it was replaced meanwhile.
func (l *ReverseListener) removeSocketFile() {
	if l.unixPath != "" {
		if cur, serr := os.Lstat(l.unixPath); serr == nil && os.SameFile(cur, l.unixFile) {
			os.Remove(l.unixPath)
		}
	}
}

// reverseDialer hands the registered socket to newConn once; it cannot
// open a second session (the agent dials again instead).
type reverseDialer struct {
	t    *udsTransport
	caps agentwire.Capabilities
	used atomic.Bool
}

func (d *reverseDialer) open(context.Context, *agentwire.HandshakeRequest) (transport, agentwire.Capabilities, error) {
	if d.used.Swap(true) {
		return nil, agentwire.Capabilities{}, &Error{Kind: ErrConnectFailed, Detail: "a reverse connection cannot be reopened by the proxy"}
	}
	return d.t, d.caps, nil
}

func (d *reverseDialer) close() error {
	d.t.close()
	return nil
}

func (d *reverseDialer) oneShot() {}
