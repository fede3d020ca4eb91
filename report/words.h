/*
 * words.h: the words of the Telegram report, in English and Russian.
 */
#ifndef DT_RPT_WORDS_H
#define DT_RPT_WORDS_H

struct dt_rpt_words {
	const char *lang;
	const char *title[3];   /* ok, partial, failed */
	const char *run, *records, *errors, *bad_lines, *tokens, *cost;
	const char *latency, *max, *duration, *backlog, *since, *what_failed;
	const char *interrupted, *exit, *analyses, *mean, *items_in;
	const char *approximate, *part, *unit_h, *unit_min, *unit_s, *unit_ms;
	const char *reports_of, *lc_records, *lc_failed, *lc_tokens, *other;
	char thousands[4], decimal;
	const char *names[24][2];       /* field, status and value words */
};

extern const struct dt_rpt_words dt_rpt_en, dt_rpt_ru;

/* The report's word for a field, status or value name, or NULL. */
const char *dt_rpt_word(const struct dt_rpt_words *w, const char *key);

/* What an exit status means, in w's language, or NULL when unknown. */
const char *dt_rpt_exit_words(const struct dt_rpt_words *w, int status);

#endif
