/*
 * ledger.h: what a run leaves behind: its row in the Supabase run ledger,
 * read back for the backlog, the previous run and the shards (ledger.c),
 * and its metrics in a Prometheus Pushgateway (metrics.c).
 */
#ifndef DT_RPT_LEDGER_H
#define DT_RPT_LEDGER_H

#include <jansson.h>

struct dt_http;
struct dt_rpt_tally;
struct dt_supabase;

/*
 * Adds to the summary s "backlog" (rpc/dt_backlog for the source table)
 * and "previous" (the latest other finished run but a shard's, with the
 * "delta" from it); what cannot be read is left out after logging.
 */
void dt_rpt_db_read(struct dt_supabase *sb, const char *table,
    const char *id_column, json_t *s);

/*
 * --merge-shards: polls the ledger, with backoff, until the n shard rows
 * "<run_id>/<k>" are all finished or wait_ms are over (cut to drain_s
 * seconds more once stop_file exists), merging each into t as it comes;
 * warns about those that never came.  Returns a new {"of": n, "merged":
 * [k, ...], "missing": [k, ...]}.
 */
json_t *dt_rpt_db_merge_shards(struct dt_supabase *sb, const char *run_id,
    long long n, long long wait_ms, const char *stop_file,
    long long drain_s, struct dt_rpt_tally *t);

/* Upserts the row run_id from the summary s.  Returns 0 or -1 (logged). */
int dt_rpt_db_upsert(struct dt_supabase *sb, json_t *s, const char *run_id);

/*
 * POSTs the summary's metrics to url/metrics/job/<job>, the last-success
 * time (now) only when success is set.  Returns 0 or -1 (logged).
 */
int dt_rpt_metrics_push(struct dt_http *h, const char *url, const char *job,
    json_t *summary, int success, long long now, long timeout_ms);

#endif
