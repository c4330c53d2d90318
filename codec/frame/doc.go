// Package frame implements the binary framing of the UDS transport of the
// agent protocol v2 (SPEC 6.1, 6.2).
//
// A frame is a 4-byte big-endian LEN, a type byte and LEN-1 payload bytes;
// LEN counts the type byte and may not exceed MaxLen (16 MiB). The type
// bytes are those the reference code uses (Type constants); its protocol
// documents list another table, which is wrong.
//
// # Writing
//
// AppendFrame appends a whole frame to a caller-owned buffer. To encode a
// payload in place, call BeginFrame, append the payload to the returned
// slice, then EndFrame:
//
//	buf, start := frame.BeginFrame(buf[:0], frame.TypeAgentResponse)
//	buf = appendJSON(buf, resp)
//	if err := frame.EndFrame(buf, start); err != nil { ... }
//
// # Reading
//
//	rd := frame.NewReader(conn, 0)
//	defer rd.Release()
//	for {
//		typ, payload, err := rd.ReadFrame() // payload valid until the next ReadFrame
//		...
//	}
//
// The Reader buffers 64 KiB at a time, so one read system call yields many
// small frames, and returns their payloads without copying. Larger payloads
// go into a pooled buffer of exactly the frame's size. LEN is validated
// before anything is allocated.
//
// # Concurrency
//
// The functions are safe for concurrent use on distinct buffers. A Reader
// belongs to one goroutine.
package frame
