package pbwire

import (
	"fmt"
	"strings"
	"testing"

	"github.com/agentwire/agentwire"
	"github.com/agentwire/agentwire/internal/pbconv"
	pb "github.com/agentwire/agentwire/proto/agentv2"
)

// TestPlainEncoderLengthBoundaries checks the request-headers encoder
// against vtproto where its one-byte shortcuts end: strings and header
// bodies of 0, 1, 2-byte-varint lengths (127/128 and around a header body
// of 128), 3-byte varints (16,384), every metadata string and the method
// and URI at those lengths, each ASCII and with one non-ASCII byte (the
// generic path).
func TestPlainEncoderLengthBoundaries(t *testing.T) {
	lengths := []int{0, 1, 60, 61, 62, 63, 124, 125, 126, 127, 128, 129, 16383, 16384, 16385}
	for _, non := range []bool{false, true} {
		for _, n := range lengths {
			for _, m := range []int{0, 1, 63, 127, 128} {
				s := strings.Repeat("a", n)
				v := strings.Repeat("v", m)
				if non && n > 0 {
					s = "\xff" + s[1:]
				}
				ev := sampleHeaders()
				ev.Method = s
				ev.URI = v + s
				ev.Metadata.CorrelationID = s
				ev.Metadata.ClientIP = v
				ev.Metadata.ServerName = agentwire.Some(s)
				ev.Metadata.Traceparent = v
				ev.Metadata.RouteID = agentwire.Some(v)
				ev.Headers = append(ev.Headers,
					agentwire.Header{Name: s, Values: []string{v, s, ""}},
					agentwire.Header{Name: v, Values: []string{s}},
					agentwire.Header{Name: "", Values: []string{s, v}})
				want := marshal(t, &pb.ProxyToAgent{Message: &pb.ProxyToAgent_RequestHeaders{
					RequestHeaders: pbconv.RequestHeadersEventToPB(ev, nowMS),
				}})
				name := fmt.Sprintf("non-ascii=%v/%d/%d", non, n, m)
				sz := MeasureRequestHeaders(ev, nowMS)
				if sz.plain == non && n > 0 {
					t.Errorf("%s: plain=%v", name, sz.plain)
				}
				check(t, name, AppendMeasuredRequestHeaders(make([]byte, 0, sz.Len), ev, sz), sz.Len, want)
			}
		}
	}
}
