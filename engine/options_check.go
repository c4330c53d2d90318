package engine

// Which options apply to which transport. An option that does not apply to
// the endpoint's transport is refused by the constructor (ErrInvalidConfig)
// instead of being ignored: a setting that silently does nothing is a
// misconfiguration nobody notices.

// optSet records the transport-specific options that were given.
type optSet uint32

const (
	setInsecure optSet = 1 << iota
	setTLS
	setConnectTimeout
	setHandshakeTimeout
	setReconnectBackoff
	setFailFast
	setKeepalive
	setGRPCWindow
	setGRPCDialOptions
	setEncodings
	setRawBodies
	setWriteTimeout
	setReadSpin
	setOnLog
)

// transportKind is the transport an endpoint selects.
type transportKind uint8

const (
	transportGRPC    transportKind = iota // grpc://, grpcs://, grpc+unix://, host:port
	transportUDS                          // unix://, /path, *.sock
	transportReverse                      // the Conns of a ReverseListener
)

func (k transportKind) String() string {
	switch k {
	case transportGRPC:
		return "gRPC endpoints"
	case transportUDS:
		return "Unix-socket endpoints"
	default:
		return "reverse connections (WithConnOptions)"
	}
}

// optRule names a transport-specific option, the transports it applies
// to, and what to use instead elsewhere.
type optRule struct {
	bit     optSet
	name    string
	applies [3]bool // indexed by transportKind
	hint    string  // appended to the error when it does not apply
}

var optRules = []optRule{
	{setInsecure, "WithInsecure", [3]bool{true, false, false}, "it allows plaintext HTTP/2"},
	{setTLS, "WithTLS", [3]bool{true, false, false}, "TLS is for gRPC endpoints; reverse listeners take WithReverseTLS"},
	{setConnectTimeout, "WithConnectTimeout", [3]bool{true, true, false}, "the proxy does not connect; see WithRegistrationTimeout"},
	{setHandshakeTimeout, "WithHandshakeTimeout", [3]bool{true, true, false}, "there is no handshake; see WithRegistrationTimeout"},
	{setReconnectBackoff, "WithReconnectBackoff", [3]bool{true, true, false}, "the proxy never redials; the agent dials again"},
	{setFailFast, "WithFailFastWhileReconnecting", [3]bool{true, true, false}, "a reverse Conn never reconnects"},
	{setKeepalive, "WithKeepalive", [3]bool{true, false, false}, "it sets HTTP/2 pings; use WithLivenessPing"},
	{setGRPCWindow, "WithGRPCWindow", [3]bool{true, false, false}, "it sets HTTP/2 flow control"},
	{setGRPCDialOptions, "WithGRPCDialOptions", [3]bool{true, false, false}, "they configure the gRPC client"},
	{setEncodings, "WithEncodings/WithMsgpack", [3]bool{false, true, false}, "gRPC carries protobuf and reverse connections JSON"},
	{setRawBodies, "WithRawMsgpackBodies", [3]bool{false, true, false}, "it applies to MessagePack Unix-socket connections"},
	{setWriteTimeout, "WithWriteTimeout", [3]bool{true, true, true}, ""},
	{setReadSpin, "WithReadSpin", [3]bool{false, true, true}, "gRPC connections are read by grpc-go"},
	{setOnLog, "WithOnLog", [3]bool{true, false, false}, "the Unix-socket protocol has no log frame"},
}

// checkTransport returns an ErrInvalidConfig error naming the first given
// option that does not apply to transport k, or nil.
func (o *options) checkTransport(k transportKind) error {
	for _, r := range optRules {
		if o.set&r.bit != 0 && !r.applies[k] {
			return configErr("%s does not apply to %s (%s)", r.name, k, r.hint)
		}
	}
	return nil
}
