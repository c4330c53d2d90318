package main

import (
	"context"

	"github.com/agentwire/agentwire"
	"github.com/agentwire/agentwire/engine"
)

// dialAgent connects the engine to the agent at ep: plaintext gRPC
// endpoints get engine.WithInsecure, grpcs:// the TLS configuration of the
// flags, Unix-socket endpoints the payload encoding to offer (empty: the
// engine's default). extra options come last.
func dialAgent(ctx context.Context, ep endpoint, tf *tlsFlags, encoding string, extra ...engine.Option) (*engine.Conn, error) {
	var opts []engine.Option
	switch ep.kind {
	case epGRPC:
		if tf.set() {
			return nil, usagef("--tls-* flags need a grpcs:// endpoint")
		}
		opts = append(opts, engine.WithInsecure())
	case epGRPCS, epGRPCUnix:
		cfg, err := tf.clientConfig()
		if err != nil {
			return nil, err
		}
		if cfg != nil {
			opts = append(opts, engine.WithTLS(cfg))
		}
	case epUnix:
		if tf.set() {
			return nil, usagef("--tls-* flags do not apply to unix-socket endpoints")
		}
	}
	if encoding != "" {
		if ep.kind != epUnix {
			return nil, usagef("--encoding applies to unix-socket endpoints only")
		}
		opt, err := encodingOption(encoding)
		if err != nil {
			return nil, err
		}
		opts = append(opts, opt)
	}
	opts = append(opts, extra...)
	return engine.Dial(ctx, ep.raw, opts...)
}

// encodingOption offers exactly the named Unix-socket payload encoding, so
// that a run measures what was asked for (an agent without it fails the
// handshake).
func encodingOption(enc string) (engine.Option, error) {
	switch enc {
	case agentwire.EncodingJSON, agentwire.EncodingMsgpack:
		return engine.WithEncodings(enc), nil
	}
	return nil, usagef("--encoding %q: want json or msgpack", enc)
}
