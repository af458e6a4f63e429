import CSpawn
import Foundation

#if canImport(Glibc)
import Glibc
#endif

/// Where a child's standard output or standard error goes.
public enum ChildOutput: Sendable {
    /// Nowhere (`/dev/null`).
    case discard
    /// The parent's own stream.
    case inherit
    /// Written to a file, replacing what it held (standard output and error may share one).
    case file(String)
    /// Read line by line by a thread of the parent's: kept in `output` / `errorOutput` and handed to
    /// `onLine`. Never through a dispatch read source: tearing those down on Linux can crash the parent
    /// (swift-corelibs-libdispatch issue 949), which is what `FileHandle.readabilityHandler` installs.
    case lines
}

/// Spawning or waiting for a child failed; the description names the program and the cause.
public struct ChildProcessError: Error, CustomStringConvertible {
    public let description: String
}

/// A child process started with `posix_spawn`: the supervisor's workers, the tests' processes, the
/// reference tools benchmarks run. Foundation's `Process` is not used because its pipe handling sits on
/// dispatch sources (see `ChildOutput.lines`).
public final class ChildProcess: @unchecked Sendable {
    public enum Stream: Sendable { case output, error }

    public enum Termination: Sendable, Equatable, CustomStringConvertible {
        case exited(Int32)
        case signalled(Int32)

        /// As a shell reports it: the exit status, or 128 + the signal.
        public var status: Int32 {
            switch self {
            case .exited(let code): code
            case .signalled(let signal): 128 + signal
            }
        }

        public var description: String {
            switch self {
            case .exited(let code): "exited with status \(code)"
            case .signalled(let signal): "killed by signal \(signal)"
            }
        }
    }

    public let name: String
    public let processIdentifier: pid_t
    private let lock = NSLock()
    private var reaped: Termination?
    private let captured: CapturedLines

    /// Starts `executable` (a path). `environment` replaces the parent's when given; `onLine` sees every
    /// line of the streams sent to `.lines`, on the thread that reads it; `output` and `errorOutput` keep
    /// the newest `keepingLines` of each.
    public init(
        executable: String,
        arguments: [String] = [],
        name: String? = nil,
        environment: [String: String]? = nil,
        directory: String? = nil,
        standardInput: Data? = nil,
        standardOutput: ChildOutput = .lines,
        standardError: ChildOutput = .inherit,
        ownProcessGroup: Bool = false,
        keepingLines keep: Int = 1_000_000,
        onLine: (@Sendable (Stream, String) -> Void)? = nil
    ) throws {
        self.name = name ?? (executable as NSString).lastPathComponent
        var toClose: [Int32] = []
        defer { toClose.forEach { _ = close($0) } }

        let nullDevice = open("/dev/null", O_RDWR | O_CLOEXEC)
        guard nullDevice >= 0 else { throw ChildProcessError(description: "cannot open /dev/null: \(String(cString: strerror(errno)))") }
        toClose.append(nullDevice)

        func pipe() throws -> (read: Int32, write: Int32) {
            var fds: [Int32] = [-1, -1]
            let result = vigil_pipe(&fds)
            guard result == 0 else { throw ChildProcessError(description: "cannot create a pipe for \(name ?? executable): \(String(cString: strerror(result)))") }
            return (fds[0], fds[1])
        }

        var readers: [(Int32, Stream)] = []
        func descriptor(for destination: ChildOutput, stream: Stream, inherited: Int32) throws -> Int32 {
            switch destination {
            case .discard: return nullDevice
            case .inherit: return inherited
            case .file(let path):
                let descriptor = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_APPEND | O_CLOEXEC, 0o644)
                guard descriptor >= 0 else { throw ChildProcessError(description: "cannot open \(path) for \(name ?? executable)'s \(stream): \(String(cString: strerror(errno)))") }
                toClose.append(descriptor)
                return descriptor
            case .lines:
                let ends = try pipe()
                toClose.append(ends.write)
                readers.append((ends.read, stream))
                return ends.write
            }
        }
        var inputWriter: Int32?
        let inputDescriptor: Int32
        if standardInput != nil {
            let ends = try pipe()
            toClose.append(ends.read)
            inputWriter = ends.write
            inputDescriptor = ends.read
        } else {
            inputDescriptor = nullDevice
        }
        let outputDescriptor: Int32
        let errorDescriptor: Int32
        do {
            outputDescriptor = try descriptor(for: standardOutput, stream: .output, inherited: STDOUT_FILENO)
            errorDescriptor = try descriptor(for: standardError, stream: .error, inherited: STDERR_FILENO)
        } catch {
            readers.forEach { _ = close($0.0) }
            inputWriter.map { _ = close($0) }
            throw error
        }

        let argv = ([executable] + arguments).map { strdup($0) } + [nil]
        let environmentStrings = environment.map { $0.map { strdup("\($0.key)=\($0.value)") } + [nil] }
        defer {
            argv.forEach { free($0) }
            environmentStrings?.forEach { free($0) }
        }
        var pid: pid_t = 0
        let result = environmentStrings.withOptionalPointer { environmentPointer in
            argv.withUnsafeBufferPointer { argvPointer in
                vigil_spawn(
                    executable, argvPointer.baseAddress, environmentPointer ?? UnsafePointer(environ), directory,
                    inputDescriptor, outputDescriptor, errorDescriptor, ownProcessGroup ? 1 : 0, &pid
                )
            }
        }
        guard result == 0 else {
            readers.forEach { _ = close($0.0) }
            inputWriter.map { _ = close($0) }
            throw ChildProcessError(description: "cannot start \(executable): \(String(cString: strerror(result)))")
        }
        processIdentifier = pid

        let captured = CapturedLines(openStreams: readers.count, keep: max(10, keep))
        self.captured = captured
        for (descriptor, stream) in readers {
            let thread = Thread { CapturedLines.read(descriptor, stream: stream, into: captured, onLine: onLine) }
            thread.name = "\(self.name) \(stream)"
            thread.start()
        }
        if let inputWriter, let standardInput {
            // A thread of its own, so a child that reads slowly never blocks the parent.
            Thread {
                standardInput.withUnsafeBytes { bytes in
                    var offset = 0
                    while offset < bytes.count {
                        let written = write(inputWriter, bytes.baseAddress! + offset, bytes.count - offset)
                        if written < 0 && errno == EINTR { continue }
                        if written <= 0 { break }
                        offset += written
                    }
                }
                close(inputWriter)
            }.start()
        }
    }

    deinit {
        if termination == nil {
            kill(processIdentifier, SIGKILL)
            var status: Int32 = 0
            _ = waitpid(processIdentifier, &status, 0)
        }
    }

    /// How it ended, or nil while it runs. Reaps the child once it has ended.
    public var termination: Termination? {
        lock.withLock {
            if reaped == nil { reaped = reap(blocking: false) }
            return reaped
        }
    }

    public var isRunning: Bool { termination == nil }

    /// Its standard output's lines so far (`.lines` only).
    public var output: [String] { captured.lines(.output) }
    /// Its standard error's lines so far (`.lines` only).
    public var errorOutput: [String] { captured.lines(.error) }

    public func signal(_ signal: Int32) {
        guard isRunning else { return }
        kill(processIdentifier, signal)
    }

    /// Blocks until the child has ended and every captured stream is read to its end.
    @discardableResult
    public func waitUntilExit() -> Termination {
        var info = siginfo_t()
        // Wait without reaping, then reap under the lock: only one caller ever reaps the pid.
        while waitid(P_PID, id_t(processIdentifier), &info, WEXITED | WNOWAIT) < 0 && errno == EINTR {}
        let termination = lock.withLock {
            if reaped == nil { reaped = reap(blocking: true) }
            return reaped!
        }
        captured.waitUntilClosed()
        return termination
    }

    /// Waits for the child to end and its captured streams to close, polling so no thread is held;
    /// throws if either takes longer than `timeout`.
    @discardableResult
    public func waitForExit(timeout: Duration = .seconds(60)) async throws -> Termination {
        let deadline = ContinuousClock.now + timeout
        while true {
            if let termination, captured.isClosed { return termination }
            guard ContinuousClock.now < deadline else {
                let what = isRunning ? "to exit" : "to close its output (a process it started may still hold it)"
                throw ChildProcessError(description: "timed out after \(timeout) waiting for \(name) \(what)")
            }
            try await Task.sleep(for: .milliseconds(20))
        }
    }

    /// Runs `executable` to its end, capturing standard output; standard error is inherited unless
    /// given. Throws if it cannot start; its exit status is the caller's to judge.
    public static func run(
        _ executable: String, _ arguments: [String], environment: [String: String]? = nil, directory: String? = nil,
        standardError: ChildOutput = .inherit
    ) throws -> (termination: Termination, output: [String], errorOutput: [String]) {
        let child = try ChildProcess(
            executable: executable, arguments: arguments, environment: environment, directory: directory, standardError: standardError
        )
        let termination = child.waitUntilExit()
        return (termination, child.output, child.errorOutput)
    }

    private func reap(blocking: Bool) -> Termination? {
        var status: Int32 = 0
        var result: pid_t
        repeat { result = waitpid(processIdentifier, &status, blocking ? 0 : WNOHANG) } while result < 0 && errno == EINTR
        if result == 0 { return nil }
        // Someone else reaped it (nothing in vigil does): report it as ended, status unknown.
        if result < 0 { return .exited(-1) }
        let signal = status & 0x7f
        return signal == 0 ? .exited((status >> 8) & 0xff) : .signalled(signal)
    }
}

/// The lines read from a child's streams, shared between its reader threads and whoever asks.
private final class CapturedLines: @unchecked Sendable {
    private let condition = NSCondition()
    private var outputLines: [String] = []
    private var errorLines: [String] = []
    private var openStreams: Int
    private let keep: Int

    init(openStreams: Int, keep: Int) {
        self.openStreams = openStreams
        self.keep = keep
    }

    func lines(_ stream: ChildProcess.Stream) -> [String] {
        condition.withLock { stream == .output ? outputLines : errorLines }
    }

    var isClosed: Bool { condition.withLock { openStreams == 0 } }

    func waitUntilClosed() {
        condition.withLock {
            while openStreams > 0 { condition.wait() }
        }
    }

    private func append(_ line: String, to stream: ChildProcess.Stream) {
        condition.withLock {
            if stream == .output { outputLines.append(line) } else { errorLines.append(line) }
            // Bounded for children that run for days: the oldest lines go, a tenth at a time.
            if outputLines.count > keep { outputLines.removeFirst(outputLines.count - keep * 9 / 10) }
            if errorLines.count > keep { errorLines.removeFirst(errorLines.count - keep * 9 / 10) }
        }
    }

    private func close() {
        condition.withLock {
            openStreams -= 1
            condition.broadcast()
        }
    }

    /// Blocking reads until the writer's end closes; a last line without a newline still counts.
    static func read(_ descriptor: Int32, stream: ChildProcess.Stream, into captured: CapturedLines, onLine: (@Sendable (ChildProcess.Stream, String) -> Void)?) {
        var buffer = [UInt8](repeating: 0, count: 64 * 1024)
        var partial: [UInt8] = []
        func emit(_ bytes: ArraySlice<UInt8>) {
            let line = String(decoding: bytes, as: UTF8.self)
            captured.append(line, to: stream)
            onLine?(stream, line)
        }
        while true {
            let count = buffer.withUnsafeMutableBytes { Glibc.read(descriptor, $0.baseAddress, $0.count) }
            if count < 0 && errno == EINTR { continue }
            if count <= 0 { break }
            partial.append(contentsOf: buffer[0..<count])
            var start = partial.startIndex
            while let newline = partial[start...].firstIndex(of: UInt8(ascii: "\n")) {
                emit(partial[start..<newline])
                start = newline + 1
            }
            partial.removeSubrange(partial.startIndex..<start)
        }
        if !partial.isEmpty { emit(partial[...]) }
        _ = Glibc.close(descriptor)
        captured.close()
    }
}

private extension Optional where Wrapped == [UnsafeMutablePointer<CChar>?] {
    func withOptionalPointer<Result>(_ body: (UnsafePointer<UnsafeMutablePointer<CChar>?>?) -> Result) -> Result {
        switch self {
        case .none: body(nil)
        case .some(let array): array.withUnsafeBufferPointer { body($0.baseAddress) }
        }
    }
}
