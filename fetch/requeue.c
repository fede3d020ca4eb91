/*
 * requeue.c: dt-fetch --requeue, which returns parked rows to the queue
 * (see fetch.h).
 */
#include <stdio.h>

#include <jansson.h>

#include "exit.h"
#include "log.h"

#include "fetch.h"

int
dt_fetch_requeue(struct dt_fetch *f)
{
	struct dt_supabase *sb = dt_supabase_new();
	struct dt_sb_result res;
	json_t *args, *rows, *by, *v;
	const char *k, *sep = ": ";
	int rc;

	if (sb == NULL)
		return DT_EXIT_CONFIG;
	args = json_pack("{ss?sb}", "p_kind", f->kind, "p_dry_run",
	    f->dry_run);
	if (args == NULL) {
		dt_error("out of memory");
		dt_supabase_free(sb);
		return DT_EXIT_TEMPFAIL;
	}
	rc = dt_supabase_call(sb, "POST", "rpc/dt_requeue", args, NULL, 1,
	    &res);
	json_decref(args);
	dt_supabase_free(sb);
	rows = json_object_get(res.body, "rows");
	by = json_object_get(res.body, "by_kind");
	if (rc == DT_SB_OK && (!json_is_integer(rows) || !json_is_object(by))) {
		rc = DT_SB_BADREPLY;
		snprintf(res.message, sizeof(res.message),
		    "the dt_requeue reply is not {\"rows\",\"by_kind\"}");
	}
	if (rc != DT_SB_OK) {
		dt_error("Supabase %s: %s", rc == DT_SB_CONFIG ||
		    rc == DT_SB_REJECTED ? "refused the request" : "unavailable",
		    res.message);
		dt_sb_result_clear(&res);
		return rc == DT_SB_REJECTED ? DT_EXIT_CONFIG : dt_sb_exit(rc);
	}
	printf("%s %" JSON_INTEGER_FORMAT " parked row%s%s%s", f->dry_run ?
	    "would requeue" : "requeued", json_integer_value(rows),
	    json_integer_value(rows) == 1 ? "" : "s", f->kind != NULL ?
	    " of kind " : "", f->kind != NULL ? f->kind : "");
	/* Without a kind, how many of each. */
	json_object_foreach(by, k, v) {
		if (f->kind != NULL)
			break;
		printf("%s%s %" JSON_INTEGER_FORMAT, sep, k,
		    json_integer_value(v));
		sep = ", ";
	}
	dt_sb_result_clear(&res);
	return printf("\n") < 0 ? DT_EXIT_IOERR : DT_EXIT_OK;
}
