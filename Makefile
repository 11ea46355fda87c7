# Discovery — make targets. `make run` starts the platform (embedded etcd,
# process runtime) on :4000 with its data in ./data; `make test` runs every test.
GO            ?= go
STATICCHECK   := honnef.co/go/tools/cmd/staticcheck@v0.8.2
TEST_TIMEOUT  ?= 40m
DATA_DIR      ?= ./data
ADDR          ?= :4000

.PHONY: all build run test test-short test-browser fuzz lint fmt vet staticcheck bench clean

all: build

build:
	$(GO) build -o bin/platform ./cmd/platform
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
# bench/gateway: get-endpoint rate and latency, gateway vs direct echo RTT,
# memory per idle proxied session (BENCH_CONNS sessions).
BENCH_CONNS ?= 10000
bench:
	$(GO) test -run '^$$' -bench . -benchmem ./...
	$(GO) run ./bench/gateway -conns $(BENCH_CONNS)

clean:
	rm -rf bin
