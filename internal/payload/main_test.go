package payload

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain checks that no test leaves a goroutine behind (the time-cache
// test starts some).
func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }
