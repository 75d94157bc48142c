/* The supervisor of `duplex run APP --workers N`: one process that starts
 * N workers by fork (no exec), passes signals on to them and starts again
 * a worker that died. It runs no Lua and serves nothing itself.
 *
 * A worker is today's single process: after the fork the child returns
 * from dx_supervisor_run into the caller (the Lua binding), which loads
 * the app, listens (SO_REUSEPORT, the same port as its siblings), tells
 * the supervisor with dx_worker_ready and runs the default loop.
 *
 * Loops. The supervisor runs its own loop (ev_loop_new), never the
 * default loop, which belongs to the workers: a child calls ev_loop_fork
 * on the default loop before it returns. libev lets only the default loop
 * watch children (ev_child), and a signal be watched by one loop at a
 * time; the default loop of duplex.core already holds SIGCHLD. So the
 * supervisor's loop watches no signal through libev: SIGCHLD, SIGTERM,
 * SIGINT and SIGHUP are blocked in the supervisor and read from a
 * signalfd (an ev_io), children are reaped with waitpid. A child gets the
 * signal mask back as it was before dx_supervisor_new.
 *
 * Signals. SIGTERM and SIGINT are passed on to every worker (their
 * single-process meaning: the first one a graceful shutdown, a second one
 * exits at once) and nothing is restarted any more; dx_supervisor_run
 * returns when every worker is gone. SIGHUP is passed on to every worker
 * that is listening (one still starting loads the script as it is). Each
 * worker is in a process group of its own, so that a terminal's ^C reaches
 * the supervisor alone and a worker sees each signal once. A worker gets
 * SIGTERM when the supervisor dies, however it died (PR_SET_PDEATHSIG).
 *
 * Restarts. A worker that dies is started again after a delay: backoff_min
 * (0.1 s), doubled at each death up to backoff_max (5 s), back to
 * backoff_min for one that had lived stable_after (10 s). Each death and
 * each restart is logged (dx_log: "worker_exited", "worker_restarted") and
 * counted on a shared page every worker reads (dx_worker_restarts). A
 * worker whose first start fails before it listened (a script that does
 * not load, a port in use) fails the whole: the supervisor stops the
 * others and dx_supervisor_run returns with that worker's exit status.
 *
 * Port 0. Worker 1 starts first; the port it reports becomes the port of
 * every worker started after it (the others, and restarts). Once every
 * worker has listened, the supervisor prints what worker 1 gave it to
 * print (the "duplex: listening on ..." lines) and "duplex: N workers
 * (pids ...)" on stdout. */
#ifndef DX_SUPERVISOR_H
#define DX_SUPERVISOR_H

#include <stdint.h>
#include <ev.h>

/* The most workers one supervisor starts. */
#define DX_MAX_WORKERS 1024

typedef struct dx_supervisor dx_supervisor;

/* How the supervisor lets a hub (the bus between workers, written apart)
 * know of the workers. Every slot has a bus: a socketpair(AF_UNIX,
 * SOCK_STREAM | SOCK_CLOEXEC) made before each fork (a new pair for each
 * restart); the worker keeps one end (dx_worker.bus), the supervisor the
 * other. All hooks are optional and run on the supervisor's loop
 * (dx_supervisor_loop), in the supervisor process, except forked. From
 * Lua: core.supervise{ workers = N, hooks = p }, p a light userdata
 * pointing to a dx_supervisor_hooks that lives until it returns.
 *
 *   start(ud, loop)         before the first fork: the supervisor's loop,
 *                           for the hub's own watchers.
 *   attach(ud, worker, fd)  worker (1..N) was just forked; fd is the
 *                           supervisor's end of its bus, blocking, owned
 *                           by the supervisor: watch it and write to it
 *                           until detach, never close it. The worker may
 *                           still be loading its app (it listens later).
 *   detach(ud, worker)      that worker is gone (reaped): stop watching
 *                           its fd; the supervisor closes it after the
 *                           call. Without hooks the supervisor closes its
 *                           end when the worker goes.
 *   forked(ud)              in the new worker, right after the fork:
 *                           free what the hub holds without touching the
 *                           other processes (close its fds, send nothing).
 *                           The supervisor's loop is destroyed after it.
 *   stop(ud)                in the supervisor, every worker gone, from
 *                           dx_supervisor_free: the hub's last call. */
typedef struct dx_supervisor_hooks {
    void *ud;
    void (*start)(void *ud, struct ev_loop *loop);
    void (*attach)(void *ud, int worker, int fd);
    void (*detach)(void *ud, int worker);
    void (*forked)(void *ud);
    void (*stop)(void *ud);
} dx_supervisor_hooks;

typedef struct dx_supervisor_config {
    int workers;                /* 1..DX_MAX_WORKERS */
    double backoff_min;         /* first restart delay, seconds; default 0.1 */
    double backoff_max;         /* the longest; default 5 */
    double stable_after;        /* a worker that lived this long restarts after backoff_min; default 10 */
} dx_supervisor_config;

/* What a worker is told: in the child, dx_supervisor_run fills it. */
typedef struct dx_worker {
    int index;                  /* 1..workers */
    int workers;
    int bus;                    /* the worker's end of its bus socket (close-on-exec) */
    int ready;                  /* where dx_worker_ready reports (close-on-exec) */
    int port;                   /* the port to listen on; 0: the app's own (worker 1's first start) */
    const uint64_t *restarts;   /* restarts of every worker so far, kept up to date by the
                                 * supervisor (shared memory): read with dx_worker_restarts */
} dx_worker;

/* Restarts of every worker of w's supervisor so far (0 for NULL). */
static inline uint64_t dx_worker_restarts(const dx_worker *w)
{
    return w && w->restarts ? __atomic_load_n(w->restarts, __ATOMIC_RELAXED) : 0;
}

void dx_supervisor_defaults(dx_supervisor_config *cfg);

/* Makes a supervisor: blocks the signals it reads, makes its loop. No
 * worker is started yet. Returns NULL with a message in errbuf on
 * failure (nothing is left changed). */
dx_supervisor *dx_supervisor_new(const dx_supervisor_config *cfg, char *errbuf, size_t errcap);

/* The supervisor's own loop, for a hub's watchers (set before run). */
struct ev_loop *dx_supervisor_loop(dx_supervisor *s);

/* Sets the hooks (copied); before dx_supervisor_run. */
void dx_supervisor_set_hooks(dx_supervisor *s, const dx_supervisor_hooks *hooks);

/* Starts the workers and runs the supervisor's loop. Returns twice over:
 * in a worker, its index (1..N) with *child filled in (the caller then
 * calls dx_supervisor_free, which there only closes what the child
 * inherited, and goes on to serve); in the supervisor, 0 once every worker
 * is gone, the exit status in dx_supervisor_status. */
int dx_supervisor_run(dx_supervisor *s, dx_worker *child);

/* The supervisor's exit status: 0 after a shutdown by signal, else the
 * status of the worker whose first start failed (1 for a signal). */
int dx_supervisor_status(const dx_supervisor *s);

/* Frees s. In the supervisor: closes the buses, the signalfd and the loop
 * and gives back the signal mask. In a worker: closes what it inherited
 * (the supervisor's ends, its signalfd and loop); no other process is
 * touched. NULL is fine. */
void dx_supervisor_free(dx_supervisor *s);

/* In a worker: tells the supervisor that it listens on port, with text
 * (the lines the supervisor prints for worker 1's first start, may be
 * empty); closes fd. Returns 0, or -1 with errno set. */
int dx_worker_ready(int fd, int port, const char *text, size_t len);

#endif
