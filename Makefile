# Discovery — make targets. `make run` starts the platform (embedded etcd,
# process runtime) on :4000 with its data in ./data; `make test` runs every test.
GO            ?= go
STATICCHECK   := honnef.co/go/tools/cmd/staticcheck@v0.8.2
TEST_TIMEOUT  ?= 40m
DATA_DIR      ?= ./data
ADDR          ?= :4000

.PHONY: all build run test test-short test-browser fuzz lint fmt vet staticcheck bench chaos clean testcluster-bin testcluster

all: build

build:
	$(GO) build -o bin/platform ./cmd/platform
	$(GO) build -o bin/discovery-supervisor ./cmd/discovery-supervisor
	$(GO) build -o bin/dsh ./cmd/dsh
	$(GO) build -o bin/hello ./examples/hello
	$(GO) build -o bin/arena ./examples/arena

GATEWAY_ADDR ?= :4001

run: build
	./bin/platform --addr $(ADDR) --gateway-addr $(GATEWAY_ADDR) --data-dir $(DATA_DIR)

# Every test, race detector on, against embedded etcd and real processes.
# The yaegi interpreter itself trips the race detector (FACTS.md), so the
# in-process interpreter tests in ./shell run without -race; everything else
# (dsh's own tests included: they run the binary) runs with it.
test:
	$(GO) test -race -count=1 -timeout $(TEST_TIMEOUT) $$($(GO) list ./... | grep -v '/shell$$')
	$(GO) test -count=1 -timeout $(TEST_TIMEOUT) ./shell/

# The Kubernetes test cluster (internal/testkit/kubetest): kube-apiserver,
# kube-controller-manager, kube-scheduler and kubectl built from the separate
# module deploy/testcluster (k8s.io/kubernetes). File targets: rebuilt only
# when that module changes (14.5 min cold on 2 cores with downloads; a relink
# after a go.sum change takes ~25 s per binary).
# `make test` needs them; DISCOVERY_SKIP_KUBE=1 skips both the build and the
# Kubernetes tests (a developer opt-out, never set in CI).
KUBE_BINS := $(addprefix bin/testcluster/,kube-apiserver kube-controller-manager kube-scheduler kubectl)

testcluster-bin: $(KUBE_BINS)

# The version the components report (kubectl version, /version) comes from
# ldflags, as in Kubernetes' own build; without it they say v0.0.0-master.
KUBE_VERSION = $(shell cd deploy/testcluster && $(GO) list -m -f '{{.Version}}' k8s.io/kubernetes)
KUBE_LDFLAGS = $(foreach p,k8s.io/component-base/version k8s.io/client-go/pkg/version,\
  -X $(p).gitVersion=$(KUBE_VERSION) -X $(p).gitMajor=$(word 1,$(subst ., ,$(KUBE_VERSION:v%=%))) \
  -X $(p).gitMinor=$(word 2,$(subst ., ,$(KUBE_VERSION))) -X $(p).gitTreeState=clean)

bin/testcluster/%: deploy/testcluster/cmd/%/main.go deploy/testcluster/go.mod deploy/testcluster/go.sum
	cd deploy/testcluster && $(GO) build -ldflags "$(KUBE_LDFLAGS)" -o ../../$@ ./cmd/$*

ifneq ($(DISCOVERY_SKIP_KUBE),1)
test: testcluster-bin
endif

# A cluster with one process node, by hand, until Ctrl-C; it prints its
# kubeconfig. TESTCLUSTER_FLAGS e.g. "-image example/hello:1=bin/hello -v".
testcluster: testcluster-bin
	$(GO) build -o bin/testcluster/testcluster ./internal/testkit/kubetest/testcluster
	./bin/testcluster/testcluster $(TESTCLUSTER_FLAGS)

# A bounded fuzz run of request decoding and validation (seeds also run in make test).
FUZZTIME ?= 15s
fuzz:
	$(GO) test -run '^$$' -fuzz FuzzRequestDecoding -fuzztime $(FUZZTIME) ./api/

test-short:
	$(GO) test -count=1 -short ./...

# Bridge in a real browser (Debian's chromium; make test runs it too); it saves
# screenshots to docs/screenshots.
test-browser:
	$(GO) test -count=1 -v ./test/browser/

lint: fmt vet staticcheck

fmt:
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt would change:"; echo "$$out"; exit 1; fi

vet:
	$(GO) vet ./...

staticcheck:
	$(GO) run $(STATICCHECK) ./...

# Benchmarks print figures; they are never timed unit tests.
# bench/gateway: one table of the gateway beside nginx and HAProxy (installed
# from apt when missing) against the same echo replica: added p50/p99 over a
# direct connection, CPU and system calls (strace) per round trip, KB per idle
# session at 9900 sessions (what one process holds at the 20000 fd limit), and
# the ratios to the anchors; in sections of their own, get-endpoint rate,
# latency and CPU per call, and the autoscaler's answer to a burst.
# bench/control: deploy -> active, cold start, and the control plane at
# 10 / 1k / 10k / 100k apps (creation rate, idle CPU, get-endpoint p50/p99).
# bench/sessions: 50,000 idle sessions through --gateway-procs 8 (RSS, fds).
# bench/baseline: BENCH_CONNS sessions opened and closed over two gateway
# processes; fails unless goroutines, fds and live heap return to baseline
# (a 4000-session version runs in make test); then the same over wss://.
BENCH_CONNS ?= 10000
bench:
	$(GO) test -run '^$$' -bench . -benchmem ./...
	$(GO) run ./bench/gateway -strace
	$(GO) run ./bench/control
	$(GO) run ./bench/sessions
	$(GO) run ./bench/baseline -sessions $(BENCH_CONNS)
	$(GO) run ./bench/baseline -sessions $(BENCH_CONNS) -tls

# A long chaos run by hand (the short one is TestChaosShort in make test):
# the soak under SIGKILLs of the platform, a gateway and replicas and etcd
# restarts; exits non-zero when a session is dropped, a replica orphaned or
# double-started, a revision stuck or an event lost. CHAOS_SEED=0: from the clock.
CHAOS_DURATION ?= 10m
CHAOS_CLIENTS  ?= 100
CHAOS_SEED     ?= 0
chaos:
	$(GO) run ./bench/chaos -duration $(CHAOS_DURATION) -clients $(CHAOS_CLIENTS) -seed $(CHAOS_SEED)

clean:
	rm -rf bin
