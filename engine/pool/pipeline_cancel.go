package pool

import "github.com/agentwire/agentwire"

// CancelStep asks the agent of step i alone to stop working on the
// request (engine.Conn.Cancel on the connection the request is pinned to
// for that step, and only there). It sends nothing, and returns nil, when
// i is not a step of pl or the step has no connection for the request (it
// saw nothing of it, or r was ended or used with another pipeline);
// otherwise it returns the connection's Cancel error. It allocates
// nothing on success. Like the phases, it must not run concurrently with
// another use of r; distinct Requests may be cancelled concurrently.
func (pl *Pipeline) CancelStep(r *Request, i int, correlationID string, reason agentwire.CancelReason) error {
	if len(r.pins) != len(pl.steps) || i < 0 || i >= len(pl.steps) {
		return nil
	}
	id := r.pins[i]
	if id == 0 {
		return nil
	}
	if m := pl.steps[i].Agent.set.Load().byID(id); m != nil {
		return m.c.Cancel(correlationID, reason)
	}
	return nil
}
