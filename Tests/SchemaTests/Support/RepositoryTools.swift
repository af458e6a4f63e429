import ChildProcesses
import Foundation
import SwiftProtobuf
import Testing

/// The repository root, found from this file's path (Tests/SchemaTests/Support/…).
let repositoryRoot: URL = {
    var directory = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
    while !FileManager.default.fileExists(atPath: directory.appendingPathComponent("Package.swift").path) {
        let parent = directory.deletingLastPathComponent()
        precondition(parent.path != directory.path, "no Package.swift above \(#filePath)")
        directory = parent
    }
    return directory
}()

/// What a finished subprocess left behind.
struct ToolRun: Sendable {
    let status: Int32
    /// Standard output, then standard error.
    let output: String

    var succeeded: Bool { status == 0 }
}

enum ToolError: Error, CustomStringConvertible {
    case notFound(String)
    case failed(String, ToolRun)

    var description: String {
        switch self {
        case .notFound(let message): message
        case .failed(let what, let run): "\(what) exited with \(run.status):\n\(run.output)"
        }
    }
}

/// Runs `executable` with `arguments` in the repository root and waits for it.
func runTool(_ executable: URL, _ arguments: [String]) throws -> ToolRun {
    let run = try ChildProcess.run(executable.path, arguments, directory: repositoryRoot.path, standardError: .lines)
    return ToolRun(status: run.termination.status, output: (run.output + run.errorOutput).joined(separator: "\n"))
}

/// The first executable called `name` on PATH.
func findOnPath(_ name: String) -> URL? {
    let path = ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin"
    for directory in path.split(separator: ":") {
        let candidate = URL(fileURLWithPath: String(directory)).appendingPathComponent(name)
        if FileManager.default.isExecutableFile(atPath: candidate.path) { return candidate }
    }
    return nil
}

/// `buf`, installed by Scripts/install-deps from PyPI `buf-bin`: pip puts it in the scripts
/// folder of whichever python3 ran it, which (with pyenv) need not be on PATH.
func locateBuf() throws -> URL {
    if let python = findOnPath("python3"),
       let run = try? runTool(python, ["-c", "import sysconfig; print(sysconfig.get_path('scripts'))"]),
       run.succeeded {
        let candidate = URL(fileURLWithPath: run.output.trimmingCharacters(in: .whitespacesAndNewlines))
            .appendingPathComponent("buf")
        if FileManager.default.isExecutableFile(atPath: candidate.path) { return candidate }
    }
    if let onPath = findOnPath("buf") { return onPath }
    throw ToolError.notFound("buf not found in python3's scripts folder or on PATH: run Scripts/install-deps (PyPI buf-bin==1.75.0)")
}

/// Every .proto file under proto/, as paths relative to proto/ (the names protoc and buf use).
func protoFilesOnDisk() throws -> Set<String> {
    let protoRoot = repositoryRoot.appendingPathComponent("proto")
    guard let walker = FileManager.default.enumerator(at: protoRoot, includingPropertiesForKeys: nil) else {
        throw ToolError.notFound("cannot list \(protoRoot.path)")
    }
    var files: Set<String> = []
    let prefix = protoRoot.resolvingSymlinksInPath().path + "/"
    for case let url as URL in walker where url.pathExtension == "proto" {
        files.insert(String(url.resolvingSymlinksInPath().path.dropFirst(prefix.count)))
    }
    return files
}

/// The schema as the compiler sees it: `buf build` parses every .proto in the module and
/// hands back exact descriptors, so the checks below never rely on a hand-written parser.
enum SchemaDescriptors {
    static let result: Result<Google_Protobuf_FileDescriptorSet, any Error> = Result {
        let buf = try locateBuf()
        let image = FileManager.default.temporaryDirectory
            .appendingPathComponent("vigil-schema-\(UUID().uuidString).binpb")
        defer { try? FileManager.default.removeItem(at: image) }
        let run = try runTool(buf, ["build", "--exclude-imports", "-o", image.path])
        guard run.succeeded else { throw ToolError.failed("buf build", run) }
        return try Google_Protobuf_FileDescriptorSet(serializedBytes: Data(contentsOf: image))
    }

    static func load() throws -> Google_Protobuf_FileDescriptorSet { try result.get() }
}
