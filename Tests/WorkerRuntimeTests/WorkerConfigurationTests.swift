import Configuration
import Kafka
import Logging
import Foundation
import Testing
@testable import WorkerRuntime

@Suite("Worker configuration")
struct WorkerConfigurationTests {
    @Test("environment alone: required keys and defaults")
    func environment() async throws {
        let configuration = try await WorkerConfiguration.load(
            defaultName: "vigil-detect", file: nil,
            environment: [
                "KAFKA_BOOTSTRAP": "b1:9092,b2:9092", "WORKER_INPUTS": "frames.v1, camera.health.v1", "WORKER_OUTPUTS": "detections.v1,snapshots.v1",
                "KAFKA_PROPERTIES": "security.protocol=SSL,ssl.ca.location=/etc/ca.pem",
            ]
        )
        #expect(configuration.name == "vigil-detect")
        #expect(configuration.groupID == "vigil-detect")
        #expect(configuration.inputs == ["frames.v1", "camera.health.v1"])
        #expect(configuration.kafka.bootstrapServers == "b1:9092,b2:9092")
        #expect(configuration.kafka.properties == ["security.protocol": "SSL", "ssl.ca.location": "/etc/ca.pem"])
        #expect(configuration.maxAge == nil)
        #expect(configuration.httpPort == 9090)
        #expect(configuration.deadLetterSuffix == ".dlq")
        #expect(configuration.outputs == ["detections.v1", "snapshots.v1"])
        #expect(configuration.memoryBudget == MemoryBudget(bytes: 256 << 20))
        #expect(configuration.deliveryTimeout == .seconds(120))
        #expect(configuration.livenessTimeout == .seconds(180), "longer than the delivery timeout")
    }

    @Test("a YAML file, with the environment overriding it")
    func fileAndEnvironment() async throws {
        let file = FileManager.default.temporaryDirectory.appendingPathComponent("worker-\(UUID().uuidString).yaml")
        defer { try? FileManager.default.removeItem(at: file) }
        try """
        kafka:
          bootstrap: file-broker:9092
        worker:
          inputs: [detections.v1]
          outputs: [incidents.v1]
          max-age-ms: 5000
          memory-budget-mb: 64
        http:
          port: 9191
        log:
          level: debug
        """.write(to: file, atomically: true, encoding: .utf8)
        let configuration = try await WorkerConfiguration.load(defaultName: "vigil-match", file: file.path, environment: ["HTTP_PORT": "9292"])
        #expect(configuration.kafka.bootstrapServers == "file-broker:9092")
        #expect(configuration.inputs == ["detections.v1"])
        #expect(configuration.maxAge == .milliseconds(5_000))
        #expect(configuration.httpPort == 9292, "environment wins over the file")
        #expect(configuration.logLevel == .debug)
        #expect(configuration.memoryBudget.bytes == 64 << 20)
        #expect(configuration.memoryBudget.consumerBufferBytes + configuration.memoryBudget.consumerPrefetchBytes
            + configuration.memoryBudget.producerInFlightBytes == 64 << 20, "the shares add up to the budget")
    }

    @Test("each bad or missing value names its key and environment variable", arguments: [
        (["WORKER_INPUTS": "frames.v1", "WORKER_OUTPUTS": "o"], "kafka.bootstrap (environment KAFKA_BOOTSTRAP) is required"),
        (["KAFKA_BOOTSTRAP": "b:9092", "WORKER_OUTPUTS": "o"], "worker.inputs (environment WORKER_INPUTS) is required"),
        (["KAFKA_BOOTSTRAP": "b:9092", "WORKER_INPUTS": "t"], "worker.outputs (environment WORKER_OUTPUTS) is required"),
        (["KAFKA_BOOTSTRAP": "b:9092", "WORKER_INPUTS": "t", "WORKER_OUTPUTS": "o", "LOG_LEVEL": "loud"], "log.level (environment LOG_LEVEL) \"loud\" is not one of"),
        (["KAFKA_BOOTSTRAP": "b:9092", "WORKER_INPUTS": "t", "WORKER_OUTPUTS": "o", "WORKER_MAX_IN_FLIGHT": "0"], "worker.max-in-flight (environment WORKER_MAX_IN_FLIGHT) must be positive"),
        (["KAFKA_BOOTSTRAP": "b:9092", "WORKER_INPUTS": "t", "WORKER_OUTPUTS": "o", "HTTP_PORT": "70000"], "http.port (environment HTTP_PORT) must be 0 to 65535"),
        (["KAFKA_BOOTSTRAP": "b:9092", "WORKER_INPUTS": "t", "WORKER_OUTPUTS": "o", "KAFKA_PROPERTIES": "novalue"], "kafka.properties (environment KAFKA_PROPERTIES) entries must look like name=value"),
        (["KAFKA_BOOTSTRAP": "b:9092", "WORKER_INPUTS": "t", "WORKER_OUTPUTS": "o", "WORKER_MEMORY_BUDGET_MB": "8"], "worker.memory-budget-mb (environment WORKER_MEMORY_BUDGET_MB) must be at least 16"),
    ])
    func errors(environment: [String: String], message: String) async throws {
        let error = await #expect(throws: WorkerConfigurationError.self) {
            try await WorkerConfiguration.load(defaultName: "w", file: nil, environment: environment)
        }
        #expect(error?.description.contains(message) == true, "\(String(describing: error))")
    }

    @Test("settings delivery depends on cannot be overridden through KAFKA_PROPERTIES", arguments: [
        "enable.auto.offset.store=true", "enable.auto.commit=true", "auto.commit.enable=true", "enable.idempotence=false",
        "acks=1", "request.required.acks=1", "queued.max.messages.kbytes=2000000", "partition.assignment.strategy=cooperative-sticky",
    ])
    func protectedProperties(property: String) async throws {
        let error = await #expect(throws: WorkerConfigurationError.self) {
            try await WorkerConfiguration.load(
                defaultName: "w", file: nil,
                environment: ["KAFKA_BOOTSTRAP": "b:9092", "WORKER_INPUTS": "t", "WORKER_OUTPUTS": "o", "KAFKA_PROPERTIES": "client.rack=r1,\(property)"]
            )
        }
        let name = String(property.split(separator: "=")[0])
        #expect(error?.description.contains("kafka.properties (environment KAFKA_PROPERTIES) refused") == true, "\(String(describing: error))")
        #expect(error?.description.contains("\"\(name)\"") == true, "names the property: \(String(describing: error))")
    }

    @Test("ordinary tuning and the eager assignment strategies pass through")
    func allowedProperties() async throws {
        let configuration = try await WorkerConfiguration.load(
            defaultName: "w", file: nil,
            environment: ["KAFKA_BOOTSTRAP": "b:9092", "WORKER_INPUTS": "t", "WORKER_OUTPUTS": "o", "KAFKA_PROPERTIES": "partition.assignment.strategy=roundrobin,linger.ms=20"]
        )
        #expect(configuration.kafka.properties["partition.assignment.strategy"] == "roundrobin")
    }

    @Test("with the topology named, a worker takes its group, inputs and outputs from its entry there")
    func fromTopology() async throws {
        let topology = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("Topology/topology.yaml").path
        let configuration = try await WorkerConfiguration.load(
            defaultName: "vigil-detect", file: nil, environment: ["KAFKA_BOOTSTRAP": "b:9092", "WORKER_TOPOLOGY": topology]
        )
        #expect(configuration.inputs == ["frames.v1"])
        #expect(configuration.outputs.contains("detections.v1") && configuration.outputs.contains("snapshots.v1"), "\(configuration.outputs)")
        let error = await #expect(throws: WorkerConfigurationError.self) {
            try await WorkerConfiguration.load(defaultName: "vigil-nobody", file: nil, environment: ["KAFKA_BOOTSTRAP": "b:9092", "WORKER_TOPOLOGY": topology])
        }
        #expect(error?.description.contains("declares no worker \"vigil-nobody\"") == true, "\(String(describing: error))")
    }

    @Test("a missing config file is named")
    func missingFile() async {
        let error = await #expect(throws: WorkerConfigurationError.self) {
            try await WorkerConfiguration.load(defaultName: "w", file: "/nonexistent/vigil.yaml", environment: [:])
        }
        #expect(error?.description.contains("/nonexistent/vigil.yaml does not exist") == true)
    }

    @Test("a runtime setting that is not a whole number is refused naming its key and variable, never replaced by the default")
    func notANumber() async throws {
        for (variable, value, key) in [("WORKER_MAX_IN_FLIGHT", "1k", "worker.max-in-flight"), ("HTTP_PORT", "http", "http.port"), ("WORKER_MAX_AGE_MS", "5s", "worker.max-age-ms")] {
            await #expect { try await WorkerConfiguration.load(defaultName: "vigil-detect", file: nil, environment: [
                "KAFKA_BOOTSTRAP": "b1:9092", "WORKER_INPUTS": "frames.v1", "WORKER_OUTPUTS": "detections.v1", variable: value,
            ]) } throws: { "\($0)" == "configuration \(key) (environment \(variable)) is \"\(value)\"; give a whole number" }
        }
    }

    @Test("a stage's own settings: unset is nil, a value below its floor or not a number is refused naming the variable, the floor and why")
    func stageSettings() throws {
        let settings = StageSettings(worker: "vigil-detect", environment: ["DETECT_PERSON_TILES": "0", "DETECT_THREADS": "two", "DETECT_LOOKAHEAD_MS": "1500"])
        #expect(try settings.integer("DETECT_FACE_MAX_WIDTH", atLeast: 1_920) == nil)
        #expect(try settings.integer("DETECT_LOOKAHEAD_MS", atLeast: 1_000) == 1_500)
        #expect(throws: StageSettings.Problem(variable: "DETECT_PERSON_TILES", description: "DETECT_PERSON_TILES is 0; it must be at least 4: fewer tiles find fewer people")) {
            try settings.integer("DETECT_PERSON_TILES", atLeast: 4, floor: "fewer tiles find fewer people")
        }
        #expect(throws: StageSettings.Problem(variable: "DETECT_THREADS", description: "DETECT_THREADS is \"two\"; give a whole number, at least 1")) {
            try settings.integer("DETECT_THREADS", atLeast: 1)
        }
    }
}

@Suite("Metric help")
struct MetricHelpTests {
    @Test("HELP lines are added before each known metric's TYPE line, once")
    func annotate() {
        let exposition = """
        # TYPE vigil_records_in_total counter
        vigil_records_in_total{worker="w",topic="t"} 3
        # TYPE other_total counter
        other_total 1
        """
        let annotated = MetricHelp.annotate(exposition).split(separator: "\n").map(String.init)
        #expect(annotated.first == "# HELP vigil_records_in_total Records consumed by the worker, per input topic.")
        #expect(annotated.count == 5, "no HELP invented for unknown metrics")
        #expect(MetricHelp.annotate(MetricHelp.annotate(exposition)) == MetricHelp.annotate(exposition))
    }

    @Test("the settings --help lists name each key's environment variable as the configuration reads it, once each")
    func settingsListMatchesTheKeys() throws {
        let settings = WorkerConfiguration.settings
        #expect(Set(settings.map(\.variable)).count == settings.count)
        for setting in settings {
            let key = try #require(setting.key)
            #expect(setting.variable == key.uppercased().replacingOccurrences(of: ".", with: "_").replacingOccurrences(of: "-", with: "_"))
        }
    }
}
