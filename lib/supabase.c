/*
 * supabase.c: calls to Supabase's data API (PostgREST).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "config.h"
#include "exit.h"
#include "http.h"
#include "log.h"
#include "supabase.h"
#include "utf8.h"

#define NOT_SECRET_KEY "this is not a secret (service) key: set SUPABASE_KEY " \
	"to a secret key (sb_secret_...) or the legacy service_role key"

struct dt_supabase {
	struct dt_http *http;
	struct dt_buf url;      /* base URL, no trailing slash */
	struct dt_buf apikey;   /* "apikey: <key>" */
	struct dt_buf auth;     /* "Authorization: Bearer <key>" */
	long long timeout, tries, backoff_ms;
};

/* Checks SUPABASE_URL; returns 0, or -1 after logging one line. */
static int
check_url(const char *url)
{
	const char *host = url == NULL ? NULL : strncmp(url, "http://", 7) ==
	    0 ? url + 7 : strncmp(url, "https://", 8) == 0 ? url + 8 : NULL;
	char safe[512];

	if (url == NULL)
		dt_error("SUPABASE_URL is not set (the project URL, e.g. "
		    "https://xyz.supabase.co)");
	else if (host == NULL)
		dt_error("SUPABASE_URL: not an http:// or https:// URL: %s",
		    dt_http_safe_url(url, safe, sizeof(safe)));
	else if (strpbrk(url, "?# ") != NULL)
		dt_error("SUPABASE_URL: must be the bare project URL, without a "
		    "query, fragment or spaces");
	else if (*host == '\0' || *host == '/')
		dt_error("SUPABASE_URL: no host name: %s",
		    dt_http_safe_url(url, safe, sizeof(safe)));
	else
		return 0;
	return -1;
}

/*
 * Reads every Supabase setting into sb, *url and *key (a new string or
 * NULL), logging one line per problem so that a person sees them all at
 * once.  Returns the number of problems.
 */
static int
read_config(struct dt_supabase *sb, const char **url, char **key)
{
	int bad = 0;

	*url = dt_env("SUPABASE_URL", NULL);
	bad += check_url(*url) < 0;
	bad += dt_env_shared("TIMEOUT_SECONDS", &sb->timeout) < 0;
	bad += dt_env_shared("DT_SUPABASE_TRIES", &sb->tries) < 0;
	bad += dt_env_shared("DT_SUPABASE_BACKOFF_MS", &sb->backoff_ms) < 0;
	if (dt_env_secret("SUPABASE_KEY", key) < 0)
		return bad + 1;
	if (*key == NULL)
		dt_error("SUPABASE_KEY is not set (a secret key, sb_secret_..., "
		    "or the legacy service_role key; or SUPABASE_KEY_FILE naming "
		    "a file that holds it)");
	else if (strncmp(*key, "sb_publishable_", 15) == 0)
		dt_error("SUPABASE_KEY: a publishable key (sb_publishable_...); "
		    NOT_SECRET_KEY);
	else
		return bad;
	return bad + 1;
}

int
dt_supabase_check(void)
{
	struct dt_supabase sb = {0};
	const char *url;
	char *key = NULL;
	int bad = read_config(&sb, &url, &key);

	free(key);
	return bad;
}

struct dt_supabase *
dt_supabase_new(void)
{
	struct dt_supabase *sb = calloc(1, sizeof(*sb));
	const char *url;
	char *key = NULL;
	size_t n;

	if (sb == NULL || read_config(sb, &url, &key) > 0) {
		if (sb == NULL)
			dt_error("out of memory");
		free(key);
		free(sb);
		return NULL;
	}
	dt_buf_printf(&sb->apikey, "apikey: %s", key);
	dt_buf_printf(&sb->auth, "Authorization: Bearer %s", key);
	free(key);
	/* A URL that already ends in /rest/v1 is taken as the API root. */
	for (n = strlen(url); n > 0 && url[n - 1] == '/'; n--)
		;
	if (n >= 8 && strncmp(url + n - 8, "/rest/v1", 8) == 0)
		n -= 8;
	dt_buf_add(&sb->url, url, n);
	if (sb->apikey.oom || sb->auth.oom || sb->url.oom)
		dt_error("out of memory");
	else if ((sb->http = dt_http_new("supabase")) != NULL)
		return sb;
	dt_supabase_free(sb);
	return NULL;
}

void
dt_supabase_free(struct dt_supabase *sb)
{
	if (sb != NULL) {
		dt_http_free(sb->http);
		dt_buf_free(&sb->url);
		dt_buf_free(&sb->apikey);
		dt_buf_free(&sb->auth);
	}
	free(sb);
}

int
dt_sb_exit(int kind)
{
	static const int status[] = {[DT_SB_OK] = DT_EXIT_OK,
	    [DT_SB_UNAVAILABLE] = DT_EXIT_UNAVAILABLE,
	    [DT_SB_TIMEOUT] = DT_EXIT_UNAVAILABLE,
	    [DT_SB_CONFIG] = DT_EXIT_CONFIG,
	    [DT_SB_REJECTED] = DT_EXIT_DATAERR,
	    [DT_SB_BADREPLY] = DT_EXIT_TEMPFAIL};

	return status[kind];
}

void
dt_sb_result_clear(struct dt_sb_result *res)
{
	if (res != NULL) {
		json_decref(res->body);
		memset(res, 0, sizeof(*res));
	}
}

/* Describes a non-2xx response from PostgREST's error body. */
static void
describe_error(struct dt_sb_result *res, const char *raw)
{
	static const char *fields[][3] = {{"code", ": ", ""},
	    {"message", ": ", ""}, {"details", " (", ")"},
	    {"hint", " (hint: ", ")"}};
	const char *code = json_string_value(json_object_get(res->body,
	    "code")), *v;
	struct dt_buf b = {0};
	char *clean;
	size_t i;

	dt_buf_printf(&b, "HTTP %ld", res->status);
	for (i = 0; json_is_object(res->body) && i < 4; i++)
		if ((v = json_string_value(json_object_get(res->body,
		    fields[i][0]))) != NULL && *v != '\0')
			dt_buf_printf(&b, "%s%s%s", fields[i][1], v,
			    fields[i][2]);
	if (!json_is_object(res->body) && raw != NULL && *raw != '\0')
		dt_buf_printf(&b, ": %.*s",
		    (int)utf8_cut(raw, strlen(raw), 200), raw);
	/* Only the anon role, which a publishable key gets, sees a 401. */
	if (res->status == 401 && code != NULL && strcmp(code, "42501") == 0)
		dt_buf_printf(&b, ": %s", NOT_SECRET_KEY);
	clean = b.p != NULL ? dt_redact(b.p) : NULL;
	utf8_format(res->message, sizeof(res->message), "%s", clean != NULL ?
	    clean : "out of memory");
	free(clean);
	dt_buf_free(&b);
}

int
dt_supabase_call(struct dt_supabase *sb, const char *method,
    const char *path, json_t *body, const char *prefer, int retry,
    struct dt_sb_result *res)
{
	char *text = NULL;
	int kind;

	if (body != NULL && (text = json_dumps(body, JSON_COMPACT)) == NULL) {
		memset(res, 0, sizeof(*res));
		res->kind = DT_SB_UNAVAILABLE;
		snprintf(res->message, sizeof(res->message), "out of memory");
		return res->kind;
	}
	kind = dt_supabase_call_raw(sb, method, path, text,
	    text != NULL ? strlen(text) : 0, prefer, retry, res);
	free(text);
	return kind;
}

/* Fills res from the answer resp: its kind, body and message. */
static void
read_reply(struct dt_sb_result *res, const struct dt_http_resp *resp)
{
	static const int kinds[] = {[DT_ANSWER_OK] = DT_SB_OK,
	    [DT_ANSWER_OUTAGE] = DT_SB_UNAVAILABLE,
	    [DT_ANSWER_SETUP] = DT_SB_CONFIG,
	    [DT_ANSWER_REFUSED] = DT_SB_REJECTED,
	    [DT_ANSWER_FAILED] = DT_SB_UNAVAILABLE};
	const char *slash = resp->content_range != NULL ?
	    strrchr(resp->content_range, '/') : NULL;
	char *end;

	res->tries = resp->tries;
	res->status = resp->status;
	res->kind = resp->result == DT_HTTP_ETIMEOUT ? DT_SB_TIMEOUT :
	    resp->result == DT_HTTP_ETOOBIG ? DT_SB_BADREPLY :
	    kinds[dt_retry_answer(resp)];
	/* The whole result's size, after the slash of "0-999/5000". */
	errno = 0;
	res->total = slash != NULL && slash[1] >= '0' && slash[1] <= '9' ?
	    strtoll(slash + 1, &end, 10) : -1;
	if (res->total >= 0 && (errno != 0 || *end != '\0'))
		res->total = -1;
	if (resp->result != DT_HTTP_OK)
		utf8_format(res->message, sizeof(res->message), "%s",
		    resp->error);
	else if (resp->len > 0 && (res->body = json_loadb(resp->body,
	    resp->len, JSON_DECODE_ANY, NULL)) == NULL &&
	    res->kind == DT_SB_OK) {
		res->kind = DT_SB_BADREPLY;
		snprintf(res->message, sizeof(res->message),
		    "HTTP %ld: the reply is not JSON", res->status);
	} else if (res->kind != DT_SB_OK)
		describe_error(res, resp->body);
}

int
dt_supabase_call_raw(struct dt_supabase *sb, const char *method,
    const char *path, const char *body, size_t body_len, const char *prefer,
    int retry, struct dt_sb_result *res)
{
	struct dt_http_policy pol = {
		.max_tries = retry ? (int)sb->tries : 1,
		.base_ms = (long)sb->backoff_ms,
		.cap_ms = sb->backoff_ms * 20 > 1 ? (long)sb->backoff_ms * 20 : 1,
		.max_total_ms = 60000,
		.max_response = (size_t)256 * 1024 * 1024,
	};
	struct dt_buf url = {0}, prefer_hdr = {0};
	const char *headers[] = {sb->apikey.p, sb->auth.p,
	    "Content-Type: application/json", "Accept: application/json",
	    NULL, NULL};
	struct dt_http_resp resp = {0};
	struct dt_http_req req = {.method = method, .headers = headers,
	    .body = body, .body_len = body != NULL ? body_len : 0,
	    .timeout_ms = (long)sb->timeout * 1000};

	memset(res, 0, sizeof(*res));
	dt_buf_printf(&url, "%s/rest/v1/%s", sb->url.p, path);
	if (prefer != NULL && dt_buf_printf(&prefer_hdr, "Prefer: %s",
	    prefer) == 0)
		headers[4] = prefer_hdr.p;
	if (url.oom || prefer_hdr.oom) {
		res->kind = DT_SB_UNAVAILABLE;
		snprintf(res->message, sizeof(res->message), "out of memory");
	} else {
		req.url = url.p;
		dt_http_send(sb->http, &req, &pol, &resp);
		read_reply(res, &resp);
		dt_http_resp_clear(&resp);
	}
	dt_buf_free(&url);
	dt_buf_free(&prefer_hdr);
	return res->kind;
}
