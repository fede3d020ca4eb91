/*
 * text.h: the Telegram report: made from the summary, with untrusted
 * text made fit to count and to show (format.c), and sent (telegram.c).
 */
#ifndef DT_RPT_TEXT_H
#define DT_RPT_TEXT_H

#include <stddef.h>

#include <jansson.h>

#include "buf.h"

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

/*
 * The length Telegram gives the text after parsing the HTML html (tags
 * not counted, an entity one character), in UTF-16 code units.
 */
size_t dt_rpt_html_utf16(const char *html, size_t n);

/*
 * Builds the report for the summary (docs/report.md) in lang ("en" or
 * "ru") and splits it at line boundaries into messages of at most limit
 * UTF-16 units after parsing, each a whole HTML text, those after the
 * first numbered.  Returns a new array of the messages' strings, or
 * NULL when out of memory.
 */
json_t *dt_rpt_messages(json_t *summary, const char *lang, size_t limit);

struct dt_http;

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
 * Sends the messages (an array of strings) in order; the first with
 * notification unless silent, the rest silently.  Stops at the first
 * message that cannot be sent.  Returns 0 when all were sent, else the
 * exit status to report (DT_EXIT_UNAVAILABLE for an outage,
 * DT_EXIT_TEMPFAIL when flood control outlasts retry_s, DT_EXIT_CONFIG
 * for a request Telegram refuses) after logging why, quoting Telegram's
 * description.  *sent is how many were sent.
 */
int dt_rpt_tg_send(struct dt_http *h, const struct dt_rpt_tg *tg,
    json_t *msgs, int silent, int *sent);

/*
 * --preflight: unless the settings are bad, asks Telegram getMe (is the
 * token a bot's?) and getChat for the chat id (can the bot see the
 * chat?), one try each, sending no message, and prints one line: what
 * was found, or what to fix, naming the variable and quoting Telegram.
 * Returns 0, DT_EXIT_CONFIG (bad settings, Telegram refused the token or
 * the chat) or DT_EXIT_UNAVAILABLE (Telegram could not be reached).
 */
int dt_rpt_tg_preflight(const struct dt_rpt_tg *tg, int bad);

#endif
