/*
 * tally.h: the run's tally: what the records and stage reports say,
 * counted in memory that does not grow with the input.
 */
#ifndef DT_RPT_TALLY_H
#define DT_RPT_TALLY_H

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "counters.h"

/* What the tally learnt from the schema about one analysis field. */
enum {
	DT_RPT_FIELD_ENUM = 1,  /* string (or array of strings) with enum */
	DT_RPT_FIELD_LABEL,     /* short string code, e.g. language */
	DT_RPT_FIELD_TOPICS,    /* array of free strings: top-k */
	DT_RPT_FIELD_ITEMS,     /* array of free text: counted only */
	DT_RPT_FIELD_MEAN       /* bounded number: mean */
};

#define DT_RPT_MAX_FIELDS 16
#define DT_RPT_MAX_ENUM 32
#define DT_RPT_MAX_STATUS 16
#define DT_RPT_MAX_KINDS 16
#define DT_RPT_MAX_STAGES 8
#define DT_RPT_MAX_MESSAGES 4
#define DT_RPT_MAX_COUNTS 16

struct dt_rpt_field {
	char name[64];
	int kind;
	int nvalues;
	char values[DT_RPT_MAX_ENUM][48];
	uint64_t counts[DT_RPT_MAX_ENUM];
	uint64_t other;         /* a value not in the enum */
	uint64_t present;       /* records that had the field */
	uint64_t items;         /* ITEMS: items in all records */
	double sum;             /* MEAN */
	struct dt_rpt_topk topk; /* LABEL, TOPICS */
};

/* One upstream stage, from its stage report records. */
struct dt_rpt_stage {
	char name[32];
	int reports;
	int status;             /* the worst status seen */
	int interrupted;
	int missing;            /* expected, but no stage report came */
	int nmessages;
	char messages[DT_RPT_MAX_MESSAGES][240];
	int ncounts;
	char count_names[DT_RPT_MAX_COUNTS][32];
	double counts[DT_RPT_MAX_COUNTS];
};

struct dt_rpt_named {
	char name[32];
	uint64_t n;
};

struct dt_rpt_tally {
	uint64_t records;
	uint64_t bad_lines;
	int nstatus;
	struct dt_rpt_named status[DT_RPT_MAX_STATUS]; /* last: "other" */
	int nkinds;
	struct dt_rpt_named kinds[DT_RPT_MAX_KINDS];   /* last: "other" */
	uint64_t failed;        /* records counted as failed */
	uint64_t prompt_tokens, completion_tokens, total_tokens;
	double cost;
	uint64_t with_cost;
	struct dt_rpt_hist latency;
	uint64_t analyzed;      /* records with an analysis object */
	uint64_t reused;        /* stored with an analysis made before or
				 * for another row with the same text */
	int nfields;
	struct dt_rpt_field fields[DT_RPT_MAX_FIELDS];
	int nstages;
	struct dt_rpt_stage stages[DT_RPT_MAX_STAGES];
	char run_id[128];
	int mixed_runs;
	char started_at[40];    /* earliest stage "started_at", if any */
	size_t top;             /* topics to report */
};

/*
 * Sets up a tally.  schema is the analysis JSON schema (borrowed; NULL:
 * the default fields sentiment, language, topics, action_items,
 * confidence); top is how many topics the summary lists; topics_field
 * names the field whose strings are ranked.  Returns 0, or -1 after
 * logging.  Free with dt_rpt_tally_free().
 */
int dt_rpt_tally_init(struct dt_rpt_tally *t, json_t *schema, size_t top,
    const char *topics_field);
void dt_rpt_tally_free(struct dt_rpt_tally *t);

/*
 * Counts one record (borrowed): a status record, any stage's output, or
 * a stage report ({"stage": ..., no "id"}).  Members of an unexpected
 * type count as absent.
 */
void dt_rpt_tally_add(struct dt_rpt_tally *t, json_t *rec);

/*
 * The run's state from what was tallied: "ok", "partial" or "failed", and
 * the exit status the records and stages call for.
 */
const char *dt_rpt_tally_state(const struct dt_rpt_tally *t, int *status);

/*
 * Adds a stage, marked missing with status DT_EXIT_TEMPFAIL and the
 * message "<name> ended without its stage record (crashed or killed?)"
 * (also logged as an error), for every name in the comma-separated list
 * that sent no stage report.  Returns how many were missing.
 */
int dt_rpt_tally_expect(struct dt_rpt_tally *t, const char *list);

/* Keeps at (RFC 3339; NULL: none) when it is the earliest start seen. */
void dt_rpt_tally_started(struct dt_rpt_tally *t, const char *at);

/*
 * The stage named name (cut to 24 characters), added with *added set
 * when it is new; NULL (warned) when the table is full.
 */
struct dt_rpt_stage *dt_rpt_tally_stage(struct dt_rpt_tally *t,
    const char *name, int *added);

/*
 * Adds the numeric members of the object counts (borrowed) to the
 * stage's counts of the same name; names of 32 bytes or more and counts
 * past DT_RPT_MAX_COUNTS are left out.
 */
void dt_rpt_stage_counts(struct dt_rpt_stage *s, json_t *counts);

/* Adds msg to the stage's distinct messages (clipped; at most 4). */
void dt_rpt_stage_message(struct dt_rpt_stage *s, const char *msg);

/*
 * The entry for name (len bytes, normalised as a topic; "other" when
 * nothing is left) in a table of at most max entries whose last is
 * "other", added when new.
 */
struct dt_rpt_named *dt_rpt_named_find(struct dt_rpt_named *tab, int *n,
    int max, const char *name, size_t len);

#endif
