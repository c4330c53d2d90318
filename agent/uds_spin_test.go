package agent

import (
	"errors"
	"testing"
	"time"
)

// TestReadSpinOption: WithReadSpin accepts 0..MaxReadSpin (ErrInvalidConfig
// otherwise) and sets the budget of the connections' readers;
// DefaultReadSpin without it.
func TestReadSpinOption(t *testing.T) {
	for _, d := range []time.Duration{-time.Microsecond, MaxReadSpin + 1} {
		if _, err := newServer(BaseHandler{}, WithReadSpin(d)); !errors.Is(err, ErrInvalidConfig) {
			t.Fatalf("WithReadSpin(%v): err = %v, want ErrInvalidConfig", d, err)
		}
	}
	for _, tc := range []struct {
		opts []Option
		want time.Duration
	}{
		{nil, DefaultReadSpin},
		{[]Option{WithReadSpin(0)}, 0},
		{[]Option{WithReadSpin(MaxReadSpin)}, MaxReadSpin},
	} {
		s, err := newServer(BaseHandler{}, tc.opts...)
		if err != nil {
			t.Fatal(err)
		}
		if got := s.cfg.uds.spinBudget(); got != tc.want {
			t.Errorf("budget %v, want %v", got, tc.want)
		}
		s.Close()
	}
}
