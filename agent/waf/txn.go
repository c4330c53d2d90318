package waf

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"

	"github.com/corazawaf/coraza/v3/types"
	"github.com/puzpuzpuz/xsync/v4"

	"github.com/agentwire/agentwire"
)

// closeReason says why a transaction was closed (Stats.Closed*).
type closeReason uint8

const (
	closeDone closeReason = iota
	closeComplete
	closeCancel
	closeExpired
	closeReplaced
	closeError
	closeShutdown
	closeReasons // number of reasons
)

var closeReasonNames = [closeReasons]string{"done", "complete", "cancel", "expired", "replaced", "error", "shutdown"}

func (r closeReason) String() string { return closeReasonNames[r] }

// stage is the event a transaction waits for.
type stage uint8

const (
	stRequestHeaders  stage = iota // being created (request headers under inspection)
	stRequestBody                  // request body chunks
	stResponseHeaders              // response headers
	stResponseBody                 // response body chunks
)

// txn is the state of one request: its Coraza transaction and where the
// request is in its event sequence. Everything but kill and last is
// guarded by mu, which an event holds while it inspects.
type txn struct {
	mu  sync.Mutex
	cid string
	// tx is the Coraza transaction; nil once the rules are done with the
	// request while the entry waits for the end of the current body (whose
	// remaining chunks are answered without inspection).
	tx    types.Transaction
	proto string
	stage stage
	// decided: the phase of the current body has run (at its end, or early
	// when Coraza's body limit was reached); further chunks of that body
	// are absorbed.
	decided  bool
	head     bool // HEAD request: its response has no body
	detected bool // a detection-only interruption was counted
	closing  bool // close when the current event ends
	closeWhy closeReason
	removed  bool // closed and removed from the table

	// kill is a close requested by a cancel or by Close while an event
	// held mu: closeReason+1, 0 for none. Whoever unlocks mu next closes.
	kill atomic.Int32
	// last is the agent clock (ns) at the end of the last event.
	last atomic.Int64
}

// finish marks t to be closed for r when the current event ends.
func (t *txn) finish(r closeReason) { t.closing, t.closeWhy = true, r }

// acquire returns cid's open transaction, locked, or nil.
func (a *Agent) acquire(cid string) *txn {
	t, ok := a.txns.Load(cid)
	if !ok {
		return nil
	}
	t.mu.Lock()
	if k := t.kill.Load(); k != 0 && !t.removed {
		a.closeLocked(t, closeReason(k-1))
	}
	if t.removed {
		t.mu.Unlock()
		return nil
	}
	return t
}

// end finishes an event on t (deferred by every handler method that
// acquired t): it turns a panic into an ErrInspection error, closes t when
// the event failed or asked for it, stamps the activity time, unlocks, and
// honours a close requested meanwhile.
func (a *Agent) end(t *txn, errp *error) {
	if p := recover(); p != nil {
		*errp = fmt.Errorf("%w: panic: %v", ErrInspection, p)
	}
	switch {
	case *errp != nil:
		a.st.errors.Add(1)
		a.closeLocked(t, closeError)
	case t.closing:
		a.closeLocked(t, t.closeWhy)
	default:
		t.last.Store(a.now())
	}
	a.unlock(t)
}

// unlock releases t and then closes it if a close was requested while it
// was held (requestClose sets kill before it tries the lock, so either it
// gets the lock or the holder sees kill here).
func (a *Agent) unlock(t *txn) {
	t.mu.Unlock()
	if t.kill.Load() != 0 {
		t.mu.Lock()
		if k := t.kill.Load(); k != 0 && !t.removed {
			a.closeLocked(t, closeReason(k-1))
		}
		t.mu.Unlock()
	}
}

// requestClose closes t for r now, or, when an event holds t, as soon as
// that event ends. It never blocks (cancels run on the connection reader).
func (a *Agent) requestClose(t *txn, r closeReason) {
	t.kill.CompareAndSwap(0, int32(r)+1)
	if t.mu.TryLock() {
		a.unlock(t)
	}
}

// sweep closes the transactions idle since before now - TTL. A
// transaction an event holds is busy, not idle: it is skipped.
func (a *Agent) sweep(now int64) {
	limit := now - int64(a.cfg.ttl)
	a.txns.Range(func(_ string, t *txn) bool {
		if t.last.Load() < limit && t.mu.TryLock() {
			if !t.removed && t.last.Load() < limit {
				a.closeLocked(t, closeExpired)
			}
			a.unlock(t)
		}
		return true
	})
}

// closeLocked closes t for r (t.mu held): the Coraza transaction ends
// (logging phase, then Close), the entry leaves the table, the counters
// move. Exactly once per transaction: later calls do nothing.
func (a *Agent) closeLocked(t *txn, r closeReason) {
	if t.removed {
		return
	}
	t.removed = true
	a.closeTx(t)
	a.txns.Compute(t.cid, func(old *txn, loaded bool) (*txn, xsync.ComputeOp) {
		if loaded && old == t {
			return nil, xsync.DeleteOp
		}
		return old, xsync.CancelOp
	})
	a.open.Add(-1)
	a.st.closed[r].Add(1)
	if h := a.cfg.closeHook; h != nil {
		h(t.cid, r)
	}
}

// closeTx ends t's Coraza transaction once: the logging phase runs, then
// Close returns it to Coraza's pool. A panic in either is counted as an
// error, not propagated.
func (a *Agent) closeTx(t *txn) {
	tx := t.tx
	if tx == nil {
		return
	}
	t.tx = nil
	defer func() {
		if recover() != nil {
			a.st.errors.Add(1)
		}
	}()
	tx.ProcessLogging()
	_ = tx.Close() // only temporary-file removal can fail; nothing to do about it here
}

// stray answers an event for a request without an open transaction:
// nothing to inspect is allowed, anything else is ErrNoTransaction.
func (a *Agent) stray(cid string, inspect bool) error {
	if !inspect {
		return nil
	}
	a.st.errors.Add(1)
	return fmt.Errorf("%w (correlation id %q)", ErrNoTransaction, cid)
}

// ---------------------------------------------------------------------------
// Handler methods

// OnRequestHeaders opens the request's transaction and runs the
// request-headers phase. When a request body follows (Content-Length > 0
// or a Transfer-Encoding header) and request bodies are inspected, the
// reply is a provisional allow with needs_more and the transaction waits
// for the body; otherwise the request-body phase runs at once and the
// reply is the request's verdict.
func (a *Agent) OnRequestHeaders(_ context.Context, ev *agentwire.RequestHeadersEvent, r *agentwire.AgentResponse) (err error) {
	cid := ev.Metadata.CorrelationID
	if cid == "" {
		cid = r.CorrelationID
	}
	if a.closed.Load() {
		a.st.errors.Add(1)
		return ErrClosed
	}
	if a.open.Add(1) > int64(a.cfg.maxTransactions) {
		a.open.Add(-1)
		a.st.rejected.Add(1)
		r.Decision = a.cfg.overflow
		r.Audit.Tags = append(r.Audit.Tags, TagOverloaded)
		return nil
	}
	a.st.opened.Add(1)
	proto := ev.Metadata.Protocol
	if proto == "" {
		proto = "HTTP/1.1"
	}
	t := &txn{cid: cid, tx: a.waf.NewTransactionWithID(cid), proto: proto, head: ev.Method == "HEAD"}
	t.last.Store(a.now())
	t.mu.Lock()
	if old, loaded := a.txns.LoadAndStore(cid, t); loaded {
		a.requestClose(old, closeReplaced)
	}
	defer a.end(t, &err)
	if a.closed.Load() { // Close ran while t was being added
		return ErrClosed
	}
	return a.requestHeaders(t, ev, r)
}

func (a *Agent) requestHeaders(t *txn, ev *agentwire.RequestHeadersEvent, r *agentwire.AgentResponse) error {
	tx := t.tx
	md := &ev.Metadata
	tx.ProcessConnection(md.ClientIP, int(md.ClientPort), "", 0)
	tx.ProcessURI(ev.URI, ev.Method, t.proto)
	for i := range ev.Headers {
		h := &ev.Headers[i]
		for _, v := range h.Values {
			tx.AddRequestHeader(h.Name, v)
		}
	}
	if host := ev.Headers.Get("host"); host != "" {
		tx.SetServerName(host)
	} else if sn, ok := md.ServerName.Get(); ok && sn != "" {
		// HTTP/2 and HTTP/3 carry the host as :authority; the proxy
		// reports it as the server name.
		tx.AddRequestHeader("host", sn)
		tx.SetServerName(sn)
	}
	if it := tx.ProcessRequestHeaders(); it != nil && a.interrupt(t, it, r) {
		return nil
	}
	if a.cfg.requestBody && tx.IsRequestBodyAccessible() && requestBodyDeclared(ev.Headers) {
		t.stage = stRequestBody
		r.NeedsMore = true
		a.report(t, r)
		return nil
	}
	if blocked, err := a.endRequest(t, r); blocked || err != nil {
		return err
	}
	a.requestDone(t, false)
	return nil
}

// endRequest runs the request-body phase with whatever body was written.
// It reports whether the request was blocked (the transaction then
// closes when the event ends).
func (a *Agent) endRequest(t *txn, r *agentwire.AgentResponse) (blocked bool, err error) {
	it, err := t.tx.ProcessRequestBody()
	if err != nil {
		return false, fmt.Errorf("%w: request body: %w", ErrInspection, err)
	}
	if it != nil && a.interrupt(t, it, r) {
		return true, nil
	}
	a.report(t, r)
	return false, nil
}

// requestDone moves a transaction whose request phases ran (and did not
// block) on: to the response with response inspection, else it is
// closed. bodyLeft says that chunks of the request body are still to come:
// they are absorbed first, and without response inspection the Coraza
// transaction ends at once (the rules need nothing more).
func (a *Agent) requestDone(t *txn, bodyLeft bool) {
	switch {
	case bodyLeft:
		t.stage, t.decided = stRequestBody, true
		if !a.cfg.response {
			a.closeTx(t)
		}
	case a.cfg.response:
		t.stage, t.decided = stResponseHeaders, false
	default:
		t.finish(closeDone)
	}
}

// OnRequestBodyChunk writes a request body chunk into the transaction.
// Until the body ends (is_last) the reply is a provisional allow with
// needs_more; the last chunk gets the request's verdict. When Coraza's
// body limit is reached before that (SecRequestBodyLimit, with
// SecRequestBodyLimitAction ProcessPartial; Reject blocks with 413), the
// rules decide on what fits and the remaining chunks are answered allow
// without needs_more and not inspected.
func (a *Agent) OnRequestBodyChunk(_ context.Context, ev *agentwire.BodyChunk, r *agentwire.AgentResponse) (err error) {
	if !a.cfg.requestBody {
		return nil // not announced: a proxy that sends it anyway gets allow
	}
	t := a.acquire(ev.CorrelationID)
	if t == nil {
		return a.stray(ev.CorrelationID, len(ev.Data) > 0)
	}
	defer a.end(t, &err)
	if t.stage != stRequestBody {
		return fmt.Errorf("%w: request body chunk %d after the request body ended (correlation id %q)", ErrOutOfSequence, ev.ChunkIndex, t.cid)
	}
	last := lastChunk(ev)
	if !t.decided {
		it, n, werr := t.tx.WriteRequestBody(ev.Data)
		if werr != nil {
			return fmt.Errorf("%w: request body: %w", ErrInspection, werr)
		}
		if it != nil && a.interrupt(t, it, r) {
			return nil
		}
		if !last && n == len(ev.Data) {
			r.NeedsMore = true
			a.report(t, r)
			return nil
		}
		// The body ended, or the limit was reached (ProcessPartial ran
		// the phase already; running it again is a no-op).
		if blocked, err := a.endRequest(t, r); blocked || err != nil {
			return err
		}
		a.requestDone(t, !last)
		return nil
	}
	// The rules decided before the body ended: absorb the rest of it.
	if last {
		a.requestDone(t, false)
	}
	return nil
}

// lastChunk reports whether ev is the last chunk of its body the agent
// gets: is_last is set, or the bytes sent so far reach the announced
// total size (the Rust proxy sends one buffered chunk of at most its
// inspection limit, with is_last false when the body is longer, and total
// size = bytes sent = the chunk's length).
func lastChunk(ev *agentwire.BodyChunk) bool {
	return ev.IsLast || (ev.TotalSize.Valid && ev.BytesTransferred >= ev.TotalSize.Value)
}

// OnResponseHeaders runs the response-headers phase (response inspection
// only). When a response body follows and Coraza processes its content
// type (SecResponseBodyMimeType), the reply has needs_more and the
// transaction waits for the body; otherwise the response-body phase runs
// at once and the transaction is closed (after the body's chunks, which
// are then absorbed without inspection).
func (a *Agent) OnResponseHeaders(_ context.Context, ev *agentwire.ResponseHeadersEvent, r *agentwire.AgentResponse) (err error) {
	if !a.cfg.response {
		return nil
	}
	t := a.acquire(ev.CorrelationID)
	if t == nil {
		return a.stray(ev.CorrelationID, true)
	}
	defer a.end(t, &err)
	switch t.stage {
	case stResponseHeaders:
	case stRequestBody:
		// The response began before the request body ended (an
		// upstream may answer early): the request phases end here.
		if !t.decided {
			if blocked, err := a.endRequest(t, r); blocked || err != nil {
				return err
			}
			r.Audit = agentwire.AuditMetadata{} // reported again below, with the response's findings
		}
	default:
		return fmt.Errorf("%w: response headers twice (correlation id %q)", ErrOutOfSequence, t.cid)
	}
	tx := t.tx
	for i := range ev.Headers {
		h := &ev.Headers[i]
		for _, v := range h.Values {
			tx.AddResponseHeader(h.Name, v)
		}
	}
	if it := tx.ProcessResponseHeaders(int(ev.Status), t.proto); it != nil && a.interrupt(t, it, r) {
		return nil
	}
	body := !t.head && responseBodyDeclared(ev.Status, ev.Headers)
	t.stage, t.decided = stResponseBody, false
	if body && tx.IsResponseBodyAccessible() && tx.IsResponseBodyProcessable() {
		r.NeedsMore = true
		a.report(t, r)
		return nil
	}
	return a.endResponse(t, r, !body)
}

// endResponse runs the response-body phase; the transaction closes now
// when last, else after the remaining body chunks (absorbed).
func (a *Agent) endResponse(t *txn, r *agentwire.AgentResponse, last bool) error {
	it, err := t.tx.ProcessResponseBody()
	if err != nil {
		return fmt.Errorf("%w: response body: %w", ErrInspection, err)
	}
	if it != nil && a.interrupt(t, it, r) {
		return nil
	}
	a.report(t, r)
	if last {
		t.finish(closeDone)
		return nil
	}
	t.decided = true
	a.closeTx(t) // the rules need nothing more
	return nil
}

// OnResponseBodyChunk writes a response body chunk into the transaction
// (response inspection only), with needs_more until the body ends or
// Coraza's response body limit is reached; then the response-body phase
// runs and the transaction is closed (at the last chunk).
func (a *Agent) OnResponseBodyChunk(_ context.Context, ev *agentwire.BodyChunk, r *agentwire.AgentResponse) (err error) {
	if !a.cfg.response {
		return nil
	}
	t := a.acquire(ev.CorrelationID)
	if t == nil {
		return a.stray(ev.CorrelationID, len(ev.Data) > 0)
	}
	defer a.end(t, &err)
	if t.stage != stResponseBody {
		return fmt.Errorf("%w: response body chunk %d before the response headers (correlation id %q)", ErrOutOfSequence, ev.ChunkIndex, t.cid)
	}
	if !t.decided {
		it, n, werr := t.tx.WriteResponseBody(ev.Data)
		if werr != nil {
			return fmt.Errorf("%w: response body: %w", ErrInspection, werr)
		}
		if it != nil && a.interrupt(t, it, r) {
			return nil
		}
		if !lastChunk(ev) && n == len(ev.Data) {
			r.NeedsMore = true
			a.report(t, r)
			return nil
		}
		return a.endResponse(t, r, lastChunk(ev))
	}
	if lastChunk(ev) {
		t.finish(closeDone)
	}
	return nil
}

// OnRequestComplete closes the request's transaction if it is still open.
func (a *Agent) OnRequestComplete(_ context.Context, ev *agentwire.RequestCompleteEvent, _ *agentwire.AgentResponse) (err error) {
	t := a.acquire(ev.CorrelationID)
	if t == nil {
		return nil
	}
	defer a.end(t, &err)
	t.finish(closeComplete)
	return nil
}

// ---------------------------------------------------------------------------
// Verdicts and audit data

// interrupt turns a Coraza interruption into the reply's block decision
// and closes the transaction; it returns false in detection-only mode,
// where the interruption is only reported (by report) and the request goes
// on.
func (a *Agent) interrupt(t *txn, it *types.Interruption, r *agentwire.AgentResponse) bool {
	if a.cfg.detectionOnly {
		return false
	}
	r.Decision = decisionFor(it)
	r.NeedsMore = false
	a.st.blocked.Add(1)
	a.report(t, r)
	t.finish(closeDone)
	return true
}

// decisionFor maps an interruption to a decision: a redirect with a URL
// becomes a redirect (302 unless the rule set a 3xx status), every other
// action (deny, drop) a block with the rule's status, DefaultBlockStatus
// when it set none or one outside 100..999.
func decisionFor(it *types.Interruption) agentwire.Decision {
	status := it.Status
	if it.Action == "redirect" && it.Data != "" {
		if status < 300 || status > 399 {
			status = 302
		}
		return agentwire.Redirect(it.Data, uint16(status))
	}
	if status < 100 || status > 999 {
		status = DefaultBlockStatus
	}
	return agentwire.Block(uint16(status))
}

// detectionOnlyInterruption returns the interruption the rules would have
// caused in detection-only mode (Coraza keeps it on its transaction type
// without exposing it on the interface), or nil.
func detectionOnlyInterruption(tx types.Transaction) *types.Interruption {
	if d, ok := tx.(interface {
		DetectionOnlyInterruption() *types.Interruption
	}); ok {
		return d.DetectionOnlyInterruption()
	}
	return nil
}

// interruptionJSON is Audit.Custom[CustomKey].
type interruptionJSON struct {
	Action        string `json:"action"`
	Status        int    `json:"status"`
	RuleID        int    `json:"rule_id"`
	Data          string `json:"data,omitempty"`
	DetectionOnly bool   `json:"detection_only,omitempty"`
}

// report writes what the transaction's rules found so far into the
// reply's audit metadata: the ids of the logged rules that matched
// (RuleIDs, in match order, each once) with their messages (ReasonCodes,
// one per rule id, "" for a rule without a message), and, when the rules
// interrupted or would have, the tags and Custom[CustomKey]. Nothing is
// written for a request nothing matched.
func (a *Agent) report(t *txn, r *agentwire.AgentResponse) {
	tx := t.tx
	if tx == nil {
		return
	}
	it, would := tx.Interruption(), a.cfg.detectionOnly
	if it == nil {
		it, would = detectionOnlyInterruption(tx), true
	}
	n := 0
	for _, m := range tx.MatchedRules() {
		id := m.Rule().ID()
		if id == 0 || !logged(m) {
			continue
		}
		s := strconv.Itoa(id)
		dup := false
		for _, have := range r.Audit.RuleIDs {
			if have == s {
				dup = true
				break
			}
		}
		if dup {
			continue
		}
		r.Audit.RuleIDs = append(r.Audit.RuleIDs, s)
		r.Audit.ReasonCodes = append(r.Audit.ReasonCodes, m.Message())
		n++
	}
	if n == 0 && it == nil {
		return
	}
	if a.cfg.detectionOnly {
		r.Audit.Tags = append(r.Audit.Tags, TagDetectionOnly)
	}
	if it == nil {
		return
	}
	if would {
		r.Audit.Tags = append(r.Audit.Tags, TagWouldBlock)
		if !t.detected {
			t.detected = true
			a.st.detected.Add(1)
		}
	} else {
		r.Audit.Tags = append(r.Audit.Tags, TagBlocked)
	}
	b, err := json.Marshal(interruptionJSON{Action: it.Action, Status: it.Status, RuleID: it.RuleID, Data: it.Data, DetectionOnly: would})
	if err != nil {
		return // a struct of strings and ints always marshals
	}
	if r.Audit.Custom == nil {
		r.Audit.Custom = make(map[string]json.RawMessage, 1)
	}
	r.Audit.Custom[CustomKey] = b
}

// logged reports whether a matched rule is one Coraza logs (rules with
// nolog, such as the CRS's initialisation, are left out of the audit).
func logged(m types.MatchedRule) bool {
	if l, ok := m.(interface{ Log() bool }); ok {
		return l.Log()
	}
	return true
}

// requestBodyDeclared reports whether request headers announce a body:
// a Transfer-Encoding header, or a Content-Length above 0.
func requestBodyDeclared(h agentwire.Headers) bool {
	if h.Get("transfer-encoding") != "" {
		return true
	}
	n, ok := parseLength(h.Get("content-length"))
	return ok && n > 0
}

// responseBodyDeclared reports whether a response with this status and
// these headers has a body: never for 1xx, 204 and 304; with a
// Transfer-Encoding; with a Content-Length above 0; and without a
// Content-Length (delimited by the end of the connection).
func responseBodyDeclared(status uint16, h agentwire.Headers) bool {
	if status < 200 || status == 204 || status == 304 {
		return false
	}
	if h.Get("transfer-encoding") != "" {
		return true
	}
	if cl := h.Get("content-length"); cl != "" {
		n, ok := parseLength(cl)
		return ok && n > 0
	}
	return true
}
