package engine

import (
	"sync/atomic"
	"time"

	"github.com/agentwire/agentwire"
)

// Stats is a snapshot of a Conn's counters. Counters are cumulative over
// the Conn's life (all sessions); InFlight is a gauge.
type Stats struct {
	InFlight int64  // requests admitted and not yet finished
	Sent     uint64 // event-stream messages handed to the transport
	Received uint64 // replies delivered to their callers
	Timeouts uint64 // calls ended by their deadline
	Canceled uint64 // calls ended by their context or Conn.Cancel
	// Errors counts calls that failed for any other reason (connection
	// lost, protocol error, flow control, health, subscription, invalid
	// event or correlation id, ...).
	Errors            uint64
	ConnectionLost    uint64 // pending calls failed because the stream died
	Reconnects        uint64 // successful reconnections after a loss (not NewConn's first connection)
	ReconnectFailures uint64 // failed connection attempts in the background (reconnections, and NewConn's first connection)
	Duplicates        uint64 // calls refused with ErrDuplicateCorrelationID
	FlowRejected      uint64 // calls refused by flow control
	Orphans           uint64 // replies for no pending request (late or unknown)
	ProtocolErrors    uint64 // inbound messages that could not be used
	CancelsSent       uint64 // cancel notices queued to the agent
	CancelsDropped    uint64 // cancel notices dropped on a full queue
	Pings             uint64 // pings sent
	Pongs             uint64 // pongs received
	FlowSignals       uint64 // flow-control signals received
	HealthReports     uint64 // health reports received
	MetricsReports    uint64 // metrics reports received
	LogMessages       uint64 // log lines received
	ConfigUpdates     uint64 // config-update requests received
	ConfigAnswered    uint64 // config-update answers sent
	ConfigUnanswered  uint64 // answers that could not be sent (no control stream)
	CallbacksDropped  uint64 // reports dropped on a full callback queue
	CallbackPanics    uint64 // user callbacks that panicked (recovered)
	// SaturationWaits counts calls that had to wait for a slot because
	// the agent's announced limits.max_concurrency requests were in
	// flight (each call once, however often it was woken).
	SaturationWaits uint64
	// SaturationRejected counts calls that got no slot under the agent's
	// max_concurrency: refused with ErrSaturated
	// (WithSaturation(FlowFailFast)), or whose deadline passed or context
	// ended while they waited (then also counted in Timeouts or Canceled).
	SaturationRejected uint64

	// Verdicts counts the synthetic verdicts Conn.Decide made.
	Verdicts VerdictStats
}

// counters are the Conn's statistics. The three that every request
// writes sit on cache lines of their own: inFlight (the callers, twice per
// call), sent (the writer, or a caller sending its own event) and received
// (the reader) are written from different goroutines, usually on
// different cores, and on one line each write would take the line away
// from the others (about 0.5 KiB more per Conn; measured only together
// with await's plain receive: bench/ab.sh, 64 in flight, 8 pairs, proxy
// CPU per request 0.964 of the build before). The rest are written rarely
// (errors, reports) and share lines.
type counters struct {
	_        [hotPad]byte // off the line of the Conn's fields before it
	inFlight atomic.Int64
	_        [hotPad - 8]byte
	sent     atomic.Uint64
	_        [hotPad - 8]byte
	received atomic.Uint64
	_        [hotPad - 8]byte

	timeouts         atomic.Uint64
	canceled         atomic.Uint64
	errors           atomic.Uint64
	lost             atomic.Uint64
	reconnects       atomic.Uint64
	reconnectFails   atomic.Uint64
	duplicates       atomic.Uint64
	flowRejected     atomic.Uint64
	orphans          atomic.Uint64
	protocolErrors   atomic.Uint64
	cancelsSent      atomic.Uint64
	cancelsDropped   atomic.Uint64
	pings            atomic.Uint64
	pongs            atomic.Uint64
	flowSignals      atomic.Uint64
	healthReports    atomic.Uint64
	metricsReports   atomic.Uint64
	logMessages      atomic.Uint64
	configUpdates    atomic.Uint64
	configAnswered   atomic.Uint64
	configUnanswered atomic.Uint64
	callbacksDropped atomic.Uint64
	callbackPanics   atomic.Uint64
	satWaits         atomic.Uint64
	satRejected      atomic.Uint64
}

// hotPad is the padding unit around the hot counters: 128 bytes, which
// also keeps them apart under amd64's adjacent-line prefetcher and on
// arm64's 128-byte lines (as in ring.Ring).
const hotPad = 128

// Stats returns a snapshot of the counters. It is safe for concurrent use
// and does not allocate.
func (c *Conn) Stats() Stats {
	s := &c.stats
	return Stats{
		InFlight:           s.inFlight.Load(),
		Sent:               s.sent.Load(),
		Received:           s.received.Load(),
		Timeouts:           s.timeouts.Load(),
		Canceled:           s.canceled.Load(),
		Errors:             s.errors.Load(),
		ConnectionLost:     s.lost.Load(),
		Reconnects:         s.reconnects.Load(),
		ReconnectFailures:  s.reconnectFails.Load(),
		Duplicates:         s.duplicates.Load(),
		FlowRejected:       s.flowRejected.Load(),
		Orphans:            s.orphans.Load(),
		ProtocolErrors:     s.protocolErrors.Load(),
		CancelsSent:        s.cancelsSent.Load(),
		CancelsDropped:     s.cancelsDropped.Load(),
		Pings:              s.pings.Load(),
		Pongs:              s.pongs.Load(),
		FlowSignals:        s.flowSignals.Load(),
		HealthReports:      s.healthReports.Load(),
		MetricsReports:     s.metricsReports.Load(),
		LogMessages:        s.logMessages.Load(),
		ConfigUpdates:      s.configUpdates.Load(),
		ConfigAnswered:     s.configAnswered.Load(),
		ConfigUnanswered:   s.configUnanswered.Load(),
		CallbacksDropped:   s.callbacksDropped.Load(),
		CallbackPanics:     s.callbackPanics.Load(),
		SaturationWaits:    s.satWaits.Load(),
		SaturationRejected: s.satRejected.Load(),
		Verdicts:           c.policy.snapshot(),
	}
}

// HealthSnapshot is the Conn's view of the agent's health.
type HealthSnapshot struct {
	// Connected is true while a session is established.
	Connected bool
	// State is the state of the last report still in force
	// (HealthUnspecified when there is none, it expired, or the Conn is
	// not connected).
	State agentwire.HealthState
	// Report is the last report received on the current session (zero when
	// none); ReceivedAt and ValidUntil (zero: no expiry) describe it.
	Report     agentwire.HealthStatus
	ReceivedAt time.Time
	ValidUntil time.Time
	// Expired is true when the last report's valid_until has passed.
	Expired bool
	// AcceptsRequests is false when new requests would be refused for a
	// health or flow-control reason (or the Conn is not connected,
	// draining or closed).
	AcceptsRequests bool
	// Paused reports connection-wide flow-control PAUSE; Capacity is the
	// in-flight cap set by the agent (-1: none).
	Paused   bool
	Capacity int64
}
