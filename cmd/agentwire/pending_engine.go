package main

import (
	"context"
	"errors"
	"io"

	"github.com/agentwire/agentwire/engine"
)

// The engine's Unix-socket transport and reverse listener are not in this
// tree yet; these two functions say so until they are.

var errEngineNoUDS = errors.New("this build's engine has no unix-socket transport")

func encodingOption(string) (engine.Option, error) { return nil, errEngineNoUDS }

func acceptAgent(context.Context, *probeFlags, io.Writer) (*engine.Conn, func(), string, error) {
	return nil, nil, "", errors.New("this build's engine has no reverse-connection listener")
}

// engineUDS reports whether the engine speaks the binary Unix-socket protocol.
const engineUDS = false
