/* A server's memory, and starting and stopping a server: see proc.h. */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include "bench/proc.h"
#include "transport/server.h"

extern char **environ;

long long dx_proc_rss(int pid)
{
    char path[64], line[256];
    snprintf(path, sizeof path, "/proc/%d/status", pid);
    FILE *f = fopen(path, "r");
    if (f == NULL)
        return -1;
    long long kb = -1;
    while (fgets(line, sizeof line, f))
        if (strncmp(line, "VmRSS:", 6) == 0) {
            kb = strtoll(line + 6, NULL, 10);
            break;
        }
    fclose(f);
    return kb < 0 ? -1 : kb * 1024;
}

static double mono(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int status_code(int st)
{
    if (WIFEXITED(st))
        return WEXITSTATUS(st);
    if (WIFSIGNALED(st))
        return 128 + WTERMSIG(st);
    return -1;
}

int dx_proc_stop(pid_t pid, int sig, double timeout)
{
    int st;
    pid_t r = waitpid(pid, &st, WNOHANG);
    if (r == pid)
        return status_code(st);
    if (r < 0)
        return -1;
    kill(pid, sig);
    double end = mono() + timeout;
    while (mono() < end) {
        r = waitpid(pid, &st, WNOHANG);
        if (r == pid)
            return status_code(st);
        if (r < 0)
            return -1;
        struct timespec ts = { 0, 5 * 1000 * 1000 };
        nanosleep(&ts, NULL);
    }
    kill(pid, SIGKILL);
    if (waitpid(pid, &st, 0) == pid)
        return status_code(st);
    return -1;
}

pid_t dx_proc_spawn(char *const argv[], const char *stderr_path, double timeout,
                    char *line, size_t linecap, int *out_fd, char *err, size_t errcap)
{
    dx_raise_fd_limit();               /* the child inherits it */
    int fds[2];
    if (pipe2(fds, O_CLOEXEC) < 0) {
        snprintf(err, errcap, "pipe: %s", strerror(errno));
        return -1;
    }
    posix_spawn_file_actions_t fa;
    posix_spawnattr_t at;
    posix_spawn_file_actions_init(&fa);
    posix_spawnattr_init(&at);
    posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
    posix_spawn_file_actions_adddup2(&fa, fds[1], 1);
    if (stderr_path)
        posix_spawn_file_actions_addopen(&fa, 2, stderr_path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    posix_spawnattr_setflags(&at, POSIX_SPAWN_SETPGROUP);
    posix_spawnattr_setpgroup(&at, 0);
    pid_t pid;
    int e = posix_spawnp(&pid, argv[0], &fa, &at, argv, environ);
    posix_spawn_file_actions_destroy(&fa);
    posix_spawnattr_destroy(&at);
    close(fds[1]);
    if (e != 0) {
        close(fds[0]);
        snprintf(err, errcap, "cannot start %s: %s", argv[0], strerror(e));
        return -1;
    }
    size_t n = 0;
    double end = mono() + timeout;
    for (;;) {
        double left = end - mono();
        if (left <= 0) {
            snprintf(err, errcap, "%s printed no line within %g s", argv[0], timeout);
            break;
        }
        struct pollfd p = { fds[0], POLLIN, 0 };
        int pr = poll(&p, 1, (int)(left * 1000) + 1);
        if (pr < 0 && errno == EINTR)
            continue;
        if (pr <= 0)
            continue;
        ssize_t r = read(fds[0], line + n, linecap - 1 - n);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0) {
            snprintf(err, errcap, "%s exited before printing its first line", argv[0]);
            break;
        }
        n += (size_t)r;
        line[n] = 0;
        char *nl = memchr(line, '\n', n);
        if (nl || n == linecap - 1) {
            if (nl)
                *nl = 0;
            *out_fd = fds[0];
            return pid;
        }
    }
    close(fds[0]);
    dx_proc_stop(pid, SIGKILL, 2);
    return -1;
}
