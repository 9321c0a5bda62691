#include "meminfo.h"

#include <stdio.h>
#include <stdlib.h>

uint64_t base_mem_available(void) {
    const char *env = getenv("HERD_MEM_AVAILABLE");
    if (env && *env) return strtoull(env, NULL, 10);
    FILE *f = fopen("/proc/meminfo", "r");
    if (!f) return 0;
    char line[256];
    unsigned long long kb = 0;
    while (fgets(line, sizeof line, f))
        if (sscanf(line, "MemAvailable: %llu kB", &kb) == 1) break;
    fclose(f);
    return (uint64_t)kb * 1024;
}
