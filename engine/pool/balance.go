package pool

import (
	"math/rand/v2"
)

// maxAttempts bounds the connections one call tries: a connection that
// refuses the call before sending it (not connected, unhealthy, draining,
// paused) passes it to another, at most this many in all.
const maxAttempts = 3

// tried records the connections a call already tried.
type tried struct {
	m [maxAttempts]*member
	n int
}

func (t *tried) has(m *member) bool {
	for i := 0; i < t.n; i++ {
		if t.m[i] == m {
			return true
		}
	}
	return false
}

func (t *tried) add(m *member) {
	if t.n < maxAttempts {
		t.m[t.n] = m
		t.n++
	}
}

func usable(m *member, t *tried) bool { return m.up() && !t.has(m) }

// pick chooses a connection of s for a new call by the agent's strategy,
// among the usable ones not tried yet; nil when there is none.
func (a *Agent) pick(s *memberSet, t *tried) *member {
	n := len(s.list)
	switch n {
	case 0:
		return nil
	case 1:
		if m := s.list[0]; usable(m, t) {
			return m
		}
		return nil
	}
	switch a.o.balance {
	case BalanceP2C:
		// Both choices from one 64-bit draw: each 32-bit half mapped onto
		// its range by a multiply-shift (a bias below n/2^32, n <= 2^16).
		r := rand.Uint64()
		i := int(r >> 32 * uint64(n) >> 32)
		j := int(r & (1<<32 - 1) * uint64(n-1) >> 32)
		if j >= i {
			j++
		}
		mi, mj := s.list[i], s.list[j]
		ui, uj := usable(mi, t), usable(mj, t)
		switch {
		case ui && uj:
			si, sj := p2cScore(mi), p2cScore(mj)
			if si < sj || si == sj && rand.Uint32()&1 == 0 {
				return mi
			}
			return mj
		case ui:
			return mi
		case uj:
			return mj
		}
	case BalanceRoundRobin:
		if m := s.list[a.rr.Add(1)%uint64(n)]; usable(m, t) {
			return m
		}
	case BalanceRandom:
		if m := s.list[rand.IntN(n)]; usable(m, t) {
			return m
		}
	case BalanceLeastInFlight:
		return leastInFlight(s, t)
	case BalanceWeighted:
		if len(s.wrr) > 0 {
			if m := s.list[s.wrr[a.rr.Add(1)%uint64(len(s.wrr))]]; usable(m, t) {
				return m
			}
		}
		return weightedAmongUsable(s, t)
	}
	// The strategy's choice is unusable: a connection drawn uniformly
	// among the usable ones (not the next in line, which would take the
	// unusable one's share on top of its own).
	return randomAmongUsable(s, t)
}

// p2cScore is the cost of sending one more call to m.
func p2cScore(m *member) int64 {
	l := m.ewma.Load()
	if l <= 0 {
		l = 1
	}
	return (m.ctr.inFlight.Load() + 1) * l
}

func leastInFlight(s *memberSet, t *tried) *member {
	var best *member
	var bestN int64
	ties := 0
	for _, m := range s.list {
		if !usable(m, t) {
			continue
		}
		n := m.ctr.inFlight.Load()
		switch {
		case best == nil || n < bestN:
			best, bestN, ties = m, n, 1
		case n == bestN:
			// Reservoir sampling: each of the k tied connections ends up
			// chosen with probability 1/k.
			ties++
			if rand.IntN(ties) == 0 {
				best = m
			}
		}
	}
	return best
}

func randomAmongUsable(s *memberSet, t *tried) *member {
	var pick *member
	k := 0
	for _, m := range s.list {
		if usable(m, t) {
			k++
			if rand.IntN(k) == 0 {
				pick = m
			}
		}
	}
	return pick
}

func weightedAmongUsable(s *memberSet, t *tried) *member {
	var pick *member
	total := 0
	for _, m := range s.list {
		if usable(m, t) {
			w := max(m.weight, 1)
			total += w
			if rand.IntN(total) < w {
				pick = m
			}
		}
	}
	return pick
}
