package promstats

import "fmt"

// invalidf returns an error of kind ErrInvalidConfig.
func invalidf(format string, args ...any) error {
	return fmt.Errorf("agentwire: promstats: %s: %w", fmt.Sprintf(format, args...), ErrInvalidConfig)
}
