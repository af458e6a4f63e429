// Spawning child processes with posix_spawn, for vigil's supervisor and tests.
// The few glibc calls Swift's Glibc module does not expose (pipe2, closefrom and chdir file actions)
// live here, so a child never inherits another child's pipe ends.
#ifndef VIGIL_SPAWN_H
#define VIGIL_SPAWN_H

#include <sys/types.h>

#ifdef __cplusplus
extern "C" {
#endif

/// A pipe whose two ends are closed on exec. Returns 0, or errno.
int vigil_pipe(int fds[2]);

/// Starts `path` with `argv` and `envp` (both NULL-terminated), with `stdin_fd`, `stdout_fd` and
/// `stderr_fd` as its standard streams and no other inherited descriptor; in `directory` when not
/// NULL; in a process group of its own when `own_process_group` is non-zero. Every signal starts
/// with its default action and unblocked, whatever the parent ignores or blocks.
/// Returns 0 and sets `*pid`, or errno.
int vigil_spawn(const char *path, char *const argv[], char *const envp[], const char *directory,
                int stdin_fd, int stdout_fd, int stderr_fd, int own_process_group, pid_t *pid);

#ifdef __cplusplus
}
#endif

#endif
