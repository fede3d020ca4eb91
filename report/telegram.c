/*
 * telegram.c: the Bot API's sendMessage, getMe and getChat (telegram.h).
 * Flood control's wait is in the body (parameters.retry_after), so the
 * retry loop is here, obeying dt_retry_check().  The bot token is in the
 * URL path: it is a registered secret and never logged.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "clock.h"
#include "exit.h"
#include "retry.h"
#include "log.h"
#include "telegram.h"
#include "text.h"

#define MAX_TRIES 8

/* What sending one message came to, besides an exit status. */
enum {
	TG_SENT = -1,
	TG_MIGRATED = -2        /* the group became a supergroup, new id */
};

/* A chat id as Telegram takes it: a number, or the @username string. */
static json_t *
chat_json(const char *chat)
{
	long long v;
	char *end;

	if (chat[0] == '@')
		return json_string(chat);
	errno = 0;
	v = strtoll(chat, &end, 10);
	if (errno != 0 || *end != '\0')
		return json_string(chat);
	return json_integer(v);
}

/*
 * Reads Telegram's answer: description (copied into desc), retry_after
 * and migrate_to_chat_id (-1 / 0 when absent).  Returns 1 when the body
 * says ok:true.
 */
static int
read_answer(const struct dt_http_resp *r, char *desc, size_t len,
    long *retry_after, long long *migrate)
{
	json_t *o, *p;
	int ok;

	*retry_after = -1;
	*migrate = 0;
	desc[0] = '\0';
	if (r->body == NULL || (o = json_loads(r->body, 0, NULL)) == NULL)
		return 0;
	ok = json_is_true(json_object_get(o, "ok"));
	if (json_is_string(json_object_get(o, "description")))
		dt_rpt_clip(json_string_value(json_object_get(o,
		    "description")), 300, desc, len);
	p = json_object_get(o, "parameters");
	if (json_is_integer(json_object_get(p, "retry_after")))
		*retry_after = (long)json_integer_value(json_object_get(p,
		    "retry_after"));
	if (json_is_integer(json_object_get(p, "migrate_to_chat_id")))
		*migrate = json_integer_value(json_object_get(p,
		    "migrate_to_chat_id"));
	json_decref(o);
	return ok;
}

/* One call to the Bot API and Telegram's answer. */
struct call {
	struct dt_http_resp resp;
	char desc[400];         /* Telegram's description */
	char why[512];          /* what went wrong, for the log */
	long retry_after;       /* parameters.retry_after, or -1 */
	long long migrate;      /* parameters.migrate_to_chat_id, or 0 */
};

/*
 * Calls url once with the JSON body (NULL: a GET) under the policy pol.
 * Returns 1 when Telegram answered ok:true with HTTP 200, else 0 with
 * c->why set.  Clear c->resp after the last call.
 */
static int
call_once(struct dt_http *h, const struct dt_rpt_tg *tg, const char *url,
    const char *body, const struct dt_http_policy *pol, struct call *c)
{
	static const char *const headers[] = {
	    "Content-Type: application/json", "Accept: application/json",
	    NULL};
	struct dt_http_req req = {
		.method = body != NULL ? "POST" : "GET", .url = url,
		.headers = headers, .body = body,
		.body_len = body != NULL ? strlen(body) : 0,
		.timeout_ms = tg->timeout_ms,
	};
	int ok = 0;

	dt_http_resp_clear(&c->resp);
	dt_http_once(h, &req, pol, &c->resp);
	c->desc[0] = '\0';
	c->retry_after = -1;
	c->migrate = 0;
	if (c->resp.result != DT_HTTP_OK) {
		snprintf(c->why, sizeof(c->why), "%s", c->resp.error);
		return 0;
	}
	ok = read_answer(&c->resp, c->desc, sizeof(c->desc), &c->retry_after,
	    &c->migrate) && c->resp.status == 200;
	snprintf(c->why, sizeof(c->why), "HTTP %ld: %s", c->resp.status,
	    c->desc[0] ? c->desc : "(no description)");
	return ok;
}

/*
 * Obeys the retry policy after an answer that did not send the message:
 * returns 0 with *wait set to send again, else the exit status after
 * one error line.
 */
static int
retry_or_fail(const struct dt_rpt_tg *tg, const struct dt_http_policy *pol,
    struct call *c, int try, long long spent, const char *what, long *wait)
{
	struct dt_retry r;
	int answer;

	/*
	 * Telegram's flood control says how long to wait in the body; an
	 * HTTP 200 that is not ok:true is an outage.
	 */
	if (c->resp.status == 429 && c->retry_after >= 0)
		c->resp.retry_after_ms = c->retry_after * 1000;
	answer = dt_retry_answer(&c->resp);
	if (answer == DT_ANSWER_OK && c->resp.status == 200)
		answer = DT_ANSWER_OUTAGE;
	dt_retry_check(pol, &c->resp, answer, try, spent, &r);
	if (answer != DT_ANSWER_OUTAGE) {
		dt_error("telegram: sendMessage%s: %s", what, c->why);
		return c->resp.result == DT_HTTP_OK && c->resp.status >= 400 &&
		    c->resp.status < 500 ? DT_EXIT_CONFIG : DT_EXIT_UNAVAILABLE;
	}
	if (r.gave_up == DT_RETRY_TRIES)
		dt_error("telegram: sendMessage%s: %s; giving up after %d "
		    "tries", what, c->why, try);
	else if (r.gave_up == DT_RETRY_TIME)
		dt_error("telegram: sendMessage%s: %s; giving up: waiting "
		    "%.1f s more would pass the %.0f s retry limit "
		    "(DT_REPORT_RETRY_SECONDS)", what, c->why,
		    r.wait_ms / 1000.0, tg->budget_ms / 1000.0);
	else {
		dt_warn("telegram: sendMessage%s: %s; retrying in %.1f s (%d "
		    "of %d tries left)", what, c->why, r.wait_ms / 1000.0,
		    MAX_TRIES - try, MAX_TRIES);
		*wait = r.wait_ms;
		return 0;
	}
	return c->resp.status == 429 ? DT_EXIT_TEMPFAIL : DT_EXIT_UNAVAILABLE;
}

/*
 * Sends one message, retrying outages and flood control within the
 * budget.  Returns TG_SENT, TG_MIGRATED (new id in *migrate) or an exit
 * status after logging.
 */
static int
send_one(struct dt_http *h, const struct dt_rpt_tg *tg, const char *url,
    const char *body, const char *what, long long *migrate)
{
	struct dt_http_policy pol = {
		.max_tries = MAX_TRIES, .base_ms = 1000, .cap_ms = 30000,
		.max_total_ms = tg->budget_ms, .max_response = 1 << 20,
	};
	struct call c = {0};
	long long start = dt_now_ms();
	long wait;
	int try, rc;

	for (try = 1;; try++) {
		if (call_once(h, tg, url, body, &pol, &c))
			rc = TG_SENT;
		else if (c.resp.result == DT_HTTP_OK && c.resp.status == 400 &&
		    c.migrate != 0)
			rc = TG_MIGRATED;
		else if ((rc = retry_or_fail(tg, &pol, &c, try, dt_now_ms() -
		    start, what, &wait)) == 0) {
			dt_sleep_ms(wait);
			continue;
		}
		break;
	}
	*migrate = c.migrate;
	dt_http_resp_clear(&c.resp);
	return rc;
}

/* The request body for one message. */
static char *
message_body(const struct dt_rpt_tg *tg, const char *chat, const char *text,
    int silent)
{
	json_t *o = json_pack("{so}", "chat_id", chat_json(chat));
	char *s;

	if (tg->thread_id != NULL)
		json_object_set_new(o, "message_thread_id",
		    json_integer(strtoll(tg->thread_id, NULL, 10)));
	json_object_update_new(o, json_pack("{sssssbs{sb}}", "text", text,
	    "parse_mode", "HTML", "disable_notification", silent,
	    "link_preview_options", "is_disabled", 1));
	s = json_dumps(o, JSON_COMPACT);
	json_decref(o);
	return s;
}

int
dt_rpt_tg_send(struct dt_http *h, const struct dt_rpt_tg *tg, json_t *msgs,
    int silent, int *sent)
{
	char url[2048], chat[32], what[48] = "";
	long long migrate;
	int i, n = (int)json_array_size(msgs), rc, migrated = 0;

	*sent = 0;
	if ((size_t)snprintf(url, sizeof(url), "%s/bot%s/sendMessage",
	    tg->api_url, tg->token) >= sizeof(url)) {
		dt_error("TELEGRAM_API_URL: too long");
		return DT_EXIT_CONFIG;
	}
	snprintf(chat, sizeof(chat), "%s", tg->chat_id);
	for (i = 0; i < n; i++) {
		char *body = message_body(tg, chat, json_string_value(
		    json_array_get(msgs, i)), silent || i > 0);

		if (body == NULL) {
			dt_error("out of memory");
			return DT_EXIT_UNAVAILABLE;
		}
		if (n > 1)
			snprintf(what, sizeof(what), " (message %d of %d)",
			    i + 1, n);
		rc = send_one(h, tg, url, body, what, &migrate);
		free(body);
		if (rc == TG_MIGRATED && migrated) {
			dt_error("telegram: sendMessage: chat %s moved again",
			    chat);
			return DT_EXIT_CONFIG;
		}
		if (rc == TG_MIGRATED) {
			snprintf(chat, sizeof(chat), "%lld", migrate);
			dt_warn("telegram: chat %s was upgraded to a "
			    "supergroup; sending to %s instead: set "
			    "TELEGRAM_CHAT_ID=%s", tg->chat_id, chat, chat);
			migrated = 1;
			i--;
			continue;
		}
		if (rc != TG_SENT) {
			if (i + 1 < n)
				dt_error("telegram: %d of %d messages sent; "
				    "the rest are not", i, n);
			return rc;
		}
		(*sent)++;
	}
	return DT_EXIT_OK;
}

/*
 * Calls one Bot API method with a JSON body (NULL: none) once.  Returns
 * a new reference to its "result" when Telegram said ok, else NULL with
 * c->why set and c->resp.status 0 (no answer) or the HTTP status.
 */
static json_t *
call_method(struct dt_http *h, const struct dt_rpt_tg *tg,
    const char *method, const char *body, struct call *c)
{
	struct dt_http_policy pol = {.max_tries = 1, .base_ms = 1000,
	    .cap_ms = 1000, .max_response = 1 << 20};
	char url[2048];
	json_t *o, *result = NULL;
	size_t n;

	if ((size_t)snprintf(url, sizeof(url), "%s/bot%s/%s", tg->api_url,
	    tg->token, method) >= sizeof(url)) {
		snprintf(c->why, sizeof(c->why), "TELEGRAM_API_URL is too "
		    "long");
		return NULL;
	}
	if (call_once(h, tg, url, body, &pol, c) && (o = json_loads(
	    c->resp.body, 0, NULL)) != NULL) {
		result = json_incref(json_object_get(o, "result"));
		json_decref(o);
	}
	if (result == NULL && c->migrate != 0 && (n = strlen(c->why)) <
	    sizeof(c->why))
		snprintf(c->why + n, sizeof(c->why) - n, " (the new id is "
		    "%lld)", c->migrate);
	return result;
}

int
dt_rpt_tg_preflight(struct dt_http *h, const struct dt_rpt_tg *tg,
    char *line, size_t len)
{
	struct call c = {0};
	json_t *me, *chat = NULL, *o = json_pack("{so}", "chat_id",
	    chat_json(tg->chat_id));
	char *body = json_dumps(o, JSON_COMPACT), name[160];
	const char *title, *type;
	int refused, rc = DT_EXIT_UNAVAILABLE;

	json_decref(o);
	if ((me = call_method(h, tg, "getMe", NULL, &c)) == NULL) {
		if (c.resp.status == 401 || c.resp.status == 404)
			snprintf(line, len, "TELEGRAM_BOT_TOKEN: Telegram does "
			    "not know this bot token (getMe: %s)", c.why);
		else
			snprintf(line, len, "TELEGRAM_API_URL: Telegram cannot "
			    "be reached (getMe: %s)", c.why);
		if (c.resp.status >= 400 && c.resp.status < 500 &&
		    c.resp.status != 429)
			rc = DT_EXIT_CONFIG;
		goto out;
	}
	title = json_string_value(json_object_get(me, "username"));
	snprintf(name, sizeof(name), "@%s", title != NULL ? title : "?");
	if (body == NULL) {
		snprintf(line, len, "out of memory");
		goto out;
	}
	if ((chat = call_method(h, tg, "getChat", body, &c)) == NULL) {
		refused = c.resp.status >= 400 && c.resp.status < 500 &&
		    c.resp.status != 429;
		if (refused)
			snprintf(line, len, "TELEGRAM_CHAT_ID: bot %s cannot "
			    "see chat %s (getChat: %s); add the bot to the "
			    "chat, or fix the id", name, tg->chat_id, c.why);
		else
			snprintf(line, len, "TELEGRAM_API_URL: Telegram cannot "
			    "be reached (getChat: %s)", c.why);
		rc = refused ? DT_EXIT_CONFIG : DT_EXIT_UNAVAILABLE;
		goto out;
	}
	if ((title = json_string_value(json_object_get(chat, "title"))) ==
	    NULL)
		title = json_string_value(json_object_get(chat, "first_name"));
	type = json_string_value(json_object_get(chat, "type"));
	snprintf(line, len, "bot %s, chat %s (%s%s%s%s)", name, tg->chat_id,
	    type != NULL ? type : "chat", title != NULL ? " \"" : "",
	    title != NULL ? title : "", title != NULL ? "\"" : "");
	rc = DT_EXIT_OK;
out:
	dt_http_resp_clear(&c.resp);
	free(body);
	json_decref(me);
	json_decref(chat);
	return rc;
}
