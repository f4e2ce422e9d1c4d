/* hp_config.c - VIGIL_HOTPATH_* environment parsing.  See hp_config.h. */
#include "hp_config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hp_scorer.h"

int hp_config_parse_uint(const char *name, const char *text, unsigned long long min,
                         unsigned long long max, unsigned long long *out, char *err, size_t errlen)
{
    unsigned long long v = 0;
    const char *p = text;
    if (*p == '\0')
        goto fail;
    for (; *p; p++) {
        if (*p < '0' || *p > '9')
            goto fail;
        unsigned d = (unsigned)(*p - '0');
        if (d > max || v > (max - d) / 10) /* v * 10 + d > max, without overflowing */
            goto fail;
        v = v * 10 + d;
    }
    if (v < min)
        goto fail;
    *out = v;
    return 0;
fail:
    snprintf(err, errlen, "%s: must be an integer in %llu..%llu", name, min, max);
    return -1;
}

/* Reads one integer variable; unset or empty keeps def. */
static int env_uint(const char *name, unsigned long long def, unsigned long long min,
                    unsigned long long max, unsigned long long *out, char *err, size_t errlen)
{
    const char *text = getenv(name);
    if (text == NULL || *text == '\0') {
        *out = def;
        return 0;
    }
    return hp_config_parse_uint(name, text, min, max, out, err, errlen);
}

int hp_config_load(hp_config *cfg, char *err, size_t errlen)
{
    unsigned long long v;
    memset(cfg, 0, sizeof *cfg);

    const char *path = getenv("VIGIL_HOTPATH_SOCKET");
    if (path == NULL || *path == '\0')
        path = HP_DEFAULT_SOCKET;
    if (strlen(path) >= sizeof cfg->socket_path) {
        snprintf(err, errlen, "VIGIL_HOTPATH_SOCKET: path must be shorter than %d bytes",
                 HP_SOCKET_PATH_MAX);
        return -1;
    }
    if (path[strlen(path) - 1] == '/') {
        snprintf(err, errlen, "VIGIL_HOTPATH_SOCKET: must name a file, not a directory");
        return -1;
    }
    memcpy(cfg->socket_path, path, strlen(path) + 1);

    if (env_uint("VIGIL_HOTPATH_MAX_CONNS", HP_DEFAULT_MAX_CONNS, 1, 1024, &v, err, errlen))
        return -1;
    cfg->max_conns = (unsigned)v;
    /* 4095 MiB is the largest whole number of MiB a u32 payload_len can describe. */
    if (env_uint("VIGIL_HOTPATH_MAX_FRAME_MB", HP_DEFAULT_MAX_FRAME_MB, 1, 4095, &v, err, errlen))
        return -1;
    cfg->max_payload = (uint32_t)(v << 20);
    if (env_uint("VIGIL_HOTPATH_SCRATCH_MB", HP_DEFAULT_SCRATCH_MB, 0, 4095, &v, err, errlen))
        return -1;
    cfg->scratch_bytes = (size_t)v << 20;
    if (env_uint("VIGIL_HOTPATH_IDLE_TIMEOUT_S", HP_DEFAULT_IDLE_TIMEOUT_S, 1, 86400, &v, err,
                 errlen))
        return -1;
    cfg->idle_timeout_ms = (int64_t)v * 1000;
    if (env_uint("VIGIL_HOTPATH_IO_TIMEOUT_MS", HP_DEFAULT_IO_TIMEOUT_MS, 1, 600000, &v, err,
                 errlen))
        return -1;
    cfg->io_timeout_ms = (int64_t)v;
    /* The model arena (hp_arena.c), reserved whole at start-up. */
    if (env_uint("VIGIL_HOTPATH_MEMORY_MB", HP_DEFAULT_MEMORY_MB, 1, 65536, &v, err, errlen))
        return -1;
    cfg->memory_bytes = (size_t)v << 20;
    /* The scoring implementation (hp_scorer.h); default: the first registered, the tuned one. */
    const char *kernel = getenv("VIGIL_HOTPATH_KERNEL");
    if (kernel == NULL || *kernel == '\0')
        kernel = hp_scorer_at(0)->name;
    if (hp_scorer_find(kernel) == NULL) {
        char names[256];
        snprintf(err, errlen, "VIGIL_HOTPATH_KERNEL: unknown kernel '%.40s' (one of: %s)", kernel,
                 hp_scorer_names(names, sizeof names));
        return -1;
    }
    snprintf(cfg->kernel, sizeof cfg->kernel, "%s", kernel);
    return 0;
}
