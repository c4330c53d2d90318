// Package waf is a web application firewall agent: it inspects the
// requests a proxy sends it with Coraza (github.com/corazawaf/coraza/v3)
// and the OWASP Core Rule Set, embedded from
// github.com/corazawaf/coraza-coreruleset (nothing is downloaded or read
// from disk at run time, apart from rule files the user adds).
//
// # Quick start
//
//	w, err := waf.New(waf.WithParanoia(1))
//	if err != nil { ... }
//	defer w.Close()
//	srv := agent.NewServer(w,
//		agent.WithAgentID("waf-1"),
//		agent.WithCapabilities(w.Capabilities()),
//		agent.WithErrorDecision(agentwire.Block(500)))
//	go srv.ListenAndServeUDS("/run/waf.sock")
//
// or from the command line: agentwire serve --listen unix:///run/waf.sock
// --agent waf [--paranoia 1-4] [--detection-only] [--rules FILE]...
// [--inspect-response].
//
// # Rules
//
// New builds one Coraza WAF from Coraza's recommended base configuration
// (@coraza.conf-recommended) with SecRuleEngine On (DetectionOnly with
// WithDetectionOnly), Coraza's own audit log off (the agent reports in its
// replies), SecRequestBodyAccess and SecResponseBodyAccess as the
// inspection options say, then the CRS setup (@crs-setup.conf.example:
// anomaly scoring), the paranoia level (WithParanoia) and every CRS rule
// file, then the files of WithRulesFile and the text of WithDirectives.
// Coraza's default body limits apply: request bodies up to 12.5 MiB
// (larger ones are blocked with 413), 128 KiB of them in memory; response
// bodies of text/plain, text/html and text/xml up to 512 KiB (inspected
// partially beyond). CorazaConfig returns the same configuration for
// in-process use; WithWAF takes a WAF the caller built instead.
//
// # One transaction per request
//
// Every request gets one Coraza transaction (its id is the request's
// correlation id), created by its request headers and found by the
// correlation id of its later events, which may arrive over any
// connection of the same Agent. A request's events must be sent one after
// the other (each after the reply to the previous one, as the needs_more
// protocol implies); events of different requests run concurrently.
//
//   - Request headers: the phase-1 rules run. When request bodies are
//     inspected and the headers announce a body (Content-Length above 0,
//     or a Transfer-Encoding header), the reply is a provisional allow
//     with needs_more and the transaction waits for the body. Otherwise
//     the phase-2 rules run at once (without a body) and the reply is the
//     request's verdict: a request without declared body is decided on
//     its headers, which is where the CRS evaluates query strings.
//   - Request body chunks are written into the transaction as they come,
//     each answered with needs_more, until the last one (is_last), which
//     runs the phase-2 rules and gets the verdict. If Coraza's body limit is
//     reached first, the rules decide at that chunk (blocked with 413
//     under SecRequestBodyLimitAction Reject, the default) and the rest of
//     the body is answered allow, without needs_more and uninspected.
//   - Response headers and body chunks (WithResponseInspection only) run
//     phases 3 and 4 the same way; a response whose content type Coraza
//     does not inspect is decided on its headers.
//   - The transaction is closed (logging phase, then Coraza's Close)
//     exactly once: after the last event its rules need (the verdict of
//     the request phases, or of the response phases with response
//     inspection; when chunks of the current body are still to come, the
//     Coraza transaction ends at once and the entry stays until the last
//     chunk, answering them allow), after a block, at RequestComplete, at
//     a cancel (at once, or when the event being inspected for that
//     request ends), after WithTransactionTTL without an event (expiry,
//     by a sweeper), when new request headers reuse the correlation id,
//     after an error, or at Close. Stats counts each reason.
//
// An event for a request that has no open transaction (it expired, was
// cancelled or blocked, or its headers were refused at the bound or went
// to another agent) is answered allow when it carries nothing to inspect
// (an empty body chunk, RequestComplete) and with ErrNoTransaction
// otherwise.
//
// # The bound
//
// At most WithMaxTransactions transactions are open at once (default
// 4096, about 150 MiB of Coraza transactions at ~38 KiB each). Request headers that arrive at the bound are not inspected and
// no transaction is opened: they are answered with the overflow decision
// (WithOverflowDecision, block 503 by default, tagged TagOverloaded) and
// counted in Stats.Rejected. Transactions already open are never evicted
// to make room.
//
// # Verdicts and audit data
//
// An interruption becomes a block with the interrupting rule's status
// (403 when it sets none; a redirect action with a URL becomes a
// redirect) and the transaction is closed. Every reply for a request
// whose rules matched carries in its audit metadata the ids of the logged
// rules that matched so far (RuleIDs, each once, in match order) and
// their messages (ReasonCodes, aligned with RuleIDs), and for an
// interruption the tag TagBlocked and Custom[CustomKey], a JSON object
// with the action, status, rule id and data. With WithDetectionOnly the
// rules run in detection-only mode, every reply allows, and the same audit
// data is reported with the tags TagDetectionOnly and, where the rules
// would have interrupted, TagWouldBlock.
//
// # Errors
//
// Handler methods return errors (wrapped ErrInspection, ErrNoTransaction,
// ErrOutOfSequence, ErrClosed) to the agent server, which answers them
// with its error decision (agent.WithErrorDecision) and logs them; the
// transaction is closed first, so an error never leaves state behind. A
// panic inside Coraza is recovered the same way. The server's default
// error decision is allow; a WAF should set agent.WithErrorDecision (the
// agentwire serve command sets block 500), so that no request passes
// uninspected because of an error.
//
// # Capabilities
//
// Capabilities lists exactly the events the configuration needs, so that
// an agentwire proxy sends nothing else: request headers; request body
// chunks unless WithRequestBodyInspection(false); response headers and
// body chunks with WithResponseInspection(true); request complete when a
// transaction can outlive one event. Events that were not announced are
// answered allow without inspection.
//
// # Cost
//
// The CRS at paranoia level 1 costs a few hundred microseconds of CPU per
// request; the agent adds a map entry and a small struct per request. An
// open transaction costs the memory Coraza's transaction holds (see
// BenchmarkOpenTransactionMemory).
package waf
