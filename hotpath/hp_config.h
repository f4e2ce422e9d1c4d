/* hp_config.h - the worker's settings: read once from the environment at start-up, validated, then
 * read-only for the life of the process (so every thread may read it without locks).
 *
 * Owns: the VIGIL_HOTPATH_* variables, their defaults and ranges, and a reusable strict integer
 * parser.  Costs: O(1); runs before hp_ready(), so it may use anything libc offers. */
#ifndef VIGIL_HP_CONFIG_H
#define VIGIL_HP_CONFIG_H

#include <stddef.h>
#include <stdint.h>

#ifndef VIGIL_VERSION
#define VIGIL_VERSION "0.1.0"
#endif

/* sizeof(struct sockaddr_un.sun_path) on Linux; the path plus its NUL must fit. */
#define HP_SOCKET_PATH_MAX 108

#define HP_DEFAULT_SOCKET "var/run/hotpath.sock"
#define HP_DEFAULT_MAX_CONNS 16u
#define HP_DEFAULT_MAX_FRAME_MB 64u
#define HP_DEFAULT_SCRATCH_MB 16u
#define HP_DEFAULT_IDLE_TIMEOUT_S 300u
#define HP_DEFAULT_IO_TIMEOUT_MS 5000u
#define HP_DEFAULT_MEMORY_MB 256u
#define HP_KERNEL_NAME_MAX 32 /* VIGIL_HOTPATH_KERNEL, with its NUL (hp_scorer.h: <= 31 bytes) */

typedef struct hp_config {
    char socket_path[HP_SOCKET_PATH_MAX]; /* VIGIL_HOTPATH_SOCKET, relative to the cwd */
    unsigned max_conns;                   /* VIGIL_HOTPATH_MAX_CONNS: slots = threads */
    uint32_t max_payload;                 /* VIGIL_HOTPATH_MAX_FRAME_MB, in bytes */
    size_t scratch_bytes;                 /* VIGIL_HOTPATH_SCRATCH_MB, in bytes, per slot */
    int64_t idle_timeout_ms;              /* VIGIL_HOTPATH_IDLE_TIMEOUT_S, in ms */
    int64_t io_timeout_ms;                /* VIGIL_HOTPATH_IO_TIMEOUT_MS */
    size_t memory_bytes;                  /* VIGIL_HOTPATH_MEMORY_MB, in bytes: the model arena */
    char kernel[HP_KERNEL_NAME_MAX];      /* VIGIL_HOTPATH_KERNEL: a registered scorer's name */
} hp_config;

/* Parses text as a decimal integer in [min, max]: digits only, no sign, no blanks, no suffix, no
 * overflow.  On success stores it in *out and returns 0; otherwise returns -1 and writes
 * "NAME: must be an integer in MIN..MAX" into err.  Thread-safe, never allocates. */
int hp_config_parse_uint(const char *name, const char *text, unsigned long long min,
                         unsigned long long max, unsigned long long *out, char *err, size_t errlen);

/* Fills cfg from the environment, defaults for unset or empty variables.  Returns 0, or -1 with a
 * one-line message naming the offending variable in err.  Not thread-safe (reads environ). */
int hp_config_load(hp_config *cfg, char *err, size_t errlen);

#endif
