import ArgumentParser
import Foundation
import Topology

/// Where the topology file is: `--topology`, else env `VIGIL_TOPOLOGY`, else `Topology/topology.yaml`
/// in the current directory.
public struct TopologyOption: ParsableArguments, Sendable {
    public static let defaultPath = "Topology/topology.yaml"

    @Option(name: .long, help: "Topology file (env VIGIL_TOPOLOGY; default \(TopologyOption.defaultPath) in the current directory).")
    public var topology: String = ProcessInfo.processInfo.environment["VIGIL_TOPOLOGY"] ?? TopologyOption.defaultPath

    public init() {}

    public var url: URL { URL(fileURLWithPath: topology) }

    /// The topology, or the reason it cannot be read (printed to standard error, exit 1).
    public func load() throws -> Topology {
        do {
            return try Topology.load(contentsOf: url)
        } catch {
            writeError("vigil: \(error)")
            if error.line == nil, error.keyPath == nil {
                writeError("vigil: run from the repository root, pass --topology PATH or set VIGIL_TOPOLOGY")
            }
            throw ExitCode.failure
        }
    }

    /// The topology when it loads and has no problems; otherwise every problem is printed
    /// to standard error and the command exits 1.
    public func loadValid() throws -> Topology {
        let topology = try load()
        let problems = topology.validate()
        guard problems.isEmpty else {
            for problem in problems { writeError("\(topology.description(of: problem, file: self.topology))") }
            writeError("vigil: \(Self.count(problems.count, "problem")) in \(self.topology); fix them (vigil topics validate lists them) and run again")
            throw ExitCode.failure
        }
        return topology
    }

    public static func count(_ number: Int, _ noun: String) -> String { "\(number) \(noun)\(number == 1 ? "" : "s")" }
}

extension Topology {
    /// `topology.yaml: workers.vigil-detect.inputs[0]: topic "frames.v2" is not declared…`
    public func description(of problem: TopologyProblem, file: String) -> String { "\(file): \(problem)" }
}
