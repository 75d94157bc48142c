/* A standalone driver for the fuzz targets: runs LLVMFuzzerTestOneInput on
 * every file named on the command line, and on every regular file of every
 * directory named there, without libFuzzer. Used by `make fuzz-replay`
 * (built with gcc, ASan and UBSan) so the seed corpora run in `make test`,
 * and by hand to replay a crash artifact with gcc's sanitizers.
 *
 * Each input runs in a child process, so one crash is counted and named
 * and the rest still run; the child has a time limit. Each input is copied
 * into a heap block of exactly its size, so an over-read faults under ASan.
 *
 * Usage: replay_<target> NAME PATH...   (NAME is printed in the summary)
 * Prints "fuzz-replay NAME: N passed, M failed"; exits 1 when M > 0 or no
 * input was found. */
#include <dirent.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define REPLAY_TIMEOUT 20   /* seconds for one input */

/* Reads the whole file into a block of exactly its size (1 byte when empty,
 * passed with size 0). Returns NULL with errno set on failure. */
static uint8_t *read_file(const char *path, size_t *size)
{
    FILE *f = fopen(path, "rb");
    struct stat st;
    uint8_t *p;

    if (!f)
        return NULL;
    if (fstat(fileno(f), &st) < 0 || (p = malloc(st.st_size ? (size_t)st.st_size : 1)) == NULL) {
        fclose(f);
        return NULL;
    }
    *size = (size_t)st.st_size;
    if (*size && fread(p, 1, *size, f) != *size) {
        free(p);
        fclose(f);
        errno = EIO;
        return NULL;
    }
    fclose(f);
    return p;
}

/* Runs one input in a child. Returns 0 when it passed, 1 when it failed. */
static int run_one(const char *path)
{
    pid_t pid;
    int status;

    fflush(NULL);
    pid = fork();
    if (pid < 0) {
        fprintf(stderr, "fuzz-replay: fork: %s\n", strerror(errno));
        return 1;
    }
    if (pid == 0) {
        size_t size = 0;
        uint8_t *data = read_file(path, &size);

        if (!data) {
            fprintf(stderr, "fuzz-replay: %s: %s\n", path, strerror(errno));
            exit(2);
        }
        alarm(REPLAY_TIMEOUT);
        LLVMFuzzerTestOneInput(data, size);
        free(data);
        exit(0);                     /* exit, not _exit: LeakSanitizer runs here */
    }
    while (waitpid(pid, &status, 0) < 0) {
        if (errno != EINTR) {
            fprintf(stderr, "fuzz-replay: waitpid: %s\n", strerror(errno));
            return 1;
        }
    }
    if (WIFEXITED(status) && WEXITSTATUS(status) == 0)
        return 0;
    if (WIFSIGNALED(status))
        fprintf(stderr, "fuzz-replay: FAILED %s (signal %d)\n", path, WTERMSIG(status));
    else
        fprintf(stderr, "fuzz-replay: FAILED %s (exit %d)\n", path, WEXITSTATUS(status));
    return 1;
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Runs every regular file of dir in name order; adds to *passed, *failed. */
static void run_dir(const char *dir, unsigned *passed, unsigned *failed)
{
    DIR *d = opendir(dir);
    struct dirent *e;
    char **names = NULL;
    size_t n = 0, cap = 0;

    if (!d) {
        fprintf(stderr, "fuzz-replay: %s: %s\n", dir, strerror(errno));
        (*failed)++;
        return;
    }
    while ((e = readdir(d)) != NULL) {
        size_t len = strlen(dir) + strlen(e->d_name) + 2;
        char *path;
        struct stat st;

        if (e->d_name[0] == '.')
            continue;
        if ((path = malloc(len)) == NULL)
            break;
        snprintf(path, len, "%s/%s", dir, e->d_name);
        if (stat(path, &st) < 0 || !S_ISREG(st.st_mode)) {
            free(path);
            continue;
        }
        if (n == cap) {
            char **grown = realloc(names, (cap ? cap * 2 : 64) * sizeof *names);
            if (!grown) {
                free(path);
                break;
            }
            names = grown;
            cap = cap ? cap * 2 : 64;
        }
        names[n++] = path;
    }
    closedir(d);
    if (n)
        qsort(names, n, sizeof *names, cmp_str);
    for (size_t i = 0; i < n; i++) {
        if (run_one(names[i]))
            (*failed)++;
        else
            (*passed)++;
        free(names[i]);
    }
    free(names);
}

int main(int argc, char **argv)
{
    unsigned passed = 0, failed = 0;
    struct stat st;

    if (argc < 3) {
        fprintf(stderr, "usage: %s NAME DIR-OR-FILE...\n", argv[0]);
        return 2;
    }
    for (int i = 2; i < argc; i++) {
        if (stat(argv[i], &st) == 0 && S_ISDIR(st.st_mode))
            run_dir(argv[i], &passed, &failed);
        else if (run_one(argv[i]))
            failed++;
        else
            passed++;
    }
    printf("fuzz-replay %s: %u passed, %u failed\n", argv[1], passed, failed);
    return failed || passed == 0 ? 1 : 0;
}
