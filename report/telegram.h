/*
 * telegram.h: sendMessage with Telegram's flood-control handling, and
 * the preflight.
 */
#ifndef DT_RPT_TELEGRAM_H
#define DT_RPT_TELEGRAM_H

#include <stddef.h>

#include <jansson.h>

struct dt_http;

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
 * The preflight: getMe (is the token a bot's?) and getChat for the chat
 * id (can the bot see the chat?), one try each, sending no message.
 * Writes one sentence into line: what was found, or what to fix, naming
 * the variable and quoting Telegram's description.  Returns 0 when both
 * answered ok, DT_EXIT_CONFIG when Telegram refused the token or the
 * chat, DT_EXIT_UNAVAILABLE when it could not be reached.
 */
int dt_rpt_tg_preflight(struct dt_http *h, const struct dt_rpt_tg *tg,
    char *line, size_t len);

#endif
