/* Processes the bench looks at or starts: a server's resident memory, and
 * a server started as a child whose first line of output is awaited. */
#ifndef DX_PROC_H
#define DX_PROC_H

#include <sys/types.h>

/* VmRSS of process pid in bytes, or -1 when it cannot be read. */
long long dx_proc_rss(int pid);

/* Starts argv[0] (searched in PATH when it has no '/') with argv, stdin
 * from /dev/null, stdout into a pipe, stderr to the file stderr_path (or
 * inherited when NULL), in a process group of its own. Waits at most
 * timeout seconds for its first line of output and copies it (without the
 * newline, NUL-terminated) into line. Returns the pid, or -1 with err set
 * (it could not start, exited, or printed nothing in time; then it is
 * killed and reaped). The pipe stays open (the child may go on writing
 * until it fills): *out_fd gets its read end, to close after the child
 * ends. */
pid_t dx_proc_spawn(char *const argv[], const char *stderr_path, double timeout,
                    char *line, size_t linecap, int *out_fd, char *err, size_t errcap);

/* Sends sig to pid and waits at most timeout seconds for it to end, then
 * SIGKILLs and reaps it. Returns its exit status (128 + signal when killed
 * by one), or -1 when it was not our child. */
int dx_proc_stop(pid_t pid, int sig, double timeout);

#endif
