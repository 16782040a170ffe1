/* A wall clock the tests set: an LD_PRELOAD library for redis-server / valkey-server.
 *
 * When RL_FAKE_CLOCK names a file, clock_gettime(CLOCK_REALTIME*), gettimeofday() and time()
 * return the microseconds stored in its first 8 bytes (native endianness), which the test
 * rewrites between commands; every other clock (the monotonic clocks that drive the server's
 * event loop and timers) stays real. Expiries, PTTL, Lua's time and the module's now all read
 * the wall clock, so a test moves them together, by exactly as much as it wants.
 *
 * Only system calls here (no malloc, no dlsym): libfaketime's initialisation recurses into
 * jemalloc's clock_gettime and hangs both servers. Built by the test that uses it (cc -shared).
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

static volatile const int64_t *fake_us;
static int tried;

static volatile const int64_t *fake_clock(void) {
    if (!tried) {
        const char *path = getenv("RL_FAKE_CLOCK");
        if (path) {
            int fd = (int)syscall(SYS_openat, AT_FDCWD, path, O_RDONLY);
            if (fd >= 0) {
                void *map = mmap(NULL, sizeof(int64_t), PROT_READ, MAP_SHARED, fd, 0);
                if (map != MAP_FAILED) fake_us = map;
                syscall(SYS_close, fd);
            }
        }
        tried = 1;
    }
    return fake_us;
}

int clock_gettime(clockid_t id, struct timespec *ts) {
    volatile const int64_t *clock = fake_clock();
    if (clock && (id == CLOCK_REALTIME || id == CLOCK_REALTIME_COARSE)) {
        int64_t us = *clock;
        ts->tv_sec = us / 1000000;
        ts->tv_nsec = (long)(us % 1000000) * 1000;
        return 0;
    }
    return (int)syscall(SYS_clock_gettime, id, ts);
}

int gettimeofday(struct timeval *restrict tv, void *restrict tz) {
    struct timespec ts;
    (void)tz;
    if (clock_gettime(CLOCK_REALTIME, &ts) != 0) return -1;
    if (tv) {
        tv->tv_sec = ts.tv_sec;
        tv->tv_usec = ts.tv_nsec / 1000;
    }
    return 0;
}

time_t time(time_t *out) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    if (out) *out = ts.tv_sec;
    return ts.tv_sec;
}
