/*
 * fetch.h: the run's settings and counts, which dt-fetch's files share:
 * dt-fetch.c reads them and picks the mode, claim.c claims and peeks,
 * inspect.c makes the other calls to Supabase.
 */
#ifndef DT_FETCH_H
#define DT_FETCH_H

#include <jansson.h>

#include "supabase.h"

#define RUN_ID_MAX 200

struct dt_fetch {
	int mode;               /* 'c', 'p', 'R' (--requeue), 'P'
				 * (--preflight) or 'B' (--backlog) */
	const char *kind;       /* --requeue's kind, or NULL for all */
	int dry_run;
	int check;              /* --check-config */
	const char *stop_file;  /* DT_STOP_FILE or NULL */
	long long batch;
	long long max_records;
	long long lease;
	long long attempts;
	long long max_text;     /* DT_FETCH_MAX_TEXT_BYTES */
	long long max_line;     /* DT_MAX_LINE */
	const char *table;
	const char *id_col;
	const char *text_col;
	json_t *columns;        /* array of strings or NULL */
	const char *reuse;      /* --reuse's prompt version, or NULL */
	char run_id[RUN_ID_MAX + 1];

	/* What happened, for the stage record. */
	long long emitted;
	long long batches;
	long long cut;          /* texts cut to fit */
	long long reused;       /* rows that came with a stored analysis */
	long long same_text;    /* rows that follow one with the same text */
	int status;
	char message[1400];
};

/*
 * Sets f->status and f->message (printf-style, cut to valid UTF-8): the
 * stage record's, or the reason the other modes give.  Returns status.
 */
int dt_fetch_fail(struct dt_fetch *f, int status, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/*
 * The arguments of one dt_claim (f->mode 'c') or dt_peek call for want
 * rows after the source id after (peek only; NULL for the first page).
 * Returns a new reference, or NULL when out of memory.
 */
json_t *dt_fetch_request_args(struct dt_fetch *f, long long want,
    json_t *after);

/*
 * The modes; each returns the exit status.  --claim and --peek write a
 * source record per row, batch after batch until the cap, an empty
 * batch, an error or a stop (SIGTERM, SIGINT, the stop file: 75), then
 * the stage record.  --dry-run prints the first request instead.
 * --requeue returns the parked rows (of f->kind, or all) to the queue,
 * or with --dry-run counts them, and prints how many by kind on a line.
 * --preflight prints one line, "supabase: ready: ..." or "supabase: not
 * ready: ..." (the migrations, the key, the source); --backlog prints
 * one JSON object: dt_backlog's counts, a sample of the texts a claim
 * would take, the batch limits and the cost of recent analyses.
 */
int dt_fetch_claim(struct dt_fetch *f);
int dt_fetch_dry_run(struct dt_fetch *f);
int dt_fetch_requeue(struct dt_fetch *f);
int dt_fetch_preflight(struct dt_fetch *f);
int dt_fetch_backlog(struct dt_fetch *f);

#endif
