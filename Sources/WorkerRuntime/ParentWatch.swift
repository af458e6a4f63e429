import Foundation
import Logging

#if canImport(Glibc)
import Glibc
#endif

/// Stops this process, as SIGTERM would, once the process that started it is gone — when it was
/// started with `VIGIL_PARENT_PID` (by `vigil up`). A supervisor killed with SIGKILL cannot stop
/// its children; this way they do not outlive it (its dev cluster, its workers).
public enum ParentWatch {
    public static let environmentKey = "VIGIL_PARENT_PID"

    public static func start(logger: Logger) {
        guard let text = ProcessInfo.processInfo.environment[environmentKey], let parent = pid_t(text), parent > 1 else { return }
        Thread.detachNewThread {
            while getppid() == parent { Thread.sleep(forTimeInterval: 1) }
            logger.warning("the process that started this one (pid \(parent)) is gone; stopping")
            kill(getpid(), SIGTERM)
        }
    }
}
