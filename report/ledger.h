/*
 * ledger.h: what a run leaves behind: its row in the Supabase run ledger,
 * read back for the backlog, the previous run and the shards (ledger.c),
 * and its metrics in a Prometheus Pushgateway (metrics.c).
 */
#ifndef DT_RPT_LEDGER_H
#define DT_RPT_LEDGER_H

#include <jansson.h>

struct dt_http;
struct dt_supabase;

/*
 * Asks the database for the backlog (POST /rest/v1/rpc/dt_backlog) of the
 * source table.  Returns a new reference to the object
 * {"unclaimed":N,"leased":N,"failed":N,"done":N}, or NULL after logging.
 */
json_t *dt_rpt_db_backlog(struct dt_supabase *sb, const char *table,
    const char *id_column);

/*
 * Reads the latest finished run in the ledger other than run_id (NULL:
 * any).  Returns 0 with *row a new reference (json_null() when there is
 * none), or -1 after logging.
 */
int dt_rpt_db_previous(struct dt_supabase *sb, const char *run_id,
    json_t **row);

/*
 * Polls the ledger, with backoff, until the n shard rows "<run_id>/<k>"
 * are all finished or wait_ms are over (cut to drain_s seconds more once
 * stop_file exists).  rows[k] is shard k's summary (a new reference) or
 * stays NULL.  Returns how many were found.
 */
int dt_rpt_db_wait_shards(struct dt_supabase *sb, const char *run_id,
    long long n, long long wait_ms, const char *stop_file,
    long long drain_s, json_t **rows);

/* Upserts the ledger row (borrowed).  Returns 0 or -1 after logging. */
int dt_rpt_db_upsert(struct dt_supabase *sb, json_t *row);

/*
 * Pushes the run's metrics, made from the summary, to
 * url/metrics/job/<job> with POST: the last-success time (now, seconds
 * since the epoch) only when success is set.  Returns 0 or -1 after
 * logging.
 */
int dt_rpt_metrics_push(struct dt_http *h, const char *url, const char *job,
    json_t *summary, int success, long long now, long timeout_ms);

#endif
