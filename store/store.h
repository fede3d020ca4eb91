/*
 * store.h: what the two files of dt-store share: the run's state and
 * its status lines (dt-store.c, which reads and batches the records) and
 * sending a batch (send.c).
 */
#ifndef DT_STORE_H
#define DT_STORE_H

#include <signal.h>
#include <stddef.h>

#include <jansson.h>

#include "progress.h"
#include "supabase.h"

/* Keeps a batch's request small even when analyses are large. */
#define DT_STORE_MAX_BATCH_BYTES ((size_t)4 * 1024 * 1024)

/* One run of dt-store: its settings, its batch and its counts. */
struct dt_store {
	long long batch_size, max_delay, max_line;
	int dry_run;
	int check;              /* --check-config */
	int reclaim;            /* --reclaim: dt_reclaim, not dt_settle */
	long long outage_s;     /* DT_STORE_OUTAGE_SECONDS */
	long long drain_s;      /* DT_DRAIN_SECONDS */
	const char *stop_file;  /* DT_STOP_FILE or NULL */
	const char *default_run;
	struct dt_supabase *sb;
	long long stop_ms;      /* when the run stopped (dt_now_ms()), or 0 */
	int dead;               /* a fatal error (message): store no more */

	/* Records of one run, without "text", "row", "store", "status". */
	json_t *batch;
	size_t bytes;           /* the batch's size as JSON text */
	char *run_id;           /* run of the batch */
	long long first_ms;     /* when the first record came */
	/*
	 * Records of rows that take the analysis of a row still being
	 * analysed (dt_settle said "waiting"), to be sent again; final: the
	 * input has ended, so what they wait for will not come.
	 */
	json_t *waiting;
	int final;
	/*
	 * The rows whose analysis following rows take, by source id: null
	 * until that row's record came with its analysis, then
	 * {"analysis","model","prompt_version"} for their status lines.
	 */
	json_t *wanted;

	struct dt_progress progress;
	char *first_run;        /* for the stage record */
	long long stored, failed, skipped, not_stored, bad, batches;
	long long lost;         /* rows this run no longer held */
	long long unchanged;    /* --reclaim: rows left alone */
	long long released;     /* given back unanalyzed, attempt returned */
	long long reused;       /* stored with another row's analysis */
	long long outages;      /* outages waited through */
	int status;
	char message[1100];     /* the stage record's; why, once dead */
};

/* The first SIGTERM or SIGINT seen, else 0 (set by dt-store.c). */
extern volatile sig_atomic_t dt_store_got_signal;

/* Makes s->status the worse of it and status. */
void dt_store_worse(struct dt_store *s, int status);

/*
 * The source id of the row whose analysis rec takes (dt-fetch --reuse
 * wrote "same_text": {"as"} and a "skip" of reason same_text), or NULL
 * (also for a record with an error).  Borrowed.
 */
json_t *dt_store_same_text_as(json_t *rec);

/* rec's source id as text: the string, or the integer written in buf. */
const char *dt_store_sid(json_t *rec, char buf[32]);

/*
 * Writes rec (a record of the batch, or a bad one) with "store" (a new
 * reference, stolen) and "status", and counts it.  A record stored with
 * the analysis of another row ("same_text") shows that analysis.
 */
void dt_store_emit_status(struct dt_store *s, json_t *rec, json_t *store,
    const char *status);

/* Writes rec as not stored, for the reason why. */
void dt_store_not_stored(struct dt_store *s, json_t *rec, const char *why);

/*
 * Sends the batch (with --dry-run, says what it would send), writes its
 * status lines and empties it.
 */
void dt_store_flush(struct dt_store *s);

#endif
