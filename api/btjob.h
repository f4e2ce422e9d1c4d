/* btjob.h - the backtest runner: background threads of vigil-api that run the jobs POST
 * /api/v1/backtests queued (issue 14).
 *
 * Owns: VIGIL_BACKTEST_CONCURRENCY threads.  Each polls the backtests table for a job in state
 * queued or running that no one holds, takes it with a session advisory lock (held on its own
 * pooled connection for as long as it runs the job, so two API processes never run one job, and a
 * crashed process's jobs are free again the moment its connections close), and runs it chunk by
 * chunk:
 *   read    VIGIL_BACKTEST_CHUNK_ROWS stored decisions in (occurred_at, id) order after the
 *           job's keyset position (fields + feature snapshot), only rows stored before the job
 *           was created (so a resumed job sees the same history);
 *   assemble each row's input for the candidate champion by feature name from its snapshot
 *           (btrows.h; absent names are missing and counted per feature);
 *   score   in the worker in large SCORE frames flagged WIRE_F_BULK (the worker serves live
 *           decisions first, hotpath/hp_prio.h), in process in inprocess mode;
 *   decide  the candidate's thresholds (score >= block -> block, >= review -> review, else allow;
 *           a row the candidate cannot score gets its fallback); with rules, common/rules.h's
 *           rules_eval + rules_decide as a live decision: the program compiled once per run
 *           against the catalogue of the candidate's models (rulecat.h) and the lists that exist,
 *           operands from what the live decision recorded (rule_inputs), the stored fields,
 *           client features, amount_major and the snapshot, the candidate's champion and
 *           challenger scores; each list's current set held for the run (listcache.h);
 *   record  in one database transaction: the labelled rows' scores (backtest_scores), the
 *           processed count, the keyset position and the partial aggregates (btreport) - and only
 *           if the job is still running (DELETE cancels it: the chunk is rolled back and the
 *           thread moves on).
 * After the last chunk the report is rendered (the AUCs from the grouped scores) and stored with
 * state succeeded in one transaction; an error marks the job failed with the reason.  On shutdown
 * a thread finishes its chunk and leaves the job running: the next start resumes it from its last
 * chunk.  Costs: memory O(chunk rows x features); one pooled database connection per running job;
 * a poll query per idle thread every BTJOB_POLL_MS.  Thread-safe. */
#ifndef VIGIL_BTJOB_H
#define VIGIL_BTJOB_H

#include <stddef.h>

#include "app.h"

#define BTJOB_POLL_MS 200

typedef struct btjob_runner btjob_runner;

/* Starts a->cfg->backtest_concurrency runner threads (none when it is 0: the runner then exists
 * but runs nothing).  a must outlive the runner.  Returns it, or NULL with err. */
btjob_runner *btjob_start(const app *a, char *err, size_t errlen);

/* Asks every thread to stop after its current chunk, and joins them.  Jobs they were running stay
 * in state running with their progress, to be resumed.  r may be NULL. */
void btjob_stop(btjob_runner *r);

#endif
