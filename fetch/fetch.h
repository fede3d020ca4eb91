/* fetch.h: what dt-fetch.c and claim.c (--claim and --peek) share. */
#ifndef DT_FETCH_H
#define DT_FETCH_H

#include <jansson.h>

#include "supabase.h"

#define RUN_ID_MAX 200

struct dt_fetch {
	int mode;       /* 'c' --claim, 'p' --peek, 'R' --requeue,
			 * 'P' --preflight, 'B' --backlog */
	int dry_run, check;
	const char *kind;       /* --requeue's kind, or NULL for all */
	const char *stop_file, *table, *id_col, *text_col, *reuse;
	long long batch, max_records, lease, attempts, max_text, max_line;
	json_t *columns;        /* array of strings or NULL */
	char run_id[RUN_ID_MAX + 1];

	/* What happened, for the stage record. */
	long long emitted, batches, cut, reused, same_text;
	int status;
	char message[1400];
};

/* Sets f->status and f->message (printf-style, valid UTF-8): status. */
int dt_fetch_fail(struct dt_fetch *f, int status, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/*
 * dt_claim's or dt_peek's arguments for want rows after the id after
 * (peek; NULL: the first).  New, or NULL: out of memory.
 */
json_t *dt_fetch_request_args(struct dt_fetch *f, long long want,
    json_t *after);

/*
 * --claim and --peek until the cap, an empty batch, an error or a stop
 * (75), then the stage record; --dry-run: the first request.  Returns
 * the exit status.
 */
int dt_fetch_claim(struct dt_fetch *f);

#endif
