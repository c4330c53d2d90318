package agentwire

// LogLevel is the severity of a log line an agent forwards to the proxy
// (proto LogLevel; integer form on the wire).
type LogLevel int32

// Log levels.
const (
	LogUnspecified LogLevel = 0
	LogDebug       LogLevel = 1
	LogInfo        LogLevel = 2
	LogWarn        LogLevel = 3
	LogError       LogLevel = 4
)

// String returns the lower-case level name ("debug", "info", "warn",
// "error"), or "unspecified" for any other value.
func (l LogLevel) String() string {
	switch l {
	case LogDebug:
		return "debug"
	case LogInfo:
		return "info"
	case LogWarn:
		return "warn"
	case LogError:
		return "error"
	}
	return "unspecified"
}

// LogMessage is a log line forwarded by an agent (gRPC
// AgentToProxy.log / AgentControl.log; the Unix socket has no log message).
type LogMessage struct {
	Level         LogLevel
	Message       string
	CorrelationID Opt[string]
	Fields        map[string]string
	TimestampMS   uint64
}
