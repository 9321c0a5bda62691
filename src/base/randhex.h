/* Random hexadecimal strings for ids and loopback API keys (not for cryptography beyond that). */
#ifndef HERD_BASE_RANDHEX_H
#define HERD_BASE_RANDHEX_H

#include <stddef.h>

/* out gets nhex (at most 64) lowercase hex digits from /dev/urandom, and a terminating 0; without
 * /dev/urandom, digits mixed from the clocks and out's address (unique per call, not secret). */
void herd_random_hex(char *out, size_t nhex);

#endif
