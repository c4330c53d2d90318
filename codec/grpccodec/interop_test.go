package grpccodec

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"testing"
	"time"

	pb "github.com/agentwire/agentwire/proto/agentv2"
	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
)

// checkingServer answers every request from requests() with response(),
// after checking that the request arrived intact.
type checkingServer struct {
	pb.UnimplementedAgentServiceV2Server
	want map[string]*pb.ProxyToAgent
}

func newCheckingServer() *checkingServer {
	s := &checkingServer{want: map[string]*pb.ProxyToAgent{}}
	for _, r := range requests() {
		s.want[correlationOf(r)] = r
	}
	return s
}

func (s *checkingServer) answer(req *pb.ProxyToAgent) (*pb.AgentToProxy, error) {
	id := correlationOf(req)
	want, ok := s.want[id]
	if !ok || !proto.Equal(req, want) {
		return nil, status.Errorf(codes.DataLoss, "request %q arrived altered", id)
	}
	return response(id, id == "chunk-4"), nil
}

func (s *checkingServer) ProcessEvent(_ context.Context, req *pb.ProxyToAgent) (*pb.AgentToProxy, error) {
	return s.answer(req)
}

func (s *checkingServer) ProcessStream(stream grpc.BidiStreamingServer[pb.ProxyToAgent, pb.AgentToProxy]) error {
	for {
		req, err := stream.Recv()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
		resp, err := s.answer(req)
		if err != nil {
			return err
		}
		if err := stream.Send(resp); err != nil {
			return err
		}
	}
}

// sniffer is a loopback TCP proxy that decodes the HTTP/2 frames passing
// through it and records every content-type header it sees.
type sniffer struct {
	ln     net.Listener
	target string
	wg     sync.WaitGroup

	mu       sync.Mutex
	requests []string // content-type of request HEADERS (client to server)
	replies  []string // content-type of response HEADERS (server to client)
	errs     []error
}

func newSniffer(t *testing.T, target string) *sniffer {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &sniffer{ln: ln, target: target}
	s.wg.Add(1)
	go s.accept()
	return s
}

func (s *sniffer) accept() {
	defer s.wg.Done()
	for {
		c, err := s.ln.Accept()
		if err != nil {
			return
		}
		up, err := net.Dial("tcp", s.target)
		if err != nil {
			c.Close()
			continue
		}
		s.wg.Add(2)
		go s.pipe(up, c, true)
		go s.pipe(c, up, false)
	}
}

// pipe copies src to dst and decodes a copy of the bytes.
func (s *sniffer) pipe(dst, src net.Conn, fromClient bool) {
	defer s.wg.Done()
	pr, pw := io.Pipe()
	done := make(chan struct{})
	go func() {
		defer close(done)
		s.decode(pr, fromClient)
		_, _ = io.Copy(io.Discard, pr)
	}()
	_, _ = io.Copy(dst, io.TeeReader(src, pw))
	pw.Close()
	<-done
	// Closing both ends unblocks the opposite pipe.
	dst.Close()
	src.Close()
}

func (s *sniffer) decode(r io.Reader, fromClient bool) {
	br := bufio.NewReader(r)
	if fromClient {
		preface := make([]byte, len(http2.ClientPreface))
		if _, err := io.ReadFull(br, preface); err != nil || string(preface) != http2.ClientPreface {
			return
		}
	}
	fr := http2.NewFramer(nil, br)
	fr.ReadMetaHeaders = hpack.NewDecoder(4096, nil)
	for {
		f, err := fr.ReadFrame()
		if err != nil {
			if !errors.Is(err, io.EOF) && !errors.Is(err, io.ErrUnexpectedEOF) {
				s.mu.Lock()
				s.errs = append(s.errs, err)
				s.mu.Unlock()
			}
			return
		}
		mh, ok := f.(*http2.MetaHeadersFrame)
		if !ok {
			continue
		}
		if ct := mh.PseudoValue("method") + mh.PseudoValue("status"); ct == "" {
			continue // trailers
		}
		for _, hf := range mh.RegularFields() {
			if hf.Name == "content-type" {
				s.mu.Lock()
				if fromClient {
					s.requests = append(s.requests, hf.Value)
				} else {
					s.replies = append(s.replies, hf.Value)
				}
				s.mu.Unlock()
			}
		}
	}
}

func (s *sniffer) close() {
	s.ln.Close()
	s.wg.Wait()
}

func (s *sniffer) seen() (requests, replies []string, errs []error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.requests...), append([]string(nil), s.replies...), append([]error(nil), s.errs...)
}

// runPair starts a server (with or without our codec) behind a sniffer,
// dials it (with or without our codec), runs every request through the
// unary and the streaming RPC, and returns the content types seen.
func runPair(t *testing.T, clientOurs, serverOurs bool) (reqCT, replyCT []string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()

	var sopts []grpc.ServerOption
	if serverOurs {
		sopts = append(sopts, ServerOption())
	}
	srv := grpc.NewServer(sopts...)
	pb.RegisterAgentServiceV2Server(srv, newCheckingServer())
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	sn := newSniffer(t, ln.Addr().String())

	dopts := []grpc.DialOption{grpc.WithTransportCredentials(insecure.NewCredentials())}
	if clientOurs {
		dopts = append(dopts, ClientOption())
	}
	conn, err := grpc.NewClient(sn.ln.Addr().String(), dopts...)
	if err != nil {
		t.Fatal(err)
	}
	client := pb.NewAgentServiceV2Client(conn)

	reqs := requests()
	for _, r := range reqs {
		got, err := client.ProcessEvent(ctx, r)
		id := correlationOf(r)
		if err != nil {
			t.Fatalf("ProcessEvent %s: %v", id, err)
		}
		if !proto.Equal(got, response(id, id == "chunk-4")) {
			t.Fatalf("ProcessEvent %s: response arrived altered", id)
		}
	}
	stream, err := client.ProcessStream(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range reqs {
		if err := stream.Send(r); err != nil {
			t.Fatalf("Send: %v", err)
		}
	}
	if err := stream.CloseSend(); err != nil {
		t.Fatal(err)
	}
	for _, r := range reqs {
		id := correlationOf(r)
		got, err := stream.Recv()
		if err != nil {
			t.Fatalf("Recv %s: %v", id, err)
		}
		if !proto.Equal(got, response(id, id == "chunk-4")) {
			t.Fatalf("ProcessStream %s: response arrived altered", id)
		}
	}
	if _, err := stream.Recv(); err != io.EOF {
		t.Fatalf("end of stream: %v", err)
	}

	conn.Close()
	srv.Stop()
	if err := <-served; err != nil {
		t.Fatalf("Serve: %v", err)
	}
	sn.close()
	reqCT, replyCT, errs := sn.seen()
	for _, err := range errs {
		t.Errorf("HTTP/2 decode: %v", err)
	}
	return reqCT, replyCT
}

func allEqual(vals []string, want string) error {
	if len(vals) == 0 {
		return errors.New("no content-type seen")
	}
	for _, v := range vals {
		if v != want {
			return fmt.Errorf("content-type %q, want %q (all: %q)", v, want, vals)
		}
	}
	return nil
}

// TestInterop runs our codec against grpc-go's default codec in both
// directions (and both ours, and neither as a control) on a real loopback
// server, and records the content-type grpc-go puts on the wire.
func TestInterop(t *testing.T) {
	for _, tc := range []struct {
		name                   string
		clientOurs, serverOurs bool
		wantRequest, wantReply string
	}{
		// grpc-go names the content-subtype after a forced codec.
		{"client_ours_server_default", true, false, "application/grpc+proto", "application/grpc+proto"},
		// A grpc-go server echoes the client's subtype, so a tonic or
		// default grpc-go client gets plain application/grpc.
		{"client_default_server_ours", false, true, "application/grpc", "application/grpc"},
		{"both_ours", true, true, "application/grpc+proto", "application/grpc+proto"},
		{"both_default", false, false, "application/grpc", "application/grpc"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			requests, replies := runPair(t, tc.clientOurs, tc.serverOurs)
			if err := allEqual(requests, tc.wantRequest); err != nil {
				t.Errorf("requests: %v", err)
			}
			if err := allEqual(replies, tc.wantReply); err != nil {
				t.Errorf("replies: %v", err)
			}
			// 7 unary calls + 1 stream.
			if len(requests) != 8 || len(replies) != 8 {
				t.Errorf("saw %d request and %d reply header blocks, want 8 each", len(requests), len(replies))
			}
		})
	}
}
