//go:build race

package pool

// The race detector allows at most 8128 goroutines alive at once:
// TestFault10kConcurrent keeps 2000 requests in flight (10,000 in all).
const maxConcurrentGoroutines = 2000
