import ArgumentParser
import CommandLineSupport
import Foundation

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// `vigil bench …` runs `vigil-bench …` from vigil's own folder: the benchmarks link FFmpeg,
/// the detect models and every stage, which none of the operator commands need.
struct BenchCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bench",
        abstract: "Benchmarks that print a ratio against an anchor measured in the same run (runs vigil-bench).",
        discussion: "vigil-bench is built and installed beside vigil; `vigil bench --help` lists the benchmarks."
    )

    @Argument(parsing: .captureForPassthrough, help: "The benchmark and its options, as vigil-bench takes them.")
    var arguments: [String] = []

    func run() throws {
        let folder = Bundle.main.executableURL?.deletingLastPathComponent() ?? URL(fileURLWithPath: ".")
        let path = folder.appendingPathComponent("vigil-bench").path
        let argv = ([path] + arguments).map { strdup($0) } + [nil]
        execv(path, argv)
        // Only reached when the exec failed.
        let reason = String(cString: strerror(errno))
        writeError("vigil: cannot run \(path): \(reason); build it with `swift build --product vigil-bench` (make build builds it)")
        throw ExitCode.failure
    }
}
