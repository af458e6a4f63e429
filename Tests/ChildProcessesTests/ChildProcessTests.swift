import ChildProcesses
import Foundation
import Testing

@Suite struct ChildProcessTests {
    @Test func capturesEveryLineOfBothStreamsIncludingAnUnterminatedLast() throws {
        let run = try ChildProcess.run(
            "/bin/sh", ["-c", "seq 1 20000; echo oops >&2; printf tail"], standardError: .lines
        )
        #expect(run.termination == .exited(0))
        #expect(run.output.count == 20_001)
        #expect(run.output.first == "1")
        #expect(run.output[19_999] == "20000")
        #expect(run.output.last == "tail")
        #expect(run.errorOutput == ["oops"])
    }

    @Test func reportsExitStatusAndSignal() async throws {
        #expect(try ChildProcess.run("/bin/sh", ["-c", "exit 3"]).termination == .exited(3))
        let sleeper = try ChildProcess(executable: "/bin/sleep", arguments: ["30"])
        #expect(sleeper.isRunning)
        sleeper.signal(SIGTERM)
        #expect(try await sleeper.waitForExit(timeout: .seconds(10)) == .signalled(SIGTERM))
        #expect(!sleeper.isRunning)
    }

    @Test func passesStandardInputEnvironmentAndDirectory() throws {
        let child = try ChildProcess(
            executable: "/bin/sh", arguments: ["-c", "cat; echo \"$VIGIL_CHILD_TEST\"; pwd"],
            environment: ["VIGIL_CHILD_TEST": "from the parent", "PATH": "/usr/bin:/bin"], directory: "/tmp",
            standardInput: Data("line one\nline two\n".utf8)
        )
        #expect(child.waitUntilExit() == .exited(0))
        #expect(child.output == ["line one", "line two", "from the parent", "/tmp"])
    }

    /// A child must not hold another child's pipe open, or the parent never sees that pipe's end.
    @Test func childrenInheritNoOtherDescriptors() throws {
        let longLived = try ChildProcess(executable: "/bin/sleep", arguments: ["30"])
        defer { longLived.signal(SIGKILL) }
        let run = try ChildProcess.run("/bin/sh", ["-c", "ls /proc/self/fd"])
        #expect(run.termination == .exited(0))
        // 0, 1, 2, and the descriptor ls opens on the directory itself.
        #expect(run.output.count <= 4, "inherited descriptors: \(run.output)")
    }

    /// A parent that ignores SIGTERM (signal sources do) must not pass that on.
    @Test func childSignalsStartAtTheirDefaults() async throws {
        let previous = Glibc.signal(SIGTERM, SIG_IGN)
        let child = try ChildProcess(executable: "/bin/sleep", arguments: ["30"])
        _ = Glibc.signal(SIGTERM, previous)
        child.signal(SIGTERM)
        #expect(try await child.waitForExit(timeout: .seconds(10)) == .signalled(SIGTERM))
    }

    @Test func aMissingProgramIsAClearError() {
        #expect(throws: ChildProcessError.self) {
            try ChildProcess(executable: "/nonexistent/vigil-test-program")
        }
    }

    @Test func handsEachLineToTheCallbackAsItArrives() async throws {
        let seen = LockedLines()
        let child = try ChildProcess(executable: "/bin/sh", arguments: ["-c", "echo a; echo b >&2"], standardError: .lines) { stream, line in
            seen.append("\(stream):\(line)")
        }
        try await child.waitForExit(timeout: .seconds(10))
        #expect(Set(seen.lines) == ["output:a", "error:b"])
    }
}

private final class LockedLines: @unchecked Sendable {
    private let lock = NSLock()
    private var stored: [String] = []
    func append(_ line: String) { lock.withLock { stored.append(line) } }
    var lines: [String] { lock.withLock { stored } }
}
