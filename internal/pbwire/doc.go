// Package pbwire is the engine's hand-written protobuf wire code for the
// gRPC transport's hot messages.
//
// Encoders append a complete ProxyToAgent message (the oneof envelope
// included) for one event straight from the payload types, with no
// intermediate protobuf structs: SizeX reports the exact encoded length so
// a caller can take a right-sized pooled buffer, AppendX writes the bytes.
// The output is byte-for-byte what vtprotobuf's MarshalVT produces for the
// message internal/pbconv builds from the same value (tests pin this).
//
// Decoders read an AgentToProxy message: ScanAgentToProxy finds the oneof
// member, ResponseCorrelationID returns the reply's correlation id as a view
// of the input (no allocation), and DecodeAgentResponse and DecodePong fill
// payload values directly. Their accept/reject behaviour and results are
// those of vtprotobuf's UnmarshalVT followed by the internal/pbconv
// conversion, including the generated code's leniencies (unchecked wire
// types inside map entries, 64-bit varint wrap-around, no UTF-8 checks); a
// differential fuzz test holds the two together.
//
// Everything here is stateless and safe for concurrent use.
package pbwire
