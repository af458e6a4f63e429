import Foundation

/// A thread of a stage's own, as a task executor: a stage whose work is heavy and synchronous
/// (decoding video, running models) runs `process` here (`Stage.executor`), so it never holds
/// one of Swift's cooperative threads — there are as many as cores, and the runtime's delivery,
/// offset and HTTP tasks need them while a frame is analysed. The thread ends with the executor.
public final class StageThread: TaskExecutor, @unchecked Sendable {
    /// What the thread and the executor share; the thread holds it, never the executor.
    private final class Queue: @unchecked Sendable {
        let condition = NSCondition()
        var jobs: [UnownedJob] = []  // guarded by `condition`
        var stopped = false  // guarded by `condition`
        weak var thread: Thread?
        /// Unowned: jobs come only from tasks running with the executor as their preference,
        /// which keep it alive while they do.
        var executor: UnownedTaskExecutor?
    }

    private let queue = Queue()

    public init(name: String) {
        let queue = queue
        let thread = Thread { Self.serve(queue) }
        thread.name = name
        queue.thread = thread
        queue.executor = asUnownedTaskExecutor()
        thread.start()
    }

    deinit {
        queue.condition.lock()
        queue.stopped = true
        queue.condition.signal()
        queue.condition.unlock()
    }

    public func enqueue(_ job: consuming ExecutorJob) {
        let job = UnownedJob(job)
        queue.condition.lock()
        queue.jobs.append(job)
        queue.condition.signal()
        queue.condition.unlock()
    }

    /// Whether the caller runs on this executor's thread.
    public var isCurrent: Bool { Thread.current === queue.thread }

    /// Runs jobs in the order they came until the executor is gone.
    private static func serve(_ queue: Queue) {
        while true {
            queue.condition.lock()
            while queue.jobs.isEmpty, !queue.stopped { queue.condition.wait() }
            guard !queue.jobs.isEmpty else {
                queue.condition.unlock()
                return
            }
            let job = queue.jobs.removeFirst()
            let executor = queue.executor!
            queue.condition.unlock()
            job.runSynchronously(on: executor)
        }
    }
}
