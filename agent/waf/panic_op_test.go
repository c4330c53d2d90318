package waf

import (
	"github.com/corazawaf/coraza/v3/experimental/plugins"
	"github.com/corazawaf/coraza/v3/experimental/plugins/plugintypes"
)

// panicOperator is a rule operator that panics, to exercise the agent's
// handling of a failure inside Coraza.
type panicOperator struct{}

func (panicOperator) Evaluate(plugintypes.TransactionState, string) bool {
	panic("agentwire test operator")
}

func init() {
	plugins.RegisterOperator("agentwireTestPanic", func(plugintypes.OperatorOptions) (plugintypes.Operator, error) {
		return panicOperator{}, nil
	})
}
