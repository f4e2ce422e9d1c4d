/* hp_server.h - the worker's socket, connection slots, slot threads and frame loop.
 *
 * Owns: the listening Unix socket (its directory, stale-file handling, mode, unlink at exit), the
 * fixed pool of connection slots (one thread each, input/output/scratch buffers reserved at
 * start), handing accepted connections to idle slots (WIRE_E_BUSY when none is idle), reading and
 * validating frames, dispatching them to the kernel registry and writing the responses.
 *
 * Lifecycle (single-threaded calls from main):
 *   hp_server_start -> hp_ready -> hp_server_run (until a stop signal) -> hp_server_stop
 * Between hp_ready() and hp_server_stop() nothing here allocates, maps memory or creates threads.
 * Costs: memory reserved = slots x (2 x max frame + scratch), touched lazily; one thread per slot
 * plus the caller's (acceptor); per frame O(payload) copying from the socket, nothing else. */
#ifndef VIGIL_HP_SERVER_H
#define VIGIL_HP_SERVER_H

#include <stddef.h>

#include "hp_config.h"
#include "hp_kernels.h"

typedef struct hp_server hp_server;

/* Creates the socket's directory (mkdir -p, new directories get mode 0750), refuses to start if a
 * live worker answers on the socket path or the path is not a socket, removes a stale socket file,
 * reserves every slot's memory, starts the slot threads and binds + listens (mode 0660).
 * The calling thread must already block the signals that should stop the server (slot threads
 * inherit its mask).  Frames are answered by the kernels of ks (kept, not owned: destroy it after
 * hp_server_stop).  Returns 0 and *out, or -1 with a one-line reason in err (nothing left
 * behind).  Call after hp_kernels_create(). */
int hp_server_start(const hp_config *cfg, unsigned ncpu, const hp_kernels *ks, hp_server **out,
                    char *err, size_t errlen);

/* Logs "ready" and tells the allocation probe (if preloaded) that the no-allocation phase
 * starts. */
void hp_ready(hp_server *s);

/* Accepts connections until stop_fd becomes readable (e.g. a signalfd); does not read stop_fd.
 * Returns 0, or -1 if poll itself fails.  Never allocates. */
int hp_server_run(hp_server *s, int stop_fd);

/* Stops accepting, closes and unlinks the socket, lets every slot finish the request it is
 * answering (then closes its connection), joins the threads and frees everything.  s may be
 * NULL. */
void hp_server_stop(hp_server *s);

#endif
