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
# Suites of one `swift test` run in parallel, so the heavy ones get runs of their own on a
# 2-core machine: first the runtime and CLI suites; then the CPU-bound vision and video suites
# (models and codecs on real media); then the suites whose worker processes must keep up with
# real time (an RTSP server, looping file cameras, vigil-detect and vigil-decode on the cluster,
# vigil-detect's look-ahead waiting for later frames), which starved next to the vision suites; last and alone `vigil up` on the demo's three streams
# (the whole pipeline, detect included).
CPU_BOUND_SUITES = DetectTests VisionTests DecodeTests VideoTests MatchBenchSmokeTests
REAL_TIME_SUITES = VideoPathTests IngestReplicaTests TwoPersonRuleTests DetectWorkerTests
ALONE_SUITES = UpCommandTests
test: deps
	$(SWIFT) build --build-tests
	$(SWIFT) test --skip-build $(addprefix --skip ,$(CPU_BOUND_SUITES) $(REAL_TIME_SUITES) $(ALONE_SUITES))
	$(SWIFT) test --skip-build $(addprefix --filter ,$(CPU_BOUND_SUITES))
	$(SWIFT) test --skip-build $(addprefix --filter ,$(REAL_TIME_SUITES))
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
	$(shell $(SWIFT) build -c release --show-bin-path)/vigil bench alert

# Plants each known runtime bug in a scratch copy and fails if its tests still pass (not part of `make test`).
mutation: deps
	Scripts/mutation-check

clean:
	rm -rf .build .build-* .vigil
