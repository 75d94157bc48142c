/* The supervisor of --workers N (see supervisor.h): forks the workers,
 * reads its signals from a signalfd, reaps, restarts with backoff. */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>
#include "transport/log.h"
#include "transport/supervisor.h"

/* The most a worker's ready report may hold (the lines to print). */
#define DX_REPORT_MAX (64 * 1024)
/* A child whose supervisor died before it could ask to follow it. */
#define DX_EXIT_ORPHAN 1

typedef struct dx_slot {
    dx_supervisor *sup;
    int index;                  /* 1..N */
    pid_t pid;                  /* 0: not running */
    int bus;                    /* the supervisor's end, -1 when none */
    int report_fd;              /* read end of the ready pipe, -1 once read */
    ev_io report_w;
    char *report;               /* what the worker reported, rlen bytes */
    size_t rlen;
    int ready;                  /* this run of it has listened */
    int ever_ready;             /* some run of it has listened */
    double started_at;
    double backoff;             /* the next restart's delay */
    unsigned restarts;
    ev_timer start_w;           /* starts it (at once, or after the backoff) */
} dx_slot;

struct dx_supervisor {
    struct ev_loop *loop;
    dx_supervisor_config cfg;
    dx_supervisor_hooks hooks;
    sigset_t old_mask;          /* the mask before, given back to children and at free */
    int sigfd;
    ev_io sig_w;
    pid_t self;
    int port;                   /* the port worker 1 reported, 0 before */
    char *banner;               /* worker 1's lines to print */
    int announced;              /* the banner is printed */
    int stopping;               /* signals of shutdown seen */
    int failed;                 /* a first start failed */
    int status;
    int in_child;               /* this copy is a worker's */
    dx_worker *child;           /* where run tells the worker who it is */
    uint64_t *restarts;         /* restarts of every worker: a shared page the workers read */
    dx_slot *slots;             /* cfg.workers of them */
};

void dx_supervisor_defaults(dx_supervisor_config *cfg)
{
    cfg->workers = 1;
    cfg->backoff_min = 0.1;
    cfg->backoff_max = 5;
    cfg->stable_after = 10;
}

static void signal_cb(struct ev_loop *loop, ev_io *w, int revents);
static void report_cb(struct ev_loop *loop, ev_io *w, int revents);
static void start_cb(struct ev_loop *loop, ev_timer *w, int revents);

static void block_set(sigset_t *set)
{
    sigemptyset(set);
    sigaddset(set, SIGCHLD);
    sigaddset(set, SIGTERM);
    sigaddset(set, SIGINT);
    sigaddset(set, SIGHUP);
}

dx_supervisor *dx_supervisor_new(const dx_supervisor_config *cfg, char *errbuf, size_t errcap)
{
    if (cfg->workers < 1 || cfg->workers > DX_MAX_WORKERS) {
        snprintf(errbuf, errcap, "workers must be 1 to %d, got %d", DX_MAX_WORKERS, cfg->workers);
        return NULL;
    }
    dx_supervisor *s = calloc(1, sizeof *s);
    dx_slot *slots = calloc((size_t)cfg->workers, sizeof *slots);
    struct ev_loop *loop = ev_loop_new(EVFLAG_AUTO);
    if (s == NULL || slots == NULL || loop == NULL) {
        snprintf(errbuf, errcap, "cannot start the supervisor: %s", loop ? strerror(ENOMEM) : "no event loop");
        goto fail;
    }
    sigset_t set;
    block_set(&set);
    if (sigprocmask(SIG_BLOCK, &set, &s->old_mask) < 0
        || (s->sigfd = signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC)) < 0) {
        snprintf(errbuf, errcap, "cannot read signals: %s", strerror(errno));
        sigprocmask(SIG_SETMASK, &s->old_mask, NULL);
        goto fail;
    }
    s->restarts = mmap(NULL, sizeof *s->restarts, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (s->restarts == MAP_FAILED) {
        s->restarts = NULL;
        snprintf(errbuf, errcap, "cannot start the supervisor: %s", strerror(errno));
        close(s->sigfd);
        sigprocmask(SIG_SETMASK, &s->old_mask, NULL);
        goto fail;
    }
    s->loop = loop;
    s->cfg = *cfg;
    s->self = getpid();
    s->slots = slots;
    for (int i = 0; i < cfg->workers; i++) {
        dx_slot *w = &slots[i];
        w->sup = s;
        w->index = i + 1;
        w->bus = w->report_fd = -1;
        w->backoff = cfg->backoff_min;
        ev_init(&w->start_w, start_cb);
        w->start_w.data = w;
    }
    ev_io_init(&s->sig_w, signal_cb, s->sigfd, EV_READ);
    s->sig_w.data = s;
    ev_io_start(loop, &s->sig_w);
    return s;
fail:
    if (loop)
        ev_loop_destroy(loop);
    free(slots);
    free(s);
    return NULL;
}

struct ev_loop *dx_supervisor_loop(dx_supervisor *s) { return s->loop; }
int dx_supervisor_status(const dx_supervisor *s) { return s->status; }

void dx_supervisor_set_hooks(dx_supervisor *s, const dx_supervisor_hooks *hooks)
{
    s->hooks = *hooks;
}

static int live_workers(const dx_supervisor *s)
{
    int n = 0;
    for (int i = 0; i < s->cfg.workers; i++)
        n += s->slots[i].pid != 0;
    return n;
}

/* Passes sig on to the workers running (only those listening when
 * listening_only). */
static void pass_on(dx_supervisor *s, int sig, int listening_only)
{
    for (int i = 0; i < s->cfg.workers; i++) {
        dx_slot *w = &s->slots[i];
        if (w->pid != 0 && (w->ready || !listening_only))
            kill(w->pid, sig);
    }
}

/* Stops starting workers; sig (0 for none) goes to those running. The loop
 * ends once none is left. */
static void stop_all(dx_supervisor *s, int sig)
{
    for (int i = 0; i < s->cfg.workers; i++)
        ev_timer_stop(s->loop, &s->slots[i].start_w);
    if (sig)
        pass_on(s, sig, 0);
    if (live_workers(s) == 0)
        ev_break(s->loop, EVBREAK_ALL);
}

/* ---- starting a worker ---- */

/* In the child, right after the fork: follow the supervisor's death, take
 * back the signal mask, leave the supervisor's loop. */
static void become_worker(dx_supervisor *s, dx_slot *w, int bus, int report)
{
    s->in_child = 1;
    /* If the supervisor died before prctl, the signal will never come:
     * the parent is then no longer the supervisor. */
    if (prctl(PR_SET_PDEATHSIG, SIGTERM) < 0 || getppid() != s->self)
        _exit(DX_EXIT_ORPHAN);
    setpgid(0, 0);
    sigprocmask(SIG_SETMASK, &s->old_mask, NULL);
    ev_loop_fork(EV_DEFAULT);
    s->child->index = w->index;
    s->child->workers = s->cfg.workers;
    s->child->bus = bus;
    s->child->ready = report;
    s->child->port = s->port;
    s->child->restarts = s->restarts;
    if (s->hooks.forked)
        s->hooks.forked(s->hooks.ud);
    ev_break(s->loop, EVBREAK_ALL);
}

/* Forks worker w. Returns 1 in the child, 0 in the supervisor, -1 when
 * the worker could not be started (errno set). */
static int spawn(dx_supervisor *s, dx_slot *w)
{
    int bus[2], rep[2];
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, bus) < 0)
        return -1;
    if (pipe2(rep, O_CLOEXEC) < 0) {
        int e = errno;
        close(bus[0]);
        close(bus[1]);
        errno = e;
        return -1;
    }
    fflush(stdout);                      /* nothing buffered is written twice */
    fflush(stderr);
    pid_t pid = fork();
    if (pid == 0) {
        close(bus[0]);
        close(rep[0]);
        become_worker(s, w, bus[1], rep[1]);
        return 1;
    }
    int e = errno;
    close(bus[1]);
    close(rep[1]);
    if (pid < 0) {
        close(bus[0]);
        close(rep[0]);
        errno = e;
        return -1;
    }
    w->pid = pid;
    w->bus = bus[0];
    w->report_fd = rep[0];
    w->rlen = 0;
    w->ready = 0;
    fcntl(rep[0], F_SETFL, fcntl(rep[0], F_GETFL) | O_NONBLOCK);
    ev_io_init(&w->report_w, report_cb, rep[0], EV_READ);
    w->report_w.data = w;
    ev_io_start(s->loop, &w->report_w);
    ev_now_update(s->loop);
    w->started_at = ev_now(s->loop);
    if (s->hooks.attach)
        s->hooks.attach(s->hooks.ud, w->index, w->bus);
    return 0;
}

static void fail_start(dx_supervisor *s, int status)
{
    if (!s->failed) {
        s->failed = 1;
        s->status = status ? status : 1;
    }
    s->stopping++;
    stop_all(s, SIGTERM);
}

static void start_cb(struct ev_loop *loop, ev_timer *t, int revents)
{
    (void)loop;
    (void)revents;
    dx_slot *w = t->data;
    dx_supervisor *s = w->sup;
    if (s->in_child || s->stopping)
        return;
    int r = spawn(s, w);
    if (r > 0 || r == 0)
        return;
    if (!w->ever_ready) {
        dx_log(DX_LOG_ERROR, "worker_failed", 0, NULL, "cannot start worker %d: %s; stopping", w->index,
               strerror(errno));
        fail_start(s, 1);
        return;
    }
    dx_log(DX_LOG_ERROR, "worker_failed", 0, NULL, "cannot start worker %d again: %s; trying in %g s",
           w->index, strerror(errno), w->backoff);
    ev_timer_set(&w->start_w, w->backoff, 0);
    ev_timer_start(s->loop, &w->start_w);
    if ((w->backoff *= 2) > s->cfg.backoff_max)
        w->backoff = s->cfg.backoff_max;
}

static void start_later(dx_supervisor *s, dx_slot *w, double delay)
{
    ev_timer_set(&w->start_w, delay, 0);
    ev_timer_start(s->loop, &w->start_w);
}

/* ---- a worker's ready report ---- */

/* Prints worker 1's lines and the workers line, once all have listened. */
static void announce(dx_supervisor *s)
{
    for (int i = 0; i < s->cfg.workers; i++) {
        if (!s->slots[i].ever_ready)
            return;
    }
    s->announced = 1;
    if (s->banner)
        fputs(s->banner, stdout);
    fprintf(stdout, "duplex: %d workers (pids", s->cfg.workers);
    for (int i = 0; i < s->cfg.workers; i++)
        fprintf(stdout, " %d", (int)s->slots[i].pid);
    fputs(")\n", stdout);
    fflush(stdout);
}

/* The report is whole: "ready PORT\n" and the lines to print. */
static void report_done(dx_supervisor *s, dx_slot *w)
{
    int port;
    char nl;
    if (w->report == NULL || sscanf(w->report, "ready %d%c", &port, &nl) != 2 || nl != '\n')
        return;                          /* it died before it listened: the reaping says so */
    int first = !w->ever_ready;
    w->ready = w->ever_ready = 1;
    if (s->port == 0)
        s->port = port;
    if (s->announced) {
        dx_log(DX_LOG_INFO, "worker_restarted", 0, NULL, "worker %d serves again (pid %d, restart %u)",
               w->index, (int)w->pid, w->restarts);
        return;
    }
    if (w->index == 1 && first) {
        s->banner = strdup(strchr(w->report, '\n') + 1);
        for (int i = 1; i < s->cfg.workers; i++)
            start_later(s, &s->slots[i], 0);
    }
    announce(s);
}

/* Reads what is there of w's report; at its end, closes the pipe and takes
 * the report. */
static void read_report(dx_supervisor *s, dx_slot *w)
{
    for (;;) {
        char buf[4096];
        ssize_t n = read(w->report_fd, buf, sizeof buf);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            return;
        if (n > 0 && w->rlen + (size_t)n <= DX_REPORT_MAX) {
            char *r = realloc(w->report, w->rlen + (size_t)n + 1);
            if (r != NULL) {
                memcpy(r + w->rlen, buf, (size_t)n);
                w->rlen += (size_t)n;
                r[w->rlen] = 0;
                w->report = r;
            }
        }
        if (n > 0)
            continue;
        ev_io_stop(s->loop, &w->report_w);   /* the end, or an error */
        close(w->report_fd);
        w->report_fd = -1;
        report_done(s, w);
        free(w->report);
        w->report = NULL;
        w->rlen = 0;
        return;
    }
}

static void report_cb(struct ev_loop *loop, ev_io *io, int revents)
{
    (void)loop;
    (void)revents;
    dx_slot *w = io->data;
    if (!w->sup->in_child)
        read_report(w->sup, w);
}

/* ---- a worker gone ---- */

static void describe(int status, char *out, size_t cap)
{
    if (WIFSIGNALED(status))
        snprintf(out, cap, "was killed by signal %d (%s)", WTERMSIG(status), strsignal(WTERMSIG(status)));
    else
        snprintf(out, cap, "exited with status %d", WEXITSTATUS(status));
}

static void worker_gone(dx_supervisor *s, dx_slot *w, int status)
{
    if (w->report_fd >= 0)
        read_report(s, w);               /* all it wrote is in the pipe by now */
    if (w->report_fd >= 0) {
        ev_io_stop(s->loop, &w->report_w);
        close(w->report_fd);
        w->report_fd = -1;
        free(w->report);
        w->report = NULL;
        w->rlen = 0;
    }
    if (s->hooks.detach)
        s->hooks.detach(s->hooks.ud, w->index);
    close(w->bus);
    w->bus = -1;
    pid_t pid = w->pid;
    w->pid = 0;
    w->ready = 0;
    char how[96];
    describe(status, how, sizeof how);
    if (s->stopping) {
        if (s->failed || status != 0)
            dx_log(DX_LOG_INFO, "worker_exited", 0, NULL, "worker %d (pid %d) %s", w->index, (int)pid, how);
        if (live_workers(s) == 0)
            ev_break(s->loop, EVBREAK_ALL);
        return;
    }
    if (!w->ever_ready) {
        dx_log(DX_LOG_ERROR, "worker_failed", 0, NULL, "worker %d (pid %d) %s before it listened; stopping",
               w->index, (int)pid, how);
        fail_start(s, WIFEXITED(status) ? WEXITSTATUS(status) : 1);
        return;
    }
    double lived = ev_now(s->loop) - w->started_at;
    if (lived >= s->cfg.stable_after)
        w->backoff = s->cfg.backoff_min;
    w->restarts++;
    __atomic_add_fetch(s->restarts, 1, __ATOMIC_RELAXED);
    dx_log(DX_LOG_WARN, "worker_exited", 0, NULL,
           "worker %d (pid %d) %s after %.1f s; starting it again in %g s (restart %u)", w->index, (int)pid,
           how, lived, w->backoff, w->restarts);
    start_later(s, w, w->backoff);
    if ((w->backoff *= 2) > s->cfg.backoff_max)
        w->backoff = s->cfg.backoff_max;
}

static void reap(dx_supervisor *s)
{
    int status;
    pid_t pid;
    while ((pid = waitpid(-1, &status, WNOHANG)) > 0) {
        for (int i = 0; i < s->cfg.workers; i++) {
            if (s->slots[i].pid == pid) {
                worker_gone(s, &s->slots[i], status);
                break;
            }
        }
    }
}

/* ---- signals ---- */

static void signal_cb(struct ev_loop *loop, ev_io *io, int revents)
{
    (void)loop;
    (void)revents;
    dx_supervisor *s = io->data;
    struct signalfd_siginfo si;
    while (!s->in_child && read(s->sigfd, &si, sizeof si) == (ssize_t)sizeof si) {
        int sig = (int)si.ssi_signo;
        if (sig == SIGCHLD) {
            reap(s);
        } else if (sig == SIGHUP) {
            if (!s->stopping)
                pass_on(s, SIGHUP, 1);
        } else {
            if (s->stopping++ == 0)
                dx_log(DX_LOG_INFO, "stopping", 0, NULL, "%s: stopping %d workers",
                       sig == SIGINT ? "SIGINT" : "SIGTERM", live_workers(s));
            stop_all(s, sig);
        }
    }
}

/* ---- running, freeing ---- */

int dx_supervisor_run(dx_supervisor *s, dx_worker *child)
{
    s->child = child;
    if (s->hooks.start)
        s->hooks.start(s->hooks.ud, s->loop);
    start_later(s, &s->slots[0], 0);
    ev_run(s->loop, 0);
    if (s->in_child)
        return child->index;
    reap(s);                             /* whoever is gone and not yet seen */
    return 0;
}

void dx_supervisor_free(dx_supervisor *s)
{
    if (s == NULL)
        return;
    for (int i = 0; i < s->cfg.workers; i++) {
        dx_slot *w = &s->slots[i];
        if (!s->in_child) {
            ev_timer_stop(s->loop, &w->start_w);
            if (w->report_fd >= 0)
                ev_io_stop(s->loop, &w->report_w);
        }
        if (w->report_fd >= 0)
            close(w->report_fd);
        if (w->bus >= 0) {
            if (!s->in_child && s->hooks.detach)
                s->hooks.detach(s->hooks.ud, w->index);
            close(w->bus);
        }
        free(w->report);
    }
    if (!s->in_child) {
        ev_io_stop(s->loop, &s->sig_w);
        if (s->hooks.stop)
            s->hooks.stop(s->hooks.ud);
    }
    close(s->sigfd);
    ev_loop_destroy(s->loop);
    if (!s->in_child)
        sigprocmask(SIG_SETMASK, &s->old_mask, NULL);
    if (!s->in_child)                   /* a worker reads it as long as it lives */
        munmap(s->restarts, sizeof *s->restarts);
    free(s->banner);
    free(s->slots);
    free(s);
}

int dx_worker_ready(int fd, int port, const char *text, size_t len)
{
    char head[32];
    int hl = snprintf(head, sizeof head, "ready %d\n", port);
    const char *parts[2] = { head, text };
    size_t lens[2] = { (size_t)hl, len };
    int rc = 0;
    for (int i = 0; i < 2 && rc == 0; i++) {
        size_t off = 0;
        while (off < lens[i]) {
            ssize_t n = write(fd, parts[i] + off, lens[i] - off);
            if (n < 0 && errno == EINTR)
                continue;
            if (n < 0) {
                rc = -1;
                break;
            }
            off += (size_t)n;
        }
    }
    int e = errno;
    close(fd);
    errno = e;
    return rc;
}
