/*
 * store.h: what the files of dt-store share: the run's state, the
 * records and their status lines (batch.c) and sending (send.c).
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

/* Writes rec as a line of its own (dt_emit()). */
void dt_store_emit(struct dt_store *s, json_t *rec);

/*
 * Writes rec (a record of the batch, or a bad one) with "store" (a new
 * reference, stolen) and "status", and counts it.  A record stored with
 * the analysis of another row ("same_text") shows that analysis.
 */
void dt_store_emit_status(struct dt_store *s, json_t *rec, json_t *store,
    const char *status);

/* Writes rec as not stored, for the reason why. */
void dt_store_not_stored(struct dt_store *s, json_t *rec, const char *why);

/* rec's source id as text: the string, or the integer written in buf. */
const char *dt_store_sid(json_t *rec, char buf[32]);

/*
 * rec's element of a dt_settle request: {"id" (as text), then
 * "error":{"kind","message"} (and "retryable" when rec's error has it),
 * or "analysis" with "model", "prompt_version", the token counts out of
 * "usage", "latency_ms", "cost_usd" and "reused" where rec has them, or
 * "same_text":{"as"} (with "final": true once the input has ended) for
 * a row that takes the analysis of another, or else
 * "skip":{"reason","message"}}.  Returns a new reference, or NULL when
 * out of memory.
 */
json_t *dt_store_settle_item(struct dt_store *s, json_t *rec);

/*
 * Notes what rec (a record about to be batched) says about analyses that
 * following rows take (s->wanted): a follower wants its row's analysis,
 * and a record with an analysis that is wanted gives it.
 */
void dt_store_note_analysis(struct dt_store *s, json_t *rec);

/*
 * Moves the waiting records into the empty batch, as many as fit and
 * belong to one run; the batch is then sent no sooner than 200 ms from
 * now.  Returns how many it moved.
 */
size_t dt_store_wait_take(struct dt_store *s);

/*
 * Sends the batch (with --dry-run, says what it would send), writes its
 * status lines and empties it.
 */
void dt_store_flush(struct dt_store *s);

#endif
