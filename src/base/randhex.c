#define _POSIX_C_SOURCE 200809L
#include "randhex.h"

#include <fcntl.h>
#include <stdint.h>
#include <time.h>
#include <unistd.h>

void herd_random_hex(char *out, size_t nhex) {
    unsigned char b[32] = {0};
    int fd = open("/dev/urandom", O_RDONLY | O_CLOEXEC);
    ssize_t got = fd >= 0 ? read(fd, b, sizeof b) : -1;
    if (fd >= 0) close(fd);
    if (got < (ssize_t)sizeof b) { /* no /dev/urandom: both clocks and the address, through an LCG */
        struct timespec rt, mt;
        clock_gettime(CLOCK_REALTIME, &rt);
        clock_gettime(CLOCK_MONOTONIC, &mt);
        uint64_t x = (uint64_t)rt.tv_nsec ^ ((uint64_t)rt.tv_sec << 20) ^ ((uint64_t)mt.tv_nsec << 7) ^
                     (uint64_t)(uintptr_t)out;
        for (size_t i = 0; i < sizeof b; i++)
            x = x * 6364136223846793005ull + 1442695040888963407ull, b[i] ^= (unsigned char)(x >> 56);
    }
    if (nhex > 2 * sizeof b) nhex = 2 * sizeof b;
    for (size_t i = 0; i < nhex; i++) out[i] = "0123456789abcdef"[(b[i / 2] >> (i % 2 ? 0 : 4)) & 15];
    out[nhex] = 0;
}
