import Logging

/// A logger for tests that only prints at `level` and above, so expected errors stay quiet.
func quietLogger(_ level: Logger.Level = .critical) -> Logger {
    var logger = Logger(label: "test")
    logger.logLevel = level
    return logger
}
