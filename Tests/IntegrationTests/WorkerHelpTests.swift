import ChildProcesses
import Foundation
import Testing

/// Every worker executable answers `--help` and `--version` before it touches Kafka, a model or
/// a key, and stops at start on a setting it cannot use, naming it (exit 64).
@Suite("Worker executables: --help, --version and unusable settings")
struct WorkerHelpTests {
    /// Each worker and the settings of its own it must list.
    static let workers: [(String, [String])] = [
        ("vigil-ingest", ["INGEST_READ_TIMEOUT_MS", "INGEST_SECRETS_DIR", "CAMERA_ADMIN_KEYS_FILE"]),
        ("vigil-decode", ["DECODE_JPEG_QUALITY", "DECODE_DEFAULT_FPS", "DECODE_BEHIND_MS", "CAMERA_ADMIN_KEYS_FILE"]),
        ("vigil-detect", ["DETECT_MODELS_DIR", "DETECT_THREADS", "DETECT_PERSON_TILES", "DETECT_FACE_MAX_WIDTH", "DETECT_LOOKAHEAD_MS", "DETECT_SLOT_FILE", "CAMERA_ADMIN_KEYS_FILE"]),
        ("vigil-match", ["MATCH_ALLOWED_LATENESS_MS", "MATCH_SILENCE_MS", "CAMERA_ADMIN_KEYS_FILE"]),
        ("vigil-audit", ["AUDIT_SIGNING_KEY_FILE", "AUDIT_HEAD_INTERVAL_S"]),
        ("vigil-alert", ["ALERT_ALLOWED_LATENESS_MS"]),
        ("vigil-passthrough", ["PASSTHROUGH_DELAY_MS", "PASSTHROUGH_SOURCE"]),
        ("vigil-counting", ["COUNTING_LATENESS_MS", "COUNTING_SILENCE_MS"]),
    ]
    /// Nothing a worker could start with: had `--help` gone further, it would have failed.
    static let unusable = [
        "KAFKA_BOOTSTRAP": "", "CAMERA_ADMIN_KEYS_FILE": "/nonexistent/admins", "DETECT_MODELS_DIR": "/nonexistent/models",
        "AUDIT_SIGNING_KEY_FILE": "/nonexistent/key",
    ]

    @Test("--help lists the worker's own settings and those every worker shares, with defaults; --version names the release and schema; neither touches Kafka, models or keys")
    func helpAndVersion() async throws {
        for (worker, own) in Self.workers {
            let help = try ChildProcess(worker, ["--help"], environment: Self.unusable)
            try await help.waitForExit(timeout: .seconds(30))
            #expect(help.exitStatus == 0, "\(worker) --help: \(help.standardError.suffix(500))")
            let text = help.output.joined(separator: "\n")
            for variable in own + ["KAFKA_BOOTSTRAP", "WORKER_SHUTDOWN_TIMEOUT_MS", "HTTP_PORT", "LOG_LEVEL"] {
                #expect(text.contains("  \(variable)"), "\(worker) --help does not list \(variable)")
            }
            #expect(text.contains("default: 256"), "\(worker) --help gives defaults")
            let version = try ChildProcess(worker, ["--version"], environment: Self.unusable)
            try await version.waitForExit(timeout: .seconds(30))
            #expect(version.exitStatus == 0 && version.output.first?.hasPrefix("\(worker) ") == true && version.output.first?.hasSuffix("(schema vigil.v1)") == true, "\(version.output)")
        }
    }

    @Test("a stage setting that is not a number stops the worker at start with exit 64, naming the variable, in every worker")
    func unusableStageSettings() async throws {
        let cases: [(String, String)] = [
            ("vigil-match", "MATCH_SILENCE_MS"), ("vigil-audit", "AUDIT_HEAD_INTERVAL_S"), ("vigil-detect", "DETECT_THREADS"),
            ("vigil-decode", "DECODE_BEHIND_MS"), ("vigil-ingest", "INGEST_READ_TIMEOUT_MS"), ("vigil-alert", "ALERT_ALLOWED_LATENESS_MS"),
        ]
        for (worker, variable) in cases {
            let process = try ChildProcess(worker, [], environment: [variable: "soon", "KAFKA_BOOTSTRAP": "127.0.0.1:1"])
            try await process.waitForExit(timeout: .seconds(30))
            #expect(process.exitStatus == 64, "\(worker) with \(variable)=soon: \(process.exitStatus) \(process.standardError.suffix(500))")
            #expect(process.standardError.contains("\(variable) is \"soon\""), "\(worker): \(process.standardError.suffix(500))")
        }
    }
}
