# Verdict — build, run and test. Needs only Go (see go.mod for the version).
GO        ?= go
BIN       := bin/verdict
VERSION   ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS   := -X main.version=$(VERSION)
ADDR      ?= 127.0.0.1:8700
BUNDLE    ?= policies/quickstart

.PHONY: all build install run test lint bench bench-compare bench-growth soak fuzz fuzz-corpus deploy-check proto screenshots clean

all: lint test build

## build: compile bin/verdict
build:
	$(GO) build -ldflags "$(LDFLAGS)" -o $(BIN) ./cmd/verdict

## install: go install the version-stamped verdict into $(go env GOPATH)/bin (GOBIN if set), so that `verdict` is on the PATH
install:
	$(GO) install -ldflags "$(LDFLAGS)" ./cmd/verdict

## run: build and serve the quickstart bundle on $(ADDR) in dev mode (no caller authentication on loopback)
run: build
	./$(BIN) serve --dev --addr $(ADDR) --bundle $(BUNDLE)

# -race needs cgo, and cgo a C compiler: without one, the suite runs without
# the race detector (CI, with VERDICT_REQUIRE_INTEGRATION=1, refuses that).
RACE      := $(shell [ "$$($(GO) env CGO_ENABLED)" = 1 ] && command -v "$$($(GO) env CC)" >/dev/null 2>&1 && echo -race)

## test: the whole suite with the race detector, the latency budgets, and every example bundle's own tests
test:
	@if [ -z "$(RACE)" ]; then \
	  if [ "$(VERDICT_REQUIRE_INTEGRATION)" = 1 ]; then echo "make test: -race needs a C compiler (cgo); install gcc"; exit 1; fi; \
	  echo "make test: no C compiler, so cgo is off: running WITHOUT the race detector (install gcc for -race)"; \
	fi
	$(GO) test $(RACE) -count=1 ./...
	$(GO) test -count=1 ./bench/
	$(GO) test -count=1 -run '^TestPlansSelectWhatDecideAllows$$' ./cmd/verdict
	$(GO) build -ldflags "$(LDFLAGS)" -o $(BIN) ./cmd/verdict
	@for b in policies/*/; do ./$(BIN) bundle test $$b || exit 1; done

# The generators of the gRPC access API's Go code (grpcapi/accessv1, committed):
# protoc from Debian's protobuf-compiler, the two plugins at pinned versions.
PROTOC_GEN_GO      := google.golang.org/protobuf/cmd/protoc-gen-go@v1.36.12
PROTOC_GEN_GO_GRPC := google.golang.org/grpc/cmd/protoc-gen-go-grpc@v1.6.0
TOOLS              := $(CURDIR)/bin/tools

## proto: regenerate grpcapi/accessv1 from grpcapi/proto (needs protoc: apt-get install protobuf-compiler)
proto:
	@command -v protoc >/dev/null || { echo "make proto: protoc is missing: apt-get install -y protobuf-compiler"; exit 1; }
	GOBIN=$(TOOLS) GOFLAGS= $(GO) install $(PROTOC_GEN_GO)
	GOBIN=$(TOOLS) GOFLAGS= $(GO) install $(PROTOC_GEN_GO_GRPC)
	PATH=$(TOOLS):$$PATH protoc -I grpcapi/proto \
	  --go_out=. --go_opt=module=github.com/verdictpdp/verdict \
	  --go-grpc_out=. --go-grpc_opt=module=github.com/verdictpdp/verdict \
	  grpcapi/proto/verdict/access/v1/access.proto

## screenshots: the console's pages in headless Chromium, saved in docs/console/ (shown in docs/console.md)
screenshots:
	VERDICT_SCREENSHOTS=$(CURDIR)/docs/console $(GO) test -count=1 -run TestConsoleInChromium ./cmd/verdict

## lint: gofmt and go vet
lint:
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	  if [ -n "$$out" ]; then echo "gofmt would change:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...

## bench: the latency benchmarks with allocations
bench:
	$(GO) test -run '^$$' -bench . -benchmem ./bench/

# The side-by-side table of docs/performance.md (Verdict, OPA's server and a
# bare Fiber handler in one run), checked against the full targets of issue
# 12; the table is also written to bench-compare.md.
bench-compare:
	VERDICT_BENCH_COMPARE=1 VERDICT_BENCH_TABLE=$(CURDIR)/bench-compare.md $(GO) test -count=1 -run '^TestCompare$$' -v -timeout 10m ./bench/

# How cost grows with the bundle (10-1,000 rules, 1k-1M entities, CEL and
# Rego): the table (bench-growth.md) and the plot of docs/performance.md.
bench-growth:
	VERDICT_BENCH_GROWTH=1 VERDICT_BENCH_TABLE=$(CURDIR)/bench-growth.md VERDICT_BENCH_SVG=$(CURDIR)/docs/performance-growth.svg $(GO) test -count=1 -run '^TestGrowth$$' -v -timeout 60m ./bench/

## soak: a real verdict serve for SOAK (30m) at SOAK_LOAD (80%) of its measured capacity: decisions, tokens, introspection and a signed bundle push every minute; fails on any error or a rising RSS or goroutine count (docs/performance.md, Soak; CI runs SOAK=1m). The report is also written to bin/bench-soak.md
SOAK         ?= 30m
SOAK_TIMEOUT ?= 2h
SOAK_LOAD    ?= 0.8
soak:
	@mkdir -p bin
	VERDICT_BENCH_TABLE=$(CURDIR)/bin/bench-soak.md $(GO) test -count=1 -run '^TestSoak$$' -v -timeout $(SOAK_TIMEOUT) ./bench/ -soak=$(SOAK) -soak-load=$(SOAK_LOAD)

## fuzz: run every fuzz target for a short while (FUZZTIME=30s to change); CI runs them 10 s each
FUZZTIME ?= 20s
fuzz:
	FUZZTIME=$(FUZZTIME) .ci/fuzz

## fuzz-corpus: fuzz every target CORPUS_FUZZTIME (60s) and keep its corpus in the package's testdata/fuzz/ (at most 50 entries of 4 KiB a target): commit what it adds
CORPUS_FUZZTIME ?= 60s
fuzz-corpus:
	FUZZTIME=$(CORPUS_FUZZTIME) FUZZ_CORPUS=1 .ci/fuzz

## deploy-check: the Dockerfile and deploy/: Kubernetes manifests against the API types, the pod's config, alert rules (promtool, installed when missing) and dashboard against the exported metrics, the image's file system run read-only and non-root (as root; docs/deploy.md)
deploy-check:
	.ci/deploy-check

clean:
	rm -rf bin
