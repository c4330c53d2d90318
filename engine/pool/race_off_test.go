//go:build !race

package pool

// TestFault10kConcurrent keeps all 10,000 requests in flight at once.
const maxConcurrentGoroutines = 10000
