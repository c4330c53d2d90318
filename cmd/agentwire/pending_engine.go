package main

import (
	"context"
	"errors"
	"io"

	"github.com/agentwire/agentwire/engine"
)

// The engine's reverse-connection listener is not in this tree yet.
func acceptAgent(context.Context, *probeFlags, io.Writer) (*engine.Conn, func(), string, error) {
	return nil, nil, "", errors.New("this build's engine has no reverse-connection listener")
}
