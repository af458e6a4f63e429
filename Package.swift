// swift-tools-version:6.2
import PackageDescription

// Strict concurrency and explicit `any` everywhere: the workers are concurrent by nature.
let swiftSettings: [SwiftSetting] = [
    .enableUpcomingFeature("ExistentialAny"),
    .enableUpcomingFeature("MemberImportVisibility"),
]

// OpenVINO's runtime, unpacked from its pinned PyPI wheel by Scripts/fetch-openvino (install-deps
// runs it); linked by absolute path with an rpath, since the wheel is not a system package.
let openVINO = Context.packageDirectory + "/.deps/openvino"
let openCVHeaders = "-I/usr/include/opencv4"

let package = Package(
    name: "vigil",
    platforms: [.macOS(.v15)],
    products: [
        .executable(name: "vigil", targets: ["VigilCLI"]),
        .executable(name: "vigil-bench", targets: ["VigilBench"]),
        .executable(name: "vigil-kafka-probe", targets: ["KafkaProbe"]),
        .executable(name: "vigil-passthrough", targets: ["PassThroughWorker"]),
        .executable(name: "vigil-counting", targets: ["CountingWorker"]),
        .executable(name: "vigil-detect", targets: ["DetectWorker"]),
        .executable(name: "vigil-decode", targets: ["DecodeWorker"]),
        .executable(name: "vigil-ingest", targets: ["IngestWorker"]),
        .executable(name: "vigil-match", targets: ["MatchWorker"]),
        .executable(name: "vigil-audit", targets: ["AuditWorker"]),
        .executable(name: "vigil-alert", targets: ["AlertWorker"]),
        .library(name: "Kafka", targets: ["Kafka"]),
        .library(name: "VigilSchema", targets: ["VigilSchema"]),
        .library(name: "Topology", targets: ["Topology"]),
        .library(name: "WorkerRuntime", targets: ["WorkerRuntime"]),
        // Stage test drivers, apart from production code (as Hummingbird ships HummingbirdTesting).
        .library(name: "WorkerRuntimeTesting", targets: ["WorkerRuntimeTesting"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-log", from: "1.16.2"),
        .package(url: "https://github.com/apple/swift-metrics", from: "2.13.0"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle", from: "2.13.0"),
        .package(url: "https://github.com/hummingbird-project/hummingbird", from: "2.28.1"),
        .package(url: "https://github.com/apple/swift-configuration", from: "1.4.0", traits: [.defaults, "YAML"]),
        .package(url: "https://github.com/swift-server/swift-prometheus", from: "2.4.1"),
        .package(url: "https://github.com/swift-otel/swift-w3c-trace-context", from: "1.0.0"),
        .package(url: "https://github.com/apple/swift-system", from: "1.5.0"),
        .package(url: "https://github.com/apple/swift-protobuf", from: "1.39.0"),
        .package(url: "https://github.com/jpsim/Yams", from: "6.2.2"),
        .package(url: "https://github.com/apple/swift-crypto", from: "3.12.3"),
        .package(url: "https://github.com/swift-server/async-http-client", from: "1.37.0"),
    ],
    targets: [
        // The Kafka shim (one of five C/C++ shims): librdkafka and its embedded mock cluster.
        .systemLibrary(
            name: "CRdKafka",
            pkgConfig: "rdkafka",
            providers: [.apt(["librdkafka-dev"])]
        ),
        // posix_spawn with the glibc calls Swift's Glibc module leaves out (pipe2, closefrom, chdir).
        .target(name: "CSpawn"),
        // Child processes without Foundation's Process: the supervisor's workers, tests, benchmarks.
        .target(name: "ChildProcesses", dependencies: ["CSpawn"], swiftSettings: swiftSettings),
        // Points, lines and polygons in the frame's normalized plane (masks, zones, lines).
        .target(name: "PlaneGeometry", dependencies: ["VigilSchema"], swiftSettings: swiftSettings),
        // YAML files operators declare (cameras, rules), read with every problem located.
        .target(
            name: "DeclarationFiles",
            dependencies: ["VigilSchema", .product(name: "Yams", package: "Yams")],
            swiftSettings: swiftSettings
        ),
        // Rules as data: the rules file (validated: file, line, rule, key) and what match reads.
        .target(
            name: "Rules",
            dependencies: [
                "DeclarationFiles", "PlaneGeometry", "VigilSchema", "WorkerRuntime",
                .product(name: "SwiftProtobuf", package: "swift-protobuf"),
                .product(name: "Yams", package: "Yams"),
            ],
            swiftSettings: swiftSettings
        ),
        // Topics as declared (name, partitions, replication, configs), checked without a broker.
        .target(name: "TopicSpecs", swiftSettings: swiftSettings),
        // Swift wrapper over librdkafka: producer, consumer, admin, mock cluster.
        .target(
            name: "Kafka",
            dependencies: [
                "CRdKafka",
                "TopicSpecs",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            swiftSettings: swiftSettings
        ),
        // Topology/topology.yaml as typed values: topics, workers, regions; validation; topic specs.
        .target(
            name: "Topology",
            dependencies: [
                "TopicSpecs",
                .product(name: "Yams", package: "Yams"),
            ],
            swiftSettings: swiftSettings
        ),
        // The embedded dev cluster: mock brokers, topic creation, fault-injection control API.
        .target(
            name: "DevCluster",
            dependencies: [
                "Kafka",
                "Topology",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            swiftSettings: swiftSettings
        ),
        // Every topic's message, generated from proto/vigil/v1 by Scripts/gen-proto and committed.
        .target(
            name: "VigilSchema",
            dependencies: [
                .product(name: "SwiftProtobuf", package: "swift-protobuf"),
            ],
            swiftSettings: swiftSettings
        ),
        // What every worker shares: configuration, consume → stage → produce → store offset,
        // dead-letter queue, load shedding, trace propagation, metrics and health endpoints.
        .target(
            name: "WorkerRuntime",
            dependencies: [
                "Kafka",
                "Topology",
                "VigilSchema",
                .product(name: "SwiftProtobuf", package: "swift-protobuf"),
                .product(name: "Configuration", package: "swift-configuration"),
                .product(name: "SystemPackage", package: "swift-system"),
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "UnixSignals", package: "swift-service-lifecycle"),
                .product(name: "W3CTraceContext", package: "swift-w3c-trace-context"),
            ],
            swiftSettings: swiftSettings
        ),
        // Runs a stage in memory as the runtime runs it on Kafka: for the stages' own tests.
        .target(
            name: "WorkerRuntimeTesting",
            dependencies: ["WorkerRuntime", .product(name: "Logging", package: "swift-log")],
            swiftSettings: swiftSettings
        ),
        // Camera configuration: the `cameras.v1` table, the cameras file, diffs and the privacy check.
        .target(
            name: "Cameras",
            dependencies: [
                "DeclarationFiles",
                "PlaneGeometry",
                "SigningKeys",
                "VigilSchema",
                "WorkerRuntime",
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "SwiftProtobuf", package: "swift-protobuf"),
                .product(name: "Yams", package: "Yams"),
            ],
            swiftSettings: swiftSettings
        ),
        // The vision shim: one C header over OpenVINO (every model) and OpenCV (pixels, motion).
        .target(
            name: "CVision",
            cxxSettings: [
                .unsafeFlags(["-I\(openVINO)/include", openCVHeaders, "-O2"]),
            ],
            linkerSettings: [
                .unsafeFlags(["-L\(openVINO)/lib", "-Xlinker", "-rpath", "-Xlinker", "\(openVINO)/lib"]),
                .linkedLibrary("openvino_c"),
                .linkedLibrary("opencv_core"),
                .linkedLibrary("opencv_imgproc"),
                .linkedLibrary("opencv_imgcodecs"),
                .linkedLibrary("opencv_video"),
            ]
        ),
        // The video shim: one C header over FFmpeg (demux, decode, scale).
        .target(
            name: "CVideo",
            cSettings: [.unsafeFlags(["-O2"])],
            linkerSettings: [
                .linkedLibrary("avformat"),
                .linkedLibrary("avcodec"),
                .linkedLibrary("avutil"),
                .linkedLibrary("swscale"),
            ]
        ),
        // Streams and files demuxed (ingest) and decoded into frames (decode).
        .target(
            name: "Video",
            dependencies: ["CVideo"],
            swiftSettings: swiftSettings
        ),
        // Face detectors vigil does not redact with (OpenCV cascades, dlib HOG): tests only.
        .target(
            name: "CIndependentFaces",
            cxxSettings: [.unsafeFlags([openCVHeaders, "-O2"])],
            linkerSettings: [
                .linkedLibrary("dlib"),
                // dlib's headers call LAPACK; Debian ships only the versioned runtime names.
                .linkedLibrary(":liblapack.so.3"),
                .linkedLibrary(":libblas.so.3"),
                .linkedLibrary("opencv_core"),
                .linkedLibrary("opencv_imgproc"),
                .linkedLibrary("opencv_objdetect"),
            ]
        ),
        .target(
            name: "IndependentFaces",
            dependencies: ["CIndependentFaces", "Vision"],
            swiftSettings: swiftSettings
        ),
        // The slot file's model declarations (YAML): read without loading a model.
        .target(
            name: "SlotDeclarations",
            dependencies: [.product(name: "Yams", package: "Yams")],
            swiftSettings: swiftSettings
        ),
        // Models with provenance (manifest, checksums), face and person detectors, redaction.
        .target(
            name: "Vision",
            dependencies: [
                "CVision",
                "SlotDeclarations",
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: swiftSettings
        ),
        // vigil-ingest's source: camera streams → GOP chunks and camera health.
        .target(
            name: "Ingest",
            dependencies: [
                "Video",
                "VigilSchema",
                "WorkerRuntime",
                .product(name: "SwiftProtobuf", package: "swift-protobuf"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
            ],
            swiftSettings: swiftSettings
        ),
        .executableTarget(
            name: "IngestWorker",
            dependencies: [
                "Ingest",
                "Cameras",
                "WorkerRuntime",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: swiftSettings
        ),
        // vigil-decode's stage: video chunks → sampled, privacy-masked frames.
        .target(
            name: "Decode",
            dependencies: [
                "Video",
                "Vision",
                "Cameras",
                "VigilSchema",
                "WorkerRuntime",
                .product(name: "SwiftProtobuf", package: "swift-protobuf"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
            ],
            swiftSettings: swiftSettings
        ),
        .executableTarget(
            name: "DecodeWorker",
            dependencies: [
                "Decode",
                "Cameras",
                "WorkerRuntime",
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: swiftSettings
        ),
        // vigil-detect's stage: frames → detections and redacted snapshots.
        .target(
            name: "Detect",
            dependencies: [
                "SlotDeclarations",
                "Vision",
                .product(name: "Yams", package: "Yams"),
                .product(name: "Metrics", package: "swift-metrics"),
                "Cameras",
                "VigilSchema",
                "WorkerRuntime",
                .product(name: "SwiftProtobuf", package: "swift-protobuf"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: swiftSettings
        ),
        .executableTarget(
            name: "DetectWorker",
            dependencies: [
                "SlotDeclarations",
                "Detect",
                "Cameras",
                "WorkerRuntime",
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: swiftSettings
        ),
        // vigil-match's stage: detections and camera health → incidents, per camera in event time.
        .target(
            name: "Match",
            dependencies: [
                "Rules", "PlaneGeometry", "VigilSchema", "WorkerRuntime",
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "SwiftProtobuf", package: "swift-protobuf"),
            ],
            swiftSettings: swiftSettings
        ),
        // vigil-alert's stage: incidents → alerts (confirmation, linking, lifecycle, escalation).
        .target(
            name: "Alert",
            dependencies: [
                "VigilSchema", "WorkerRuntime",
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "SwiftProtobuf", package: "swift-protobuf"),
            ],
            swiftSettings: swiftSettings
        ),
        // Signed webhooks: the endpoints file and table, delivery with retries, dead letters.
        .target(
            name: "Webhooks",
            dependencies: [
                "Alert", "DeclarationFiles", "Kafka", "VigilSchema", "WorkerRuntime",
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "SwiftProtobuf", package: "swift-protobuf"),
                .product(name: "Yams", package: "Yams"),
            ],
            swiftSettings: swiftSettings
        ),
        .executableTarget(
            name: "AlertWorker",
            dependencies: ["Alert", "Rules", "VigilSchema", "Webhooks", "WorkerRuntime"],
            swiftSettings: swiftSettings
        ),
        // Ed25519 key files and key ids: the audit log's heads and the camera admins' signatures.
        .target(
            name: "SigningKeys",
            dependencies: [.product(name: "Crypto", package: "swift-crypto")],
            swiftSettings: swiftSettings
        ),
        // The audit log: hash chains, signed heads, verification (vigil-audit, `vigil audit`).
        .target(
            name: "Audit",
            dependencies: [
                "SigningKeys", "VigilSchema", "WorkerRuntime",
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "SwiftProtobuf", package: "swift-protobuf"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: swiftSettings
        ),
        .executableTarget(
            name: "AuditWorker",
            dependencies: [
                "Audit", "Kafka", "SigningKeys", "VigilSchema", "WorkerRuntime",
                .product(name: "Logging", package: "swift-log"), .product(name: "SwiftProtobuf", package: "swift-protobuf"),
            ],
            swiftSettings: swiftSettings
        ),
        .executableTarget(
            name: "MatchWorker",
            dependencies: ["Match", "Rules", "Cameras", "WorkerRuntime"],
            swiftSettings: swiftSettings
        ),
        // A worker whose stage forwards each record unchanged: runtime tests and its overhead benchmark.
        .executableTarget(
            name: "PassThroughWorker",
            dependencies: [
                "WorkerRuntime",
                "Cameras",
                .product(name: "Hummingbird", package: "hummingbird"),
                "VigilSchema",
                .product(name: "SwiftProtobuf", package: "swift-protobuf"),
            ],
            swiftSettings: swiftSettings
        ),
        // A stateful worker counting records per camera and event-time window: state, timer and restore tests.
        .executableTarget(
            name: "CountingWorker",
            dependencies: ["WorkerRuntime"],
            swiftSettings: swiftSettings
        ),
        // What the operator commands and the benchmarks share: logging options, the topology
        // option, aligned tables, the dev cluster's admin.
        .target(
            name: "CommandLineSupport",
            dependencies: [
                "Cameras", "SigningKeys", "Topology",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: swiftSettings
        ),
        // `vigil up`'s supervision: worker replicas started, restarted with backoff, stopped, summarised.
        .target(
            name: "Supervisor",
            dependencies: ["ChildProcesses", "CommandLineSupport"],
            swiftSettings: swiftSettings
        ),
        // `vigil`, the operator CLI: commands only. `vigil bench` runs `vigil-bench`, so the
        // CLI links no FFmpeg and no detect stage.
        .executableTarget(
            name: "VigilCLI",
            dependencies: [
                "Alert",
                "Webhooks",
                "Audit",
                "ChildProcesses",
                "CommandLineSupport",
                "DeclarationFiles",
                "Rules",
                "Match",
                "PlaneGeometry",
                "SlotDeclarations",
                "Vision",
                "Kafka",
                "TopicSpecs",
                "Cameras",
                "SigningKeys",
                "Supervisor",
                "VigilSchema",
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "SwiftProtobuf", package: "swift-protobuf"),
                "DevCluster",
                "WorkerRuntime",
                "Topology",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "UnixSignals", package: "swift-service-lifecycle"),
            ],
            swiftSettings: swiftSettings
        ),
        // `vigil-bench` (`vigil bench …`): benchmarks that print a ratio against an anchor measured in the same run.
        .executableTarget(
            name: "VigilBench",
            dependencies: [
                "ChildProcesses", "CommandLineSupport",
                "Alert", "Decode", "Detect", "Ingest", "Match", "Rules", "Video", "Vision", "Webhooks",
                "Kafka", "Cameras", "DevCluster", "Topology", "VigilSchema", "WorkerRuntime",
                .product(name: "SwiftProtobuf", package: "swift-protobuf"),
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "UnixSignals", package: "swift-service-lifecycle"),
            ],
            swiftSettings: swiftSettings
        ),
        // A small Kafka client process used by the multi-process tests (and handy for diagnostics).
        .executableTarget(
            name: "KafkaProbe",
            dependencies: [
                "Kafka",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "UnixSignals", package: "swift-service-lifecycle"),
            ],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "KafkaTests",
            dependencies: ["ChildProcesses", "Kafka", "TopicSpecs", "Topology", "DevCluster"],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "WorkerRuntimeTests",
            dependencies: [
                "WorkerRuntimeTesting",
                "WorkerRuntime", "Kafka",
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "Configuration", package: "swift-configuration"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "VisionTests",
            dependencies: [
                "SlotDeclarations","Vision", "ChildProcesses"],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "DetectTests",
            dependencies: [
                "SlotDeclarations",
                "WorkerRuntimeTesting",
                "ChildProcesses",
                "Detect", "Vision", "IndependentFaces", "Cameras", "Match", "Rules", "VigilSchema", "WorkerRuntime",
                .product(name: "SwiftProtobuf", package: "swift-protobuf"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "DecodeTests",
            dependencies: [
                "WorkerRuntimeTesting",
                "ChildProcesses",
                "Decode", "Ingest", "Video", "Vision", "Cameras", "VigilSchema", "WorkerRuntime",
                .product(name: "SwiftProtobuf", package: "swift-protobuf"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "IngestTests",
            dependencies: ["Ingest"],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "VideoTests",
            dependencies: ["ChildProcesses", "Video"],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "CamerasTests",
            dependencies: [
                "Cameras", "DeclarationFiles", "VigilSchema", "WorkerRuntime",
                .product(name: "Crypto", package: "swift-crypto"), .product(name: "SwiftProtobuf", package: "swift-protobuf"),
            ],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "SchemaTests",
            dependencies: [
                "ChildProcesses",
                "VigilSchema",
                .product(name: "SwiftProtobuf", package: "swift-protobuf"),
            ],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "RulesTests",
            dependencies: [
                "Rules", "DeclarationFiles", "PlaneGeometry", "VigilSchema", "WorkerRuntime",
                .product(name: "SwiftProtobuf", package: "swift-protobuf"),
            ],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "AuditTests",
            dependencies: [
                "Audit", "VigilSchema", "WorkerRuntime",
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "SwiftProtobuf", package: "swift-protobuf"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "MatchTests",
            dependencies: [
                "WorkerRuntimeTesting",
                "Match", "Rules", "Cameras", "VigilSchema", "WorkerRuntime",
                .product(name: "SwiftProtobuf", package: "swift-protobuf"),
            ],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "AlertTests",
            dependencies: [
                "Alert", "ChildProcesses", "DeclarationFiles", "VigilSchema", "Webhooks", "WorkerRuntime", "WorkerRuntimeTesting",
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "SwiftProtobuf", package: "swift-protobuf"),
            ],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "ChildProcessesTests",
            dependencies: ["ChildProcesses"],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "IntegrationTests",
            dependencies: [
                "WorkerRuntimeTesting",
                "ChildProcesses", "Kafka", "Match", "Rules", "Topology", "VigilSchema", "WorkerRuntime", "Vision", "IndependentFaces",
                "Cameras", "SigningKeys", "Alert", "Webhooks",
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "SwiftProtobuf", package: "swift-protobuf"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "TopologyTests",
            dependencies: ["Topology", "TopicSpecs", "DevCluster", "Kafka", .product(name: "Yams", package: "Yams")],
            swiftSettings: swiftSettings
        ),
    ]
)
