/*
 * store.h: what dt-store.c (settings, reading and batching the records)
 * and send.c (sending a batch, and the status lines) share.
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
	long long batch_size, max_delay, max_line, outage_s, drain_s;
	int dry_run, check, reclaim;
	const char *stop_file, *default_run;
	struct dt_supabase *sb;
	long long stop_ms;      /* when the run stopped (dt_now_ms()), or 0 */
	int dead;               /* a fatal error (message): store no more */

	/* Records of one run, without "text", "row", "store", "status". */
	json_t *batch;
	size_t bytes;           /* the batch's size as JSON text */
	char *run_id;           /* run of the batch */
	long long first_ms;     /* when the first record came */
	/*
	 * Records that wait for another row's analysis (final: the input has
	 * ended), and by source id the analyses followers take, or null.
	 */
	json_t *waiting, *wanted;
	int final;

	struct dt_progress progress;
	char *first_run;        /* for the stage record */
	long long stored, failed, skipped, unchanged, released, reused;
	long long lost, not_stored, bad, batches, outages;
	int status;
	char message[1100];     /* the stage record's; why, once dead */
};

/* The first SIGTERM or SIGINT seen, else 0 (set by dt-store.c). */
extern volatile sig_atomic_t dt_store_got_signal;

/* Makes s->status the worse of it and status. */
void dt_store_worse(struct dt_store *s, int status);

/*
 * Writes rec with "store" (a new reference, stolen) and "status", and
 * counts it; "failed" makes the exit status at least 1.  A follower
 * stored shows the analysis it took.
 */
void dt_store_emit_status(struct dt_store *s, json_t *rec, json_t *store,
    const char *status);

/* Writes rec as not stored, for the reason why. */
void dt_store_not_stored(struct dt_store *s, json_t *rec, const char *why);

/* Notes in s->wanted the analysis rec follows, or has for a follower. */
void dt_store_note_analysis(struct dt_store *s, json_t *rec);

/* Sends the batch (--dry-run: says what it would send) and empties it. */
void dt_store_flush(struct dt_store *s);

#endif
