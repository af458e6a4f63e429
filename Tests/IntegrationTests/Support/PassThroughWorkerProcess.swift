import ChildProcesses
import Foundation
import Glibc
import Testing

/// `vigil-passthrough` in its own process: forwards `in` to `in.out` on the shared worker
/// runtime, with its HTTP server on a free port.
struct PassThroughWorkerProcess {
    let process: ChildProcess
    let port: Int

    /// Starts the worker and waits until its HTTP server listens. `environment` adds to and
    /// overrides the defaults (input `in`, output `in.out`, fast commits).
    /// - Parameter executable: another worker built on the same runtime (`vigil-counting`).
    static func start(
        _ cluster: DevClusterProcess, environment: [String: String] = [:], executable: String = "vigil-passthrough"
    ) async throws -> PassThroughWorkerProcess {
        let defaults = [
            "KAFKA_BOOTSTRAP": cluster.bootstrapServers, "WORKER_INPUTS": "in", "WORKER_OUTPUTS": "in.out",
            "HTTP_HOST": "127.0.0.1", "HTTP_PORT": "0", "KAFKA_COMMIT_INTERVAL_MS": "200",
        ]
        let process = try ChildProcess(executable, [], name: executable, environment: defaults.merging(environment) { $1 })
        var port = 0
        try await eventually(timeout: .seconds(30), "the worker's HTTP server listens") {
            guard process.isRunning else { throw ExitedEarly(description: "\(executable) exited: \(process.standardError.suffix(2_000))") }
            guard let line = process.standardError.split(separator: "\n").first(where: { $0.contains("listening on 127.0.0.1:") }),
                  let value = line.split(separator: ":").last.flatMap({ Int($0.trimmingCharacters(in: .whitespaces)) })
            else { return false }
            port = value
            return true
        }
        return PassThroughWorkerProcess(process: process, port: port)
    }

    /// GET on the worker's HTTP server: status and body.
    func get(_ path: String) async throws -> (status: Int, body: String) {
        try await httpGet(port: port, path: path)
    }

    /// The sum of the samples of `/metrics` whose line starts with `prefix` (a name, or a name
    /// and its first labels); nil when there is none.
    func metric(_ prefix: String) async throws -> Double? {
        let samples = try await get("/metrics").body.split(separator: "\n")
            .filter { $0.hasPrefix(prefix) }
            .compactMap { $0.split(separator: " ").last.flatMap { Double($0) } }
        return samples.isEmpty ? nil : samples.reduce(0, +)
    }

    /// The most resident memory the process has used so far (VmHWM), in bytes.
    var peakResidentBytes: Int? {
        guard let status = try? String(contentsOfFile: "/proc/\(process.processIdentifier)/status", encoding: .utf8),
              let line = status.split(separator: "\n").first(where: { $0.hasPrefix("VmHWM:") }),
              let kilobytes = line.split(separator: " ").dropFirst().first.flatMap({ Int($0) })
        else { return nil }
        return kilobytes * 1_024
    }

    /// CPU time (user + system) the process has used so far, in seconds.
    var cpuSeconds: Double? {
        guard let stat = try? String(contentsOfFile: "/proc/\(process.processIdentifier)/stat", encoding: .utf8),
              let afterName = stat.lastIndex(of: ")") else { return nil }
        // Fields after the command name: state is field 3, utime 14 and stime 15.
        let fields = stat[stat.index(after: afterName)...].split(separator: " ")
        guard fields.count > 12, let user = Double(fields[11]), let system = Double(fields[12]) else { return nil }
        return (user + system) / Double(sysconf(Int32(_SC_CLK_TCK)))
    }
}

/// A plain HTTP/1.1 GET to 127.0.0.1, in process. Tests poll health endpoints many times a
/// second: spawning curl for each would also hit the intermittent crash of Foundation's
/// `Process.run()` on Linux (swift-corelibs-foundation #5472), which grows with every spawn.
func httpGet(port: Int, path: String) async throws -> (status: Int, body: String) {
    try await Task.detached {
        let socket = Glibc.socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard socket >= 0 else { throw HTTPGetFailed(description: "socket: errno \(errno)") }
        defer { close(socket) }
        var timeout = timeval(tv_sec: 30, tv_usec: 0)
        setsockopt(socket, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = in_port_t(UInt16(port).bigEndian)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        let connected = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(socket, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard connected == 0 else { throw HTTPGetFailed(description: "connect to port \(port): errno \(errno)") }
        let request = Array("GET \(path) HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n".utf8)
        guard send(socket, request, request.count, 0) == request.count else { throw HTTPGetFailed(description: "send: errno \(errno)") }
        var response: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 65_536)
        while true {
            let count = recv(socket, &chunk, chunk.count, 0)
            if count < 0 { throw HTTPGetFailed(description: "recv: errno \(errno)") }
            if count == 0 { break }
            response.append(contentsOf: chunk[0..<count])
        }
        let text = String(decoding: response, as: UTF8.self)
        guard let headerEnd = text.range(of: "\r\n\r\n") else { throw HTTPGetFailed(description: "no HTTP header in the answer") }
        let status = Int(text.split(separator: " ").dropFirst().first ?? "") ?? 0
        var body = String(text[headerEnd.upperBound...])
        if text[..<headerEnd.lowerBound].lowercased().contains("transfer-encoding: chunked") { body = dechunk(body) }
        return (status, body.hasSuffix("\n") ? String(body.dropLast()) : body)
    }.value
}

/// The body of a chunked HTTP answer.
private func dechunk(_ text: String) -> String {
    var body = ""
    var rest = Substring(text)
    while let lineEnd = rest.range(of: "\r\n"), let size = Int(rest[..<lineEnd.lowerBound], radix: 16), size > 0 {
        let start = lineEnd.upperBound
        let bytes = Array(rest[start...].utf8)
        body += String(decoding: bytes.prefix(size), as: UTF8.self)
        rest = Substring(String(decoding: bytes.dropFirst(size + 2), as: UTF8.self))
    }
    return body
}

struct HTTPGetFailed: Error, CustomStringConvertible {
    let description: String
}
