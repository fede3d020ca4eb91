/*
 * telegram.c: sending the report with the Bot API's sendMessage.
 *
 * Telegram says how long to wait after flood control in the body
 * (parameters.retry_after), not always in a Retry-After header, so the
 * retry loop is here rather than in dt_http_send(); it reads the body
 * and obeys the one retry policy, dt_retry_check().  The bot token is
 * part of the URL path; the URL is only ever logged through
 * dt_http_safe_url() and the token is a registered secret besides.
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

int
dt_rpt_tg_chat_ok(const char *chat)
{
	size_t i, n = strlen(chat);

	if (n >= 2 && chat[0] == '@') {
		if (n < 5 || n > 33 || !((chat[1] >= 'a' && chat[1] <= 'z') ||
		    (chat[1] >= 'A' && chat[1] <= 'Z')))
			return -1;
		for (i = 2; i < n; i++)
			if (!((chat[i] >= 'a' && chat[i] <= 'z') ||
			    (chat[i] >= 'A' && chat[i] <= 'Z') ||
			    (chat[i] >= '0' && chat[i] <= '9') ||
			    chat[i] == '_'))
				return -1;
		return 0;
	}
	i = chat[0] == '-' ? 1 : 0;
	if (n == i || n - i > 19)
		return -1;
	for (; i < n; i++)
		if (chat[i] < '0' || chat[i] > '9')
			return -1;
	return 0;
}

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

/*
 * Obeys the retry policy after an answer that did not send the message:
 * returns 0 with *wait set to send again, else the exit status after
 * one error line.
 */
static int
retry_or_fail(const struct dt_rpt_tg *tg, const struct dt_http_policy *pol,
    struct dt_http_resp *resp, long retry_after, int try, long long spent,
    const char *what, const char *why, long *wait)
{
	struct dt_retry r;
	int answer;

	/*
	 * Telegram's flood control says how long to wait in the body; an
	 * HTTP 200 that is not ok:true is an outage.
	 */
	if (resp->status == 429 && retry_after >= 0)
		resp->retry_after_ms = retry_after * 1000;
	answer = dt_retry_answer(resp);
	if (answer == DT_ANSWER_OK && resp->status == 200)
		answer = DT_ANSWER_OUTAGE;
	dt_retry_check(pol, resp, answer, try, spent, &r);
	if (answer != DT_ANSWER_OUTAGE) {
		dt_error("telegram: sendMessage%s: %s", what, why);
		return resp->result == DT_HTTP_OK && resp->status >= 400 &&
		    resp->status < 500 ? DT_EXIT_CONFIG : DT_EXIT_UNAVAILABLE;
	}
	if (r.gave_up == DT_RETRY_TRIES)
		dt_error("telegram: sendMessage%s: %s; giving up after %d "
		    "tries", what, why, try);
	else if (r.gave_up == DT_RETRY_TIME)
		dt_error("telegram: sendMessage%s: %s; giving up: waiting "
		    "%.1f s more would pass the %.0f s retry limit "
		    "(DT_REPORT_RETRY_SECONDS)", what, why, r.wait_ms / 1000.0,
		    tg->budget_ms / 1000.0);
	else {
		dt_warn("telegram: sendMessage%s: %s; retrying in %.1f s (%d "
		    "of %d tries left)", what, why, r.wait_ms / 1000.0,
		    MAX_TRIES - try, MAX_TRIES);
		*wait = r.wait_ms;
		return 0;
	}
	return resp->status == 429 ? DT_EXIT_TEMPFAIL : DT_EXIT_UNAVAILABLE;
}

/*
 * Sends one message, retrying outages and flood control within the
 * budget.  Returns TG_SENT, TG_MIGRATED (new id in *migrate) or an exit
 * status after logging.
 */
static int
send_one(struct dt_http *h, const struct dt_rpt_tg *tg, const char *url,
    const char *body, int part, int nparts, long long *migrate)
{
	static const char *const headers[] = {
	    "Content-Type: application/json", "Accept: application/json",
	    NULL};
	struct dt_http_policy pol = {
		.max_tries = MAX_TRIES, .base_ms = 1000, .cap_ms = 30000,
		.max_total_ms = tg->budget_ms, .max_response = 1 << 20,
	};
	struct dt_http_req req = {
		.method = "POST", .url = url, .headers = headers,
		.body = body, .body_len = strlen(body),
		.timeout_ms = tg->timeout_ms,
	};
	struct dt_http_resp resp = {0};
	long long start = dt_now_ms();
	char desc[400], why[512], what[48];
	long retry_after, wait;
	int try, kind = 0, status = DT_EXIT_UNAVAILABLE;

	if (nparts > 1)
		snprintf(what, sizeof(what), " (message %d of %d)", part,
		    nparts);
	else
		what[0] = '\0';
	for (try = 1;; try++) {
		int ok = 0;

		dt_http_once(h, &req, &pol, &resp);
		desc[0] = '\0';
		retry_after = -1;
		*migrate = 0;
		if (resp.result == DT_HTTP_OK)
			ok = read_answer(&resp, desc, sizeof(desc),
			    &retry_after, migrate);
		if (ok && resp.status == 200) {
			kind = TG_SENT;
			break;
		}
		if (resp.result != DT_HTTP_OK)
			snprintf(why, sizeof(why), "%s", resp.error);
		else
			snprintf(why, sizeof(why), "HTTP %ld: %s", resp.status,
			    desc[0] ? desc : "(no description)");
		if (resp.result == DT_HTTP_OK && resp.status == 400 &&
		    *migrate != 0) {
			kind = TG_MIGRATED;
			break;
		}
		if ((status = retry_or_fail(tg, &pol, &resp, retry_after, try,
		    dt_now_ms() - start, what, why, &wait)) != 0)
			break;
		dt_sleep_ms(wait);
	}
	dt_http_resp_clear(&resp);
	return kind != 0 ? kind : status;
}

/* The request body for one message. */
static char *
message_body(const struct dt_rpt_tg *tg, const char *chat, const char *text,
    int silent)
{
	json_t *o = json_object(), *lp = json_object();
	char *s;

	json_object_set_new(o, "chat_id", chat_json(chat));
	if (tg->thread_id != NULL)
		json_object_set_new(o, "message_thread_id",
		    json_integer(strtoll(tg->thread_id, NULL, 10)));
	json_object_set_new(o, "text", json_string(text));
	json_object_set_new(o, "parse_mode", json_string("HTML"));
	json_object_set_new(o, "disable_notification", json_boolean(silent));
	json_object_set_new(lp, "is_disabled", json_true());
	json_object_set_new(o, "link_preview_options", lp);
	s = json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER);
	json_decref(o);
	return s;
}

int
dt_rpt_tg_send(struct dt_http *h, const struct dt_rpt_tg *tg, char **msgs,
    int silent, int *sent)
{
	char url[2048], chat[32];
	int i, n, rc, migrated = 0;

	*sent = 0;
	for (n = 0; msgs[n] != NULL; n++)
		;
	if ((size_t)snprintf(url, sizeof(url), "%s/bot%s/sendMessage",
	    tg->api_url, tg->token) >= sizeof(url)) {
		dt_error("TELEGRAM_API_URL: too long");
		return DT_EXIT_CONFIG;
	}
	snprintf(chat, sizeof(chat), "%s", tg->chat_id);
	for (i = 0; i < n; i++) {
		long long migrate = 0;
		char *body = message_body(tg, chat, msgs[i], silent || i > 0);

		if (body == NULL) {
			dt_error("out of memory");
			return DT_EXIT_UNAVAILABLE;
		}
		rc = send_one(h, tg, url, body, i + 1, n, &migrate);
		free(body);
		if (rc == TG_MIGRATED && !migrated) {
			snprintf(chat, sizeof(chat), "%lld", migrate);
			dt_warn("telegram: chat %s was upgraded to a "
			    "supergroup; sending to %s instead: set "
			    "TELEGRAM_CHAT_ID=%s",
			    tg->chat_id, chat, chat);
			migrated = 1;
			i--;
			continue;
		}
		if (rc == TG_MIGRATED) {
			dt_error("telegram: sendMessage: chat %s moved again",
			    chat);
			return DT_EXIT_CONFIG;
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
 * 1 with a new reference to "result" in *result when Telegram said ok,
 * else 0 with what went wrong in why and *status set to 0 (no answer)
 * or the HTTP status.
 */
static int
tg_call(struct dt_http *h, const struct dt_rpt_tg *tg, const char *method,
    const char *body, json_t **result, long *status, char *why, size_t len)
{
	static const char *const headers[] = {
	    "Content-Type: application/json", "Accept: application/json",
	    NULL};
	struct dt_http_policy pol = {
		.max_tries = 1, .base_ms = 1000, .cap_ms = 1000,
		.max_total_ms = 0, .max_response = 1 << 20,
	};
	struct dt_http_req req = {
		.method = body != NULL ? "POST" : "GET", .headers = headers,
		.body = body, .body_len = body != NULL ? strlen(body) : 0,
		.timeout_ms = tg->timeout_ms,
	};
	struct dt_http_resp resp = {0};
	char url[2048], desc[400];
	long retry_after;
	long long migrate;
	json_t *o;
	int ok = 0;

	*result = NULL;
	*status = 0;
	if ((size_t)snprintf(url, sizeof(url), "%s/bot%s/%s", tg->api_url,
	    tg->token, method) >= sizeof(url)) {
		snprintf(why, len, "TELEGRAM_API_URL is too long");
		return 0;
	}
	req.url = url;
	dt_http_once(h, &req, &pol, &resp);
	if (resp.result != DT_HTTP_OK) {
		snprintf(why, len, "%s", resp.error);
		goto out;
	}
	*status = resp.status;
	if (resp.status == 200 && read_answer(&resp, desc, sizeof(desc),
	    &retry_after, &migrate) && (o = json_loads(resp.body, 0,
	    NULL)) != NULL) {
		*result = json_incref(json_object_get(o, "result"));
		json_decref(o);
		ok = *result != NULL;
	}
	if (!ok) {
		read_answer(&resp, desc, sizeof(desc), &retry_after, &migrate);
		if (migrate != 0)
			snprintf(why, len, "HTTP %ld: %s (the new id is %lld)",
			    resp.status, desc[0] ? desc : "(no description)",
			    migrate);
		else
			snprintf(why, len, "HTTP %ld: %s", resp.status,
			    desc[0] ? desc : "(no description)");
	}
out:
	dt_http_resp_clear(&resp);
	return ok;
}

int
dt_rpt_tg_preflight(struct dt_http *h, const struct dt_rpt_tg *tg,
    char *line, size_t len)
{
	json_t *me = NULL, *chat = NULL, *o;
	char why[600], *body, name[160];
	const char *user, *title;
	long status;
	int rc;

	if (!tg_call(h, tg, "getMe", NULL, &me, &status, why, sizeof(why))) {
		if (status == 401 || status == 404)
			snprintf(line, len, "TELEGRAM_BOT_TOKEN: Telegram does "
			    "not know this bot token (getMe: %s)", why);
		else
			snprintf(line, len, "TELEGRAM_API_URL: Telegram cannot "
			    "be reached (getMe: %s)", why);
		return status >= 400 && status < 500 && status != 429 ?
		    DT_EXIT_CONFIG : DT_EXIT_UNAVAILABLE;
	}
	user = json_string_value(json_object_get(me, "username"));
	snprintf(name, sizeof(name), "@%s", user != NULL ? user : "?");
	o = json_object();
	json_object_set_new(o, "chat_id", chat_json(tg->chat_id));
	body = json_dumps(o, JSON_COMPACT);
	json_decref(o);
	if (body == NULL) {
		json_decref(me);
		snprintf(line, len, "out of memory");
		return DT_EXIT_UNAVAILABLE;
	}
	if (!tg_call(h, tg, "getChat", body, &chat, &status, why,
	    sizeof(why))) {
		if (status >= 400 && status < 500 && status != 429) {
			snprintf(line, len, "TELEGRAM_CHAT_ID: bot %s cannot see "
			    "chat %s (getChat: %s); add the bot to the chat, or "
			    "fix the id", name, tg->chat_id, why);
			rc = DT_EXIT_CONFIG;
		} else {
			snprintf(line, len, "TELEGRAM_API_URL: Telegram cannot "
			    "be reached (getChat: %s)", why);
			rc = DT_EXIT_UNAVAILABLE;
		}
		goto out;
	}
	title = json_string_value(json_object_get(chat, "title"));
	if (title == NULL)
		title = json_string_value(json_object_get(chat, "first_name"));
	snprintf(line, len, "bot %s, chat %s (%s%s%s%s)", name, tg->chat_id,
	    json_string_value(json_object_get(chat, "type")) != NULL ?
	    json_string_value(json_object_get(chat, "type")) : "chat",
	    title != NULL ? " \"" : "", title != NULL ? title : "",
	    title != NULL ? "\"" : "");
	rc = DT_EXIT_OK;
out:
	free(body);
	json_decref(me);
	json_decref(chat);
	return rc;
}
