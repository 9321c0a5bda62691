/* How much memory the machine can still give this process. */
#ifndef HERD_BASE_MEMINFO_H
#define HERD_BASE_MEMINFO_H

#include <stdint.h>

/* MemAvailable of /proc/meminfo in bytes, 0 when unknown. HERD_MEM_AVAILABLE=BYTES in the environment
 * stands in for it (to see what herd does on a smaller machine). */
uint64_t base_mem_available(void);

#endif
