# vigil — two commands on a fresh machine: `make demo` and `make test`.
# Both install what is missing first (Scripts/install-deps: apt + pip, idempotent).

SWIFT ?= swift
BIN = $(shell $(SWIFT) build --show-bin-path)

.PHONY: deps build test demo demo-plumbing bench mutation clean

deps:
	@Scripts/install-deps

build: deps
	$(SWIFT) build

# Every test: unit, in-process Kafka, and multi-process runs against `vigil dev-cluster` and kcat.
# The vision and video suites (models and codecs on real media, and the worker processes that
# run them) are CPU-bound: they run after the others, so they never starve the runtime's
# multi-process tests of CPU on a 2-core machine.
# `vigil up` on the demo's three streams runs the whole pipeline, detect included: it runs
# last and alone (suites of one `swift test` run in parallel).
CPU_BOUND_SUITES = DetectTests VisionTests DecodeTests VideoTests DetectWorkerTests VideoPathTests IngestReplicaTests MatchBenchSmokeTests TwoPersonRuleTests
ALONE_SUITES = UpCommandTests
test: deps
	$(SWIFT) build --build-tests
	$(SWIFT) test --skip-build $(addprefix --skip ,$(CPU_BOUND_SUITES) $(ALONE_SUITES))
	$(SWIFT) test --skip-build $(addprefix --filter ,$(CPU_BOUND_SUITES))
	$(SWIFT) test --skip-build $(addprefix --filter ,$(ALONE_SUITES))

# The whole pipeline on sample streams with `vigil up`: incidents live, redacted snapshots at the end.
demo: build
	@Scripts/demo

# The Kafka layer and the runtime up close: records through the dev cluster, kcat, a worker, cameras.
demo-plumbing: build
	@Scripts/demo-plumbing

# Throughput against kcat on the same dev cluster, printed as a ratio (not part of `make test`;
# smoke versions of the cluster benchmarks are).
bench: deps
	$(SWIFT) build -c release
	$(shell $(SWIFT) build -c release --show-bin-path)/vigil bench kafka
	$(shell $(SWIFT) build -c release --show-bin-path)/vigil bench match-cluster

# Plants each known runtime bug in a scratch copy and fails if its tests still pass (not part of `make test`).
mutation: deps
	Scripts/mutation-check

clean:
	rm -rf .build .build-* .vigil
