/*
 * summary.h: the run summary built from the tally.
 */
#ifndef DT_RPT_SUMMARY_H
#define DT_RPT_SUMMARY_H

#include <jansson.h>

#include "tally.h"

/*
 * Builds the run summary (see docs/report.md).  Returns a new reference;
 * NULL when out of memory.  started/finished are RFC 3339 strings or
 * NULL; duration_s < 0 means unknown.
 */
json_t *dt_rpt_summary(const struct dt_rpt_tally *t, const char *run_id,
    const char *started, const char *finished, double duration_s);

#endif
