package engine

// ringSlack is the room a session's outbound queue keeps beyond the
// agent's max_concurrency, for what is not a request: cancels and pings
// (a caller finding the queue full waits for room within its context).
const ringSlack = 16

// sessionRingSize returns the capacity of a session's outbound queue and
// the size hint of its pending map: the configured ring size
// (WithRingSize), or less when the agent announced a max_concurrency
// (maxConcurrency > 0) that admission keeps the requests in flight under:
// then no more than maxConcurrency + ringSlack slots are of use (rounded
// up to a power of two by the queue), and an
// idle connection should not hold the rest (a 1024-slot queue and its
// map table are about 90 KiB, most of what an idle Conn holds).
func sessionRingSize(configured int, maxConcurrency uint32) int {
	if maxConcurrency == 0 {
		return configured
	}
	return int(min(int64(configured), int64(maxConcurrency)+ringSlack))
}
