/*
 * text.h: the Telegram report: made from the summary, with untrusted
 * text made fit to count and to show (format.c), and sent (telegram.c).
 */
#ifndef DT_RPT_TEXT_H
#define DT_RPT_TEXT_H

#include <stddef.h>

#include <jansson.h>

#include "buf.h"

struct dt_http;

/*
 * Normalises a topic (s, n bytes) into buf (len >= DT_RPT_KEY_MAX + 1):
 * white space trimmed and runs of it made one space, control and
 * invisible characters dropped, Latin and Cyrillic capitals made small,
 * cut to DT_RPT_KEY_MAX bytes.  Returns the length (0: nothing left).
 */
size_t dt_rpt_topic_norm(const char *s, size_t n, char *buf, size_t len);

/*
 * Copies at most max_chars characters of the UTF-8 string s into buf
 * (len bytes), making control, line-separator and bidi-override
 * characters spaces and invalid bytes U+FFFD, and ending a cut string
 * with "…".  Returns buf.
 */
char *dt_rpt_clip(const char *s, size_t max_chars, char *buf, size_t len);

/* Telegram's length of the HTML text after parsing, in UTF-16 units. */
size_t dt_rpt_html_utf16(const char *html, size_t n);

/*
 * The report on the summary in lang ("en" or "ru"), split between lines
 * into messages of at most limit UTF-16 units, each whole HTML, those
 * after the first numbered.  Returns a new array of strings, or NULL
 * when out of memory.
 */
json_t *dt_rpt_messages(json_t *summary, const char *lang, size_t limit);

/* Where the report goes, and how long to try: dt-report's settings. */
struct dt_rpt_tg {
	const char *api_url;    /* without trailing slash */
	char *token;
	const char *chat_id;
	const char *thread_id;  /* NULL or digits */
	long long timeout_s;    /* per request */
	long long retry_s;      /* the most time spent waiting to retry */
};

/*
 * Sends the messages (strings) in order, the first with notification
 * unless silent, and stops at the first that cannot be sent.  *sent is
 * how many were.  Returns 0, or after logging why, quoting Telegram:
 * DT_EXIT_UNAVAILABLE (an outage), DT_EXIT_TEMPFAIL (flood control
 * outlasted retry_s) or DT_EXIT_CONFIG (Telegram refused the request).
 */
int dt_rpt_tg_send(struct dt_http *h, const struct dt_rpt_tg *tg,
    json_t *msgs, int silent, int *sent);

/*
 * --preflight: unless the settings are bad, asks Telegram getMe (is the
 * token a bot's?) and getChat (can the bot see the chat?), one try each,
 * and prints one line: what was found, or what to fix, naming the
 * variable and quoting Telegram.  Returns 0, DT_EXIT_CONFIG (bad
 * settings, the token or chat refused) or DT_EXIT_UNAVAILABLE.
 */
int dt_rpt_tg_preflight(const struct dt_rpt_tg *tg, int bad);

#endif
