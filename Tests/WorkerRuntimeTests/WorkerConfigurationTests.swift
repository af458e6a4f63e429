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
            environment: ["KAFKA_BOOTSTRAP": "b1:9092,b2:9092", "WORKER_INPUTS": "frames.v1, camera.health.v1", "KAFKA_PROPERTIES": "security.protocol=SSL,ssl.ca.location=/etc/ca.pem"]
        )
        #expect(configuration.name == "vigil-detect")
        #expect(configuration.groupID == "vigil-detect")
        #expect(configuration.inputs == ["frames.v1", "camera.health.v1"])
        #expect(configuration.kafka.bootstrapServers == "b1:9092,b2:9092")
        #expect(configuration.kafka.properties == ["security.protocol": "SSL", "ssl.ca.location": "/etc/ca.pem"])
        #expect(configuration.maxAge == nil)
        #expect(configuration.httpPort == 9090)
        #expect(configuration.deadLetterSuffix == ".dlq")
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
          max-age-ms: 5000
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
    }

    @Test("each bad or missing value names its key and environment variable", arguments: [
        (["WORKER_INPUTS": "frames.v1"], "kafka.bootstrap (environment KAFKA_BOOTSTRAP) is required"),
        (["KAFKA_BOOTSTRAP": "b:9092"], "worker.inputs (environment WORKER_INPUTS) is required"),
        (["KAFKA_BOOTSTRAP": "b:9092", "WORKER_INPUTS": "t", "LOG_LEVEL": "loud"], "log.level (environment LOG_LEVEL) \"loud\" is not one of"),
        (["KAFKA_BOOTSTRAP": "b:9092", "WORKER_INPUTS": "t", "WORKER_MAX_IN_FLIGHT": "0"], "worker.max-in-flight (environment WORKER_MAX_IN_FLIGHT) must be positive"),
        (["KAFKA_BOOTSTRAP": "b:9092", "WORKER_INPUTS": "t", "HTTP_PORT": "70000"], "http.port (environment HTTP_PORT) must be 0 to 65535"),
        (["KAFKA_BOOTSTRAP": "b:9092", "WORKER_INPUTS": "t", "KAFKA_PROPERTIES": "novalue"], "kafka.properties (environment KAFKA_PROPERTIES) entries must look like name=value"),
    ])
    func errors(environment: [String: String], message: String) async throws {
        let error = await #expect(throws: WorkerConfigurationError.self) {
            try await WorkerConfiguration.load(defaultName: "w", file: nil, environment: environment)
        }
        #expect(error?.description.contains(message) == true, "\(String(describing: error))")
    }

    @Test("a missing config file is named")
    func missingFile() async {
        let error = await #expect(throws: WorkerConfigurationError.self) {
            try await WorkerConfiguration.load(defaultName: "w", file: "/nonexistent/vigil.yaml", environment: [:])
        }
        #expect(error?.description.contains("/nonexistent/vigil.yaml does not exist") == true)
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
}
