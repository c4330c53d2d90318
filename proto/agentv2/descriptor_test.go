package agentv2_test

import (
	"flag"
	"fmt"
	"os"
	"sort"
	"strings"
	"testing"

	"google.golang.org/protobuf/reflect/protoreflect"

	"github.com/agentwire/agentwire/proto/agentv2"
)

var update = flag.Bool("update", false, "rewrite testdata/descriptor.golden")

// describe renders every message, field, oneof and enum of the schema as
// sorted lines, so any drift in a name, number, type, label or oneof shows.
func describe(fd protoreflect.FileDescriptor) []string {
	var out []string
	var walkMsg func(md protoreflect.MessageDescriptor)
	walkEnum := func(ed protoreflect.EnumDescriptor) {
		vals := ed.Values()
		for i := 0; i < vals.Len(); i++ {
			v := vals.Get(i)
			out = append(out, fmt.Sprintf("enum %s %s = %d", ed.FullName(), v.Name(), v.Number()))
		}
	}
	walkMsg = func(md protoreflect.MessageDescriptor) {
		out = append(out, fmt.Sprintf("message %s", md.FullName()))
		fields := md.Fields()
		for i := 0; i < fields.Len(); i++ {
			f := fields.Get(i)
			typ := f.Kind().String()
			switch {
			case f.IsMap():
				typ = fmt.Sprintf("map<%s,%s>", f.MapKey().Kind(), f.MapValue().Kind())
			case f.Kind() == protoreflect.MessageKind:
				typ = string(f.Message().FullName())
			case f.Kind() == protoreflect.EnumKind:
				typ = string(f.Enum().FullName())
			}
			label := "singular"
			switch {
			case f.IsMap():
				label = "map"
			case f.Cardinality() == protoreflect.Repeated:
				label = "repeated"
			case f.HasOptionalKeyword():
				label = "optional"
			case f.ContainingOneof() != nil:
				label = "oneof " + string(f.ContainingOneof().Name())
			}
			out = append(out, fmt.Sprintf("field %s.%s = %d %s %s json=%s", md.FullName(), f.Name(), f.Number(), typ, label, f.JSONName()))
		}
		for i := 0; i < md.Enums().Len(); i++ {
			walkEnum(md.Enums().Get(i))
		}
		for i := 0; i < md.Messages().Len(); i++ {
			if !md.Messages().Get(i).IsMapEntry() {
				walkMsg(md.Messages().Get(i))
			}
		}
	}
	for i := 0; i < fd.Enums().Len(); i++ {
		walkEnum(fd.Enums().Get(i))
	}
	for i := 0; i < fd.Messages().Len(); i++ {
		walkMsg(fd.Messages().Get(i))
	}
	for i := 0; i < fd.Services().Len(); i++ {
		sd := fd.Services().Get(i)
		for j := 0; j < sd.Methods().Len(); j++ {
			m := sd.Methods().Get(j)
			out = append(out, fmt.Sprintf("rpc %s.%s(%s%s) returns (%s%s)", sd.FullName(), m.Name(),
				stream(m.IsStreamingClient()), m.Input().FullName(), stream(m.IsStreamingServer()), m.Output().FullName()))
		}
	}
	sort.Strings(out)
	return out
}

func stream(b bool) string {
	if b {
		return "stream "
	}
	return ""
}

func TestDescriptorPinned(t *testing.T) {
	fd := agentv2.File_agent_v2_proto
	if got := fd.Package(); got != "zentinel.agent.v2" {
		t.Fatalf("package = %q", got)
	}
	if fd.Syntax() != protoreflect.Proto3 {
		t.Fatalf("syntax = %v", fd.Syntax())
	}
	got := strings.Join(describe(fd), "\n") + "\n"
	const golden = "testdata/descriptor.golden"
	if *update {
		if err := os.WriteFile(golden, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatal(err)
	}
	if got != string(want) {
		gl, wl := strings.Split(got, "\n"), strings.Split(string(want), "\n")
		for i := 0; i < max(len(gl), len(wl)); i++ {
			var g, w string
			if i < len(gl) {
				g = gl[i]
			}
			if i < len(wl) {
				w = wl[i]
			}
			if g != w {
				t.Fatalf("schema drift at line %d:\n got: %s\nwant: %s", i+1, g, w)
			}
		}
	}
}

// The full method paths are what travels on the wire; pin them literally.
func TestMethodPaths(t *testing.T) {
	want := map[string]string{
		agentv2.AgentServiceV2_ProcessStream_FullMethodName: "/zentinel.agent.v2.AgentServiceV2/ProcessStream",
		agentv2.AgentServiceV2_ControlStream_FullMethodName: "/zentinel.agent.v2.AgentServiceV2/ControlStream",
		agentv2.AgentServiceV2_ProcessEvent_FullMethodName:  "/zentinel.agent.v2.AgentServiceV2/ProcessEvent",
	}
	for got, w := range want {
		if got != w {
			t.Errorf("method path %q, want %q", got, w)
		}
	}
	if agentv2.AgentServiceV2_ServiceDesc.ServiceName != "zentinel.agent.v2.AgentServiceV2" {
		t.Errorf("service name %q", agentv2.AgentServiceV2_ServiceDesc.ServiceName)
	}
}
