/*
 * metrics.h: the Prometheus Pushgateway push.
 */
#ifndef DT_RPT_METRICS_H
#define DT_RPT_METRICS_H

#include <jansson.h>

struct dt_http;

/*
 * Pushes the run's metrics, made from the summary, to
 * url/metrics/job/<job> with POST: the last-success time (now, seconds
 * since the epoch) only when success is set.  Returns 0 or -1 after
 * logging.
 */
int dt_rpt_metrics_push(struct dt_http *h, const char *url, const char *job,
    json_t *summary, int success, long long now, long timeout_ms);

#endif
