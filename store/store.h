/*
 * store.h: what the files of dt-store share: the run's state, with the
 * batch being filled (batch.c), the status lines (out.c) and sending
 * (send.c); main and the read loop are in dt-store.c.
 */
#ifndef DT_STORE_H
#define DT_STORE_H

#include <signal.h>
#include <stddef.h>

#include <jansson.h>

#include "buf.h"
#include "progress.h"
#include "supabase.h"


/* Keeps a batch's request small even when analyses are large. */
#define DT_STORE_MAX_BATCH_BYTES ((size_t)4 * 1024 * 1024)

/*
 * Where one record of the batch is.  Its dt_settle element is body's
 * item_len bytes at item; its status line so far, the record without
 * its closing brace, is lines' line_len bytes at line; its source id as
 * text, NUL-terminated, is in sids at sid.
 */
struct dt_store_slot {
	size_t item, item_len;
	size_t line, line_len;
	size_t sid;
	int sid_is_str;         /* a string id (else an integer) */
	int reused;             /* it takes an analysis made before, or
				 * another row's ("same_text") */
	int follows;            /* "same_text": the row's id is at as */
	size_t as;              /* in sids */
};

/*
 * One run of dt-store: its settings, the batch being filled, the status
 * lines not yet written and the counts for its stage record.
 */
struct dt_store {
	long long batch_size;
	long long max_delay;
	long long max_line;
	int dry_run;
	int check;              /* --check-config */
	int reclaim;            /* --reclaim: dt_reclaim, not dt_settle */
	long long outage_s;     /* DT_STORE_OUTAGE_SECONDS */
	long long drain_s;      /* DT_DRAIN_SECONDS */
	const char *stop_file;  /* DT_STOP_FILE or NULL */
	long long stop_ms;      /* when the run stopped (now_ms()), or 0 */
	const char *default_run;
	const char *where;      /* position of the record being taken */
	struct dt_supabase *sb;
	int dead;               /* a fatal error: store nothing more */
	char dead_why[1100];

	/*
	 * The batch being filled.  A record is encoded as it comes, twice:
	 * its dt_settle element (appended to body, with commas between
	 * them, so a request is a slice of body in brackets) and its
	 * status line (in lines); then it is freed.  So a batch holds text,
	 * not parsed records, and each record is encoded once for the
	 * request and once for the output, as it must be.
	 */
	struct dt_buf body, lines, sids;
	struct dt_store_slot *slot;      /* batch_size entries */
	size_t n;               /* records in the batch */
	char *run_id;           /* run of the batch */
	long long first_ms;     /* when the first record came */

	/* Status lines not yet written, and what writing them gave. */
	struct dt_buf out;
	int out_status;         /* 0, DT_EXIT_PIPE or DT_EXIT_IOERR */

	struct dt_progress progress;
	char *first_run;        /* for the stage record */
	long long stored, failed, skipped, not_stored, bad, batches;
	long long lost;         /* rows this run no longer held */
	long long unchanged;    /* --reclaim: rows left alone */
	long long released;     /* given back unanalyzed, attempt returned */
	long long reused;       /* stored with another row's analysis */
	/*
	 * Records of rows that take the analysis of a row still being
	 * analysed (dt_settle said "waiting"), to be sent again; final: the
	 * input has ended, so what they wait for will not come.
	 */
	json_t *waiting;
	int final;
	/*
	 * The rows that following records take the analysis of, by source
	 * id: null until that row's record came with its analysis, then
	 * {"analysis","model","prompt_version"} for their status lines.
	 */
	json_t *wanted;
	long long outages;      /* outages waited through */
	int status;
	char message[1100];
};

/* The first SIGTERM or SIGINT seen, else 0 (set by dt-store.c). */
extern volatile sig_atomic_t dt_store_got_signal;

/* Makes s->status the worse of it and status. */
void dt_store_worse(struct dt_store *s, int status);

/*
 * Writes the queued status lines to stdout.  Like dt_emit(): a reader
 * that went away (EPIPE) ends the output quietly, another error is
 * logged once; either way nothing more is written.
 */
void dt_store_out_write(struct dt_store *s);

/* Writes rec as a line of its own, after the queued lines. */
void dt_store_emit(struct dt_store *s, json_t *rec);

/* Writes rec with "store" (a new reference, stolen) and "status" set. */
void dt_store_emit_status(struct dt_store *s, json_t *rec, json_t *store,
    const char *status);

/* A bad input record: say why, keep what it had. */
void dt_store_emit_bad(struct dt_store *s, json_t *rec, const char *why);

/*
 * Ends the status line of batch record i with "store" (store_len bytes of
 * JSON text at store) and "status", and queues it.  The queue is written
 * out whenever it grows past 64 KiB, and at the end of every batch.
 */
void dt_store_line_end(struct dt_store *s, size_t i, const char *store,
    size_t store_len, const char *status);

/* Ends batch record i's line as not stored, for the reason why. */
void dt_store_line_not_stored(struct dt_store *s, size_t i, const char *why);

/*
 * Notes what rec (a record about to be batched) says about analyses that
 * following rows take (s->wanted): a follower wants its row's analysis,
 * and a record with an analysis that is wanted gives it.
 */
void dt_store_note_analysis(struct dt_store *s, json_t *rec);

/*
 * Checks that rec can be stored: a usable id, and an "analysis", an
 * "error" or a "skip" object.  Returns 0, or -1 with *why set.
 */
int dt_store_storable(json_t *rec, const char **why);

/*
 * Adds rec (storable, without "text" and "row") to the batch as record
 * s->n: its source id, its dt_settle element and its status line so far
 * (the record without its closing brace).  Returns 0, or -1 when out of
 * memory (the batch is as before).
 */
int dt_store_batch_add(struct dt_store *s, json_t *rec);

/* Empties the batch. */
void dt_store_batch_reset(struct dt_store *s);

/*
 * Keeps batch record i, whose row waits for the analysis of another
 * (outcome "waiting"), in s->waiting to be sent again; its status line
 * is written once the row is settled.
 */
void dt_store_wait_keep(struct dt_store *s, size_t i);

/*
 * Moves the waiting records into the empty batch, as many as fit and
 * belong to one run; the batch is then sent no sooner than 200 ms from
 * now.  Returns how many it moved.
 */
size_t dt_store_wait_take(struct dt_store *s);

/* Writes the status lines of records [from, to) from the reply rows. */
void dt_store_emit_outcomes(struct dt_store *s, size_t from, size_t to,
    json_t *rows);

/*
 * The request for records [from, to): {"p_run_id":...,"p_results":[...]}
 * around the slice of the body that holds their elements.  Returns a new
 * string (its length in *n), or NULL when out of memory.
 */
char *dt_store_request_body(struct dt_store *s, size_t from, size_t to,
    size_t *n);

/*
 * Sends records [from, to) of the batch in one request.  On a 400 for
 * more than one record it sends them one by one, so one bad record does
 * not take its batch down with it.  Through an outage it waits and sends
 * them again (outage_wait(), send.c).  A request that still fails while the
 * probes get answers is this request's trouble, not an outage (a
 * statement timeout on a large batch, say): its records are sent one by
 * one, and a single one is given up without ending the run's storing.
 */
void dt_store_send_range(struct dt_store *s, size_t from, size_t to);

/* --dry-run: each record's line says what would have been sent. */
void dt_store_dry_run(struct dt_store *s);

#endif
