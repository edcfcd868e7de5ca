# lexigram events: the commands a developer and CI use.
GO ?= go
PKGS := ./...

.PHONY: all build run test test-faults bench bench-quick lint fmt

all: build

build:
	$(GO) build -o bin/lexigram ./cmd/lexigram

run: build
	./bin/lexigram serve

test:
	$(GO) test -race -count=1 -timeout 20m $(PKGS)

# The fault-injection suite (package faults): writers under leader
# step-downs, restarts, partitions, cut connections and SIGKILL, then a
# checker for lost, doubled and falsely refused appends. Without the race
# detector, which keeps the run near 2 minutes on two cores (make test
# runs the packages underneath with it). Replay a failed run with the
# seed it prints: LEXIGRAM_FAULT_SEED=<seed> make test-faults. Run in
# the package's directory so that go test shows the tables and the seed
# of a passing run too.
test-faults:
	cd faults && $(GO) test -tags faults -count=1 -timeout 10m

# The figures of docs/benchmarks.md: ours against the raw NATS call, same run.
bench: build
	./bin/lexigram bench
	$(GO) test -run '^$$' -bench . -benchmem ./jetstream/

bench-quick: build
	./bin/lexigram bench --quick

lint:
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet $(PKGS)
	@if $(GO) run honnef.co/go/tools/cmd/staticcheck@v0.8.2 -version >/dev/null 2>&1; then \
		$(GO) run honnef.co/go/tools/cmd/staticcheck@v0.8.2 $(PKGS); \
	else echo "staticcheck not available from the module proxy: skipped"; fi

fmt:
	gofmt -w $$(git ls-files '*.go')
