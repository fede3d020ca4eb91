/*
 * metrics.h: the Prometheus Pushgateway push.
 */
#ifndef DT_RPT_METRICS_H
#define DT_RPT_METRICS_H

#include <jansson.h>

#include "buf.h"

struct dt_http;

/*
 * Writes the run's metrics in the Prometheus text format into b, from
 * the summary; the last-success time only when success is set.
 */
void dt_rpt_metrics_text(struct dt_buf *b, json_t *summary, int success,
    long long now);

/*
 * Pushes them to url/metrics/job/<job> with POST.  Returns 0 or -1
 * after logging.
 */
int dt_rpt_metrics_push(struct dt_http *h, const char *url, const char *job,
    const char *text, long timeout_ms);

#endif
