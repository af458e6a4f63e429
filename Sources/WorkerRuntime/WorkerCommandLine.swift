import Foundation

/// One setting a worker reads, for its `--help`.
public struct WorkerSetting: Sendable, Equatable {
    /// The environment variable.
    public var variable: String
    /// The key in the worker's YAML file (`--config`), when it has one.
    public var key: String?
    /// The default, or "required".
    public var defaultValue: String
    public var purpose: String

    public init(_ variable: String, key: String? = nil, default defaultValue: String, _ purpose: String) {
        self.variable = variable
        self.key = key
        self.defaultValue = defaultValue
        self.purpose = purpose
    }
}

/// vigil's release, as `--version` prints it for every executable.
public enum VigilRelease {
    public static let version = "0.1.0"
    /// The message schema every executable speaks (`proto/vigil/v1`).
    public static let schema = "vigil.v1"
}

/// What a worker executable answers before it starts anything: `--help` (the settings it reads,
/// their defaults and what each is for) and `--version`. Touches no Kafka, model or key, so an
/// operator can ask a worker that could not start.
public enum WorkerCommandLine {
    /// Prints the answer and exits 0 when `arguments` ask for help or the version; returns otherwise.
    public static func answerHelpOrVersion(
        worker: String, summary: String, settings: [WorkerSetting], arguments: [String] = CommandLine.arguments
    ) {
        let asked = Set(arguments.dropFirst())
        if !asked.isDisjoint(with: ["--help", "-h"]) {
            print(help(worker: worker, summary: summary, settings: settings), terminator: "")
            exit(0)
        }
        if asked.contains("--version") {
            print(version(worker: worker))
            exit(0)
        }
    }

    public static func version(worker: String) -> String {
        "\(worker) \(VigilRelease.version) (schema \(VigilRelease.schema))"
    }

    /// The worker's own settings, then those every worker shares.
    public static func help(worker: String, summary: String, settings: [WorkerSetting]) -> String {
        var text = "\(worker): \(summary)\n\nUsage: \(worker) [--config FILE]   (settings from FILE or VIGIL_CONFIG, then the environment; the environment wins)\n"
        func section(_ title: String, _ settings: [WorkerSetting]) {
            guard !settings.isEmpty else { return }
            text += "\n\(title):\n"
            for setting in settings {
                let key = setting.key.map { " (\($0))" } ?? ""
                text += "  \(setting.variable)\(key)\n      \(setting.purpose); default: \(setting.defaultValue)\n"
            }
        }
        section("Settings of \(worker)", settings)
        section("Settings every worker reads", WorkerConfiguration.settings)
        text += "\nA setting that is set but not usable stops the worker at start (exit 64), naming it and what it expects.\n"
        return text
    }
}
