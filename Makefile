# agentwire — developer tasks. `make test` is what CI runs.

GO            ?= go
PROTOC        ?= protoc
FUZZTIME      ?= 30s
BENCHTIME     ?= 1s
COUNT         ?= 6
BIN           := $(CURDIR)/.bin

# Pinned code generators (installed into .bin by `make tools`).
PROTOC_GEN_GO_VERSION      := v1.36.12
PROTOC_GEN_GO_GRPC_VERSION := v1.6.2
PROTOC_GEN_VTPROTO_VERSION := v0.6.1-0.20240319094008-0393e58bdf10
MSGP_VERSION               := v1.6.5
STATICCHECK_VERSION        := v0.7.0
# HTTP load generator of bench/gateway.sh (installed into .bin by `make loadtools`).
VEGETA_VERSION             := v12.13.0

VTPROTO_POOL := \
	--go-vtproto_opt=pool=github.com/agentwire/agentwire/proto/agentv2.ProxyToAgent \
	--go-vtproto_opt=pool=github.com/agentwire/agentwire/proto/agentv2.AgentToProxy \
	--go-vtproto_opt=pool=github.com/agentwire/agentwire/proto/agentv2.RequestHeadersEvent \
	--go-vtproto_opt=pool=github.com/agentwire/agentwire/proto/agentv2.BodyChunkEvent \
	--go-vtproto_opt=pool=github.com/agentwire/agentwire/proto/agentv2.AgentResponse

.PHONY: all build test test-short vet bench fuzz proto proto-check tools lint demo pprof compare soak pgo bench-report waf-bench waf-bench-gateway waf-soak loadtools bench-gateway clean

all: build

build:
	$(GO) build ./...

vet:
	$(GO) vet ./...

# vet + race tests; fuzz targets run over their seed corpora as ordinary tests.
# Twice: under the race detector, then without it, which also runs the
# tests that only mean something without it (exact allocation counts, the heap
# per pending request; they carry //go:build !race).
test: vet
	$(GO) test -race -count=1 -timeout 20m ./...
	$(GO) test -count=1 -timeout 10m ./...

test-short:
	$(GO) test -count=1 ./...

bench:
	$(GO) test -run '^$$' -bench . -benchmem -benchtime $(BENCHTIME) -count $(COUNT) ./codec/... ./ring/... ./engine/... ./agent/...

# Run every fuzz target for FUZZTIME each.
fuzz:
	@set -e; for pkg in $$($(GO) list ./...); do \
	  for t in $$($(GO) test -list '^Fuzz' $$pkg | grep '^Fuzz' || true); do \
	    echo "== $$pkg $$t"; $(GO) test -run '^$$' -fuzz "^$$t$$" -fuzztime $(FUZZTIME) $$pkg; \
	  done; done

tools:
	GOBIN=$(BIN) $(GO) install google.golang.org/protobuf/cmd/protoc-gen-go@$(PROTOC_GEN_GO_VERSION)
	GOBIN=$(BIN) $(GO) install google.golang.org/grpc/cmd/protoc-gen-go-grpc@$(PROTOC_GEN_GO_GRPC_VERSION)
	GOBIN=$(BIN) $(GO) install github.com/planetscale/vtprotobuf/cmd/protoc-gen-go-vtproto@$(PROTOC_GEN_VTPROTO_VERSION)
	GOBIN=$(BIN) $(GO) install github.com/tinylib/msgp@$(MSGP_VERSION)

# Regenerate proto/agentv2 from proto/agent_v2.proto (needs protoc: apt-get install protobuf-compiler).
proto: tools
	$(PROTOC) -I proto \
	  --plugin=protoc-gen-go=$(BIN)/protoc-gen-go \
	  --plugin=protoc-gen-go-grpc=$(BIN)/protoc-gen-go-grpc \
	  --plugin=protoc-gen-go-vtproto=$(BIN)/protoc-gen-go-vtproto \
	  --go_out=. --go_opt=module=github.com/agentwire/agentwire \
	  --go-grpc_out=. --go-grpc_opt=module=github.com/agentwire/agentwire \
	  --go-vtproto_out=. --go-vtproto_opt=module=github.com/agentwire/agentwire \
	  --go-vtproto_opt=features=marshal+unmarshal+size+pool+equal+clone \
	  $(VTPROTO_POOL) \
	  proto/agent_v2.proto

# Fails when the committed generated code differs from what `make proto` produces.
proto-check: proto
	git diff --exit-code -- proto/ || (echo "proto/: generated code is stale; run make proto and commit" >&2; exit 1)
	@test -z "$$(git status --porcelain -- proto/)" || (git status --porcelain -- proto/; echo "proto/: untracked generated files" >&2; exit 1)

lint:
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...
	$(GO) run honnef.co/go/tools/cmd/staticcheck@$(STATICCHECK_VERSION) ./...

demo:
	$(GO) run ./cmd/agentwire demo

# Profile the engine against an in-process echo agent under load:
# make pprof TRANSPORT=uds PPROF_DURATION=20s PPROF_OUT=/tmp/prof
TRANSPORT      ?= grpc
PPROF_DURATION ?= 10s
PPROF_OUT      ?= /tmp/agentwire-prof
pprof:
	$(GO) run ./pprof -transport $(TRANSPORT) -duration $(PPROF_DURATION) -out $(PPROF_OUT)

# agentwire vs ../shared/baseline in one run (agent and load in separate processes):
# make compare TRANSPORTS=grpc CONC=64 DUR=5s [PROCS=1: GOMAXPROCS of every measured process]
TRANSPORTS ?= grpc uds
CONC       ?= 1 16 64 256
DUR        ?= 5s
SOAK_DUR   ?= 10m
PGO_DUR    ?= 15s
compare:
	TRANSPORTS="$(TRANSPORTS)" CONC="$(CONC)" DUR="$(DUR)" PROCS="$(PROCS)" GO="$(GO)" bench/compare.sh

# Rewrite the README's performance table (between <!-- bench:begin --> and
# <!-- bench:end -->) from committed raw results (bench/results/*.jsonl, which
# compare.sh, ab.sh, abclient.sh and soak.sh append to): by default the newest
# compare run; make bench-report BENCH_RESULTS="bench/results/A.jsonl ..."
BENCH_RESULTS ?=
bench-report:
	$(GO) run ./bench/report -readme README.md $(BENCH_RESULTS)

# Regenerate cmd/agentwire/default.pgo (profile-guided optimization of the
# agentwire binary; go build picks it up by itself): make pgo
pgo:
	DUR="$(PGO_DUR)" GO="$(GO)" bench/pgo.sh

# Long run against the echo agent, failing if either process's resident
# memory grows (bench/soak.sh): make soak SOAK_DUR=10m
soak:
	DUR="$(SOAK_DUR)" GO="$(GO)" bench/soak.sh

# The WAF agent out of process vs Coraza in-process over the WAF corpus at
# 64 in flight, engine level (bench/waf.sh): make waf-bench WAF_CYCLES=2
WAF_CYCLES ?= 2
waf-bench:
	CYCLES="$(WAF_CYCLES)" GO="$(GO)" bench/waf.sh

# The gateway with the WAF agent over a Unix socket vs the same gateway
# running Coraza in-process (--waf-inprocess) at 64 connections, with
# vegeta (bench/waf.sh gateway): make waf-bench-gateway [GATEWAY_DUR=10s GATEWAY_ROUNDS=3]
waf-bench-gateway: loadtools
	GO="$(GO)" VEGETA="$(BIN)/vegeta" DUR="$(GATEWAY_DUR)" ROUNDS="$(GATEWAY_ROUNDS)" bench/waf.sh gateway

# The WAF agent's resident memory under load (bench/waf-soak.sh): make waf-soak SOAK_DUR=10m
waf-soak:
	DUR="$(SOAK_DUR)" GO="$(GO)" bench/waf-soak.sh

# The HTTP load generator of bench/gateway.sh.
loadtools:
	GOBIN=$(BIN) $(GO) install github.com/tsenart/vegeta/v12@$(VEGETA_VERSION)

# The gateway with one echo agent against the gateway without agent
# (throughput at 64 connections, p50 at 1, memory per streaming upload):
# make bench-gateway [GATEWAY_DUR=10s GATEWAY_ROUNDS=3] (bench/gateway.sh)
GATEWAY_DUR    ?= 10s
GATEWAY_ROUNDS ?= 3
bench-gateway: loadtools
	GO="$(GO)" VEGETA="$(BIN)/vegeta" DUR="$(GATEWAY_DUR)" ROUNDS="$(GATEWAY_ROUNDS)" bench/gateway.sh

clean:
	rm -rf $(BIN)
