/* The open-file limit a server runs under: see server.h. */
#include <sys/resource.h>
#include "transport/server.h"

/* Linux's default ceiling (fs.nr_open): what an unlimited hard limit is
 * taken to mean, since the kernel refuses RLIM_INFINITY for open files. */
#define DX_NOFILE_CEILING 1048576

void dx_raise_fd_limit(void)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0 || rl.rlim_cur == RLIM_INFINITY)
        return;
    rlim_t want = rl.rlim_max == RLIM_INFINITY ? DX_NOFILE_CEILING : rl.rlim_max;
    if (rl.rlim_cur < want) {
        rl.rlim_cur = want;
        setrlimit(RLIMIT_NOFILE, &rl);   /* on failure the old limit stays */
    }
}
