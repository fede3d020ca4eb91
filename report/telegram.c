/*
 * telegram.c: the Bot API's sendMessage, getMe and getChat (report.h).
 * The token in the URL is a registered secret, never logged.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "exit.h"
#include "http.h"
#include "log.h"
#include "report.h"

/* One call to the Bot API, and what came of it. */
struct call {
	const char *method;
	json_t *body;           /* borrowed; NULL: a GET */
	int tries;
	const char *what;       /* in the log after the method */
	int code;               /* the exit status when it failed */
	long long migrate;      /* parameters.migrate_to_chat_id, or 0 */
	char why[640];          /* what went wrong, quoting Telegram */
};

/* A chat id as Telegram takes it: a number (checked), or "@username". */
static json_t *
chat_json(const char *chat)
{
	return chat[0] == '@' ? json_string(chat) :
	    json_integer(strtoll(chat, NULL, 10));
}

/*
 * Reads the answer into c->why, c->migrate and a 429's retry_after_ms.
 * Returns it (new) when it says ok with HTTP 200, else NULL.
 */
static json_t *
read_answer(struct dt_http_resp *resp, struct call *c)
{
	json_t *o, *p, *ra;
	const char *desc;
	char clip[400];

	c->migrate = 0;
	if (resp->result != DT_HTTP_OK) {
		snprintf(c->why, sizeof(c->why), "%s", resp->error);
		return NULL;
	}
	o = json_loads(resp->body != NULL ? resp->body : "", 0, NULL);
	p = json_object_get(o, "parameters");
	desc = json_string_value(json_object_get(o, "description"));
	snprintf(c->why, sizeof(c->why), "HTTP %ld: %s", resp->status,
	    desc != NULL ? dt_rpt_clip(desc, 300, clip, sizeof(clip)) :
	    "(no description)");
	ra = json_object_get(p, "retry_after");
	if (resp->status == 429 && json_is_integer(ra) &&
	    json_integer_value(ra) >= 0)
		resp->retry_after_ms = json_integer_value(ra) < 86400 ?
		    (long)json_integer_value(ra) * 1000 : 86400000;
	c->migrate = json_integer_value(json_object_get(p,
	    "migrate_to_chat_id"));
	if (resp->status == 200 && json_is_true(json_object_get(o, "ok")))
		return o;
	json_decref(o);
	return NULL;
}

/* Calls c->method, retrying as dt_retry_check() says; NULL: c->why. */
static json_t *
tg_call(struct dt_http *h, const struct dt_rpt_tg *tg, struct call *c)
{
	static const char *const headers[] = {
	    "Content-Type: application/json", "Accept: application/json",
	    NULL};
	struct dt_http_policy pol = {.max_tries = c->tries, .base_ms = 1000,
	    .cap_ms = 30000, .max_total_ms = tg->retry_s * 1000,
	    .max_response = 1 << 20};
	char *body = c->body != NULL ? json_dumps(c->body, JSON_COMPACT) :
	    NULL;
	struct dt_buf url = {0};
	struct dt_http_req req = {.method = body != NULL ? "POST" : "GET",
	    .headers = headers, .body = body, .body_len = body != NULL ?
	    strlen(body) : 0, .timeout_ms = tg->timeout_s * 1000};
	struct dt_http_resp resp = {0};
	long long start = dt_now_ms();
	json_t *answer = NULL;
	struct dt_retry r = {0};
	int try, kind;
	size_t n;

	dt_buf_printf(&url, "%s/bot%s/%s", tg->api_url, tg->token, c->method);
	req.url = url.p;
	for (try = 1;; try++) {
		dt_http_resp_clear(&resp);
		dt_http_once(h, &req, &pol, &resp);
		if ((answer = read_answer(&resp, c)) != NULL)
			break;
		/* A 2xx that is not ok:true is an outage. */
		if ((kind = dt_retry_answer(&resp)) == DT_ANSWER_OK)
			kind = DT_ANSWER_OUTAGE;
		dt_retry_check(&pol, &resp, kind, try, dt_now_ms() - start,
		    &r);
		if (!r.retry)
			break;
		dt_warn("telegram: %s%s: %s; retrying in %.1f s (%d of %d "
		    "tries left)", c->method, c->what, c->why, r.wait_ms /
		    1000.0, c->tries - try, c->tries);
		dt_sleep_ms(r.wait_ms);
	}
	n = strlen(c->why);
	c->code = answer != NULL ? DT_EXIT_OK : resp.status == 429 ?
	    DT_EXIT_TEMPFAIL : resp.status >= 400 && resp.status < 500 &&
	    resp.status != 408 ? DT_EXIT_CONFIG : DT_EXIT_UNAVAILABLE;
	if (answer == NULL && c->migrate != 0)
		snprintf(c->why + n, sizeof(c->why) - n, " (the new id is "
		    "%lld)", c->migrate);
	else if (answer == NULL && r.gave_up == DT_RETRY_TIME)
		snprintf(c->why + n, sizeof(c->why) - n, "; giving up: waiting "
		    "%.1f s more would pass the %lld s retry limit "
		    "(DT_REPORT_RETRY_SECONDS)", r.wait_ms / 1000.0,
		    tg->retry_s);
	else if (answer == NULL && r.gave_up == DT_RETRY_TRIES && try > 1)
		snprintf(c->why + n, sizeof(c->why) - n, "; giving up after "
		    "%d tries", try);
	dt_http_resp_clear(&resp);
	dt_buf_free(&url);
	free(body);
	return answer;
}

int
dt_rpt_tg_send(struct dt_http *h, const struct dt_rpt_tg *tg, json_t *msgs,
    int silent, int *sent)
{
	char chat[40], what[48] = "";
	struct call c = {.method = "sendMessage", .tries = 8, .what = what};
	size_t n = json_array_size(msgs);
	json_t *answer;
	int migrated = 0;

	snprintf(chat, sizeof(chat), "%s", tg->chat_id);
	for (*sent = 0; (size_t)*sent < n;) {
		if (n > 1)
			snprintf(what, sizeof(what), " (message %d of %zu)",
			    *sent + 1, n);
		c.body = json_pack("{soso*sOsssbs{sb}}", "chat_id",
		    chat_json(chat), "message_thread_id", tg->thread_id > 0 ?
		    json_integer(tg->thread_id) : NULL,
		    "text", json_array_get(msgs, (size_t)*sent), "parse_mode",
		    "HTML", "disable_notification", silent || *sent > 0,
		    "link_preview_options", "is_disabled", 1);
		if (c.body == NULL) {
			dt_error("out of memory");
			return DT_EXIT_UNAVAILABLE;
		}
		answer = tg_call(h, tg, &c);
		json_decref(c.body);
		if (answer != NULL) {
			json_decref(answer);
			(*sent)++;
		} else if (c.migrate != 0 && !migrated) {
			snprintf(chat, sizeof(chat), "%lld", c.migrate);
			dt_warn("telegram: chat %s was upgraded to a "
			    "supergroup; sending to %s instead: set "
			    "TELEGRAM_CHAT_ID=%s", tg->chat_id, chat, chat);
			migrated = 1;
		} else {
			dt_error("telegram: sendMessage%s: %s", what, c.why);
			if ((size_t)*sent + 1 < n)
				dt_error("telegram: %d of %zu messages sent; "
				    "the rest are not", *sent, n);
			return c.code;
		}
	}
	return DT_EXIT_OK;
}

int
dt_rpt_tg_preflight(const struct dt_rpt_tg *tg, int bad)
{
	struct call c = {.method = "getMe", .tries = 1, .what = ""};
	struct dt_http *h = NULL;
	json_t *me = NULL, *chat = NULL;
	const char *bot = "?", *title = NULL, *type = "chat";
	int rc;

	if (bad)
		return dt_preflight_line("telegram", DT_EXIT_CONFIG, "the "
		    "configuration is not valid (the lines above say why)");
	if (tg->token == NULL)
		return dt_preflight_line("telegram", DT_EXIT_OK, "not "
		    "configured (TELEGRAM_BOT_TOKEN, TELEGRAM_CHAT_ID): the "
		    "report goes to the log only");
	if ((h = dt_http_new("telegram")) != NULL &&
	    (me = tg_call(h, tg, &c)) != NULL) {
		c.method = "getChat";
		c.body = json_pack("{so}", "chat_id", chat_json(tg->chat_id));
		chat = tg_call(h, tg, &c);
		json_decref(c.body);
	}
	json_unpack(me, "{s:{s?s}}", "result", "username", &bot);
	json_unpack(chat, "{s:{s?s,s?s,s?s}}", "result", "first_name", &title,
	    "title", &title, "type", &type);
	if (h == NULL)
		rc = dt_preflight_line("telegram", DT_EXIT_UNAVAILABLE,
		    "cannot set up HTTP");
	else if (chat != NULL)
		rc = dt_preflight_line("telegram", DT_EXIT_OK, "bot @%s, chat "
		    "%s (%s%s%s%s)", bot, tg->chat_id, type, title ? " \"" :
		    "", title ? title : "", title ? "\"" : "");
	else if (c.code != DT_EXIT_CONFIG)
		rc = dt_preflight_line("telegram", DT_EXIT_UNAVAILABLE,
		    "TELEGRAM_API_URL: Telegram cannot be reached (%s: %s)",
		    c.method, c.why);
	else if (me == NULL)
		rc = dt_preflight_line("telegram", c.code, "TELEGRAM_BOT_TOKEN:"
		    " Telegram does not know this bot token (getMe: %s)",
		    c.why);
	else
		rc = dt_preflight_line("telegram", c.code, "TELEGRAM_CHAT_ID: "
		    "bot @%s cannot see chat %s (getChat: %s); add the bot to "
		    "the chat, or fix the id", bot, tg->chat_id, c.why);
	json_decref(me);
	json_decref(chat);
	dt_http_free(h);
	return rc;
}
