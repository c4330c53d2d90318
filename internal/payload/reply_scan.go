package payload

// One-pass reading of the common 0x20 replies.
//
// The proxy routes a reply by its correlation id before it knows where to
// decode it (the waiting caller's AgentResponse), so the general path
// reads a reply twice: a scan for the id, then the full decode. The
// replies agents actually send are few in shape and are written by
// serializers with a fixed field order (serde_json and rmp_serde in the
// Rust SDK, AppendAgentResponseJSON and AppendAgentResponseMsgpack in
// agentwire's): version, decision (allow, or block without headers),
// request and response header operations, and an audit whose custom map
// holds the correlation id and nothing else. ScanReplyJSON and
// ScanReplyMsgpack read such a reply once, check all of it, and record
// where its strings are; after the lookup, DecodeJSON or DecodeMsgpack
// writes the recorded reply into the destination without reading the
// bytes again.
//
// Anything else (another field order, an unknown key, whitespace, escape
// sequences or non-ASCII text in a string, routing metadata, tags, a body
// mutation, more than ReplyScanOps header operations...) is refused, and
// the caller decodes the reply with the general decoder. Whatever the scan
// accepts, the general decoder of the same encoding accepts too and
// decodes into the same AgentResponse (FuzzReplyScanJSON and
// FuzzReplyScanMsgpack compare the two on arbitrary input).

// ReplyScanOps is the largest number of header operations (request and
// response together) a ReplyScan records; a reply with more is refused.
const ReplyScanOps = 8

// replySpan is the position of a string's bytes in the scanned payload.
type replySpan struct{ start, end int32 }

func (s replySpan) of(p []byte) []byte { return p[s.start:s.end] }

type replyOp struct {
	kind        HeaderOpKind
	name, value replySpan
}

// ReplyScan is what ScanReplyJSON or ScanReplyMsgpack recorded of one
// reply: its scalar fields, and the positions of its strings in the
// payload. The zero value is ready for use; a scan overwrites it. It is
// meant to live on the reading goroutine's stack. Not safe for concurrent
// use.
type ReplyScan struct {
	version    uint32
	decision   DecisionKind
	status     uint16
	bodyValid  bool
	needsMore  bool
	body       replySpan
	id         replySpan
	nReq, nOps int // ops[:nReq] are request header ops, ops[nReq:nOps] response ones
	ops        [ReplyScanOps]replyOp
}

// replyPlain reports whether b is text the JSON decoder stores unchanged:
// ASCII from 0x20 to 0x7f without a quote or a backslash.
func replyPlain(b []byte) bool {
	for _, c := range b {
		if !jsonStrPlain[c] {
			return false
		}
	}
	return true
}
