package pool

import (
	"fmt"
	"testing"

	"github.com/agentwire/agentwire"
)

// CancelStep cancels the request at one step only, on the connection that
// saw its headers; a step the request never reached, an index out of
// range and an ended Request send nothing.
func TestPipelineCancelStep(t *testing.T) {
	p := newTestPool(t)
	fa, fb := fakes(3), fakes(3)
	a := addFakes(t, p, "a", fa, WithBalance(BalanceRoundRobin))
	b := addFakes(t, p, "b", fb, WithBalance(BalanceRoundRobin), WithEvents(agentwire.EventRequestBodyChunk))
	pl, err := NewPipeline([]Step{{Agent: a}, {Agent: b}})
	if err != nil {
		t.Fatal(err)
	}
	ctx := testCtx(t)
	count := func(fs []*fakeLink) int {
		n := 0
		for _, f := range fs {
			f.mu.Lock()
			n += len(f.cancels)
			f.mu.Unlock()
		}
		return n
	}
	var r Request
	for i := range 6 {
		cid := fmt.Sprint("r", i)
		pl.RequestHeaders(ctx, &r, rhEvent(cid)) // b is not subscribed: no pin
		for _, j := range []int{-1, 1, 2} {
			if err := pl.CancelStep(&r, j, cid, agentwire.CancelManual); err != nil {
				t.Fatalf("CancelStep(%d): %v", j, err)
			}
		}
		if n := count(fa) + count(fb); n != i {
			t.Fatalf("request %s: %d cancels before step 0's, want %d", cid, n, i)
		}
		if err := pl.CancelStep(&r, 0, cid, agentwire.CancelManual); err != nil {
			t.Fatal(err)
		}
		for _, f := range fa {
			if len(f.kinds(cid)) == 0 {
				continue
			}
			f.mu.Lock()
			got := f.cancels
			f.mu.Unlock()
			if len(got) == 0 || got[len(got)-1] != cid {
				t.Fatalf("request %s: cancels %v on its connection %s", cid, got, f.name)
			}
		}
		if count(fa) != i+1 || count(fb) != 0 {
			t.Fatalf("request %s: cancels a %d, b %d; want %d, 0", cid, count(fa), count(fb), i+1)
		}
		pl.End(&r)
		if err := pl.CancelStep(&r, 0, cid, agentwire.CancelManual); err != nil || count(fa) != i+1 {
			t.Fatalf("CancelStep after End: %v, %d cancels", err, count(fa))
		}
	}
}
