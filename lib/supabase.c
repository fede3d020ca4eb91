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

#define MAX_RESPONSE ((size_t)256 * 1024 * 1024)

/* What to do about a key that is not a secret one. */
#define NOT_SECRET_KEY "this is not a secret (service) key: set SUPABASE_KEY " \
	"to a secret key (sb_secret_...) or the legacy service_role key"

struct dt_supabase {
	struct dt_http *http;
	char *url;              /* base URL, no trailing slash */
	char *apikey_hdr;       /* "apikey: <key>" */
	char *auth_hdr;         /* "Authorization: Bearer <key>" */
	long timeout_ms;
	long long tries;        /* DT_SUPABASE_TRIES */
	long long backoff_ms;   /* DT_SUPABASE_BACKOFF_MS */
};

static char *
joinstr(const char *a, const char *b)
{
	size_t la = strlen(a), lb = strlen(b);
	char *s = malloc(la + lb + 1);

	if (s == NULL)
		return NULL;
	memcpy(s, a, la);
	memcpy(s + la, b, lb + 1);
	return s;
}

/* The settings a client is made from. */
struct sb_config {
	const char *url;
	char *key;              /* new string, or NULL */
	long long timeout, tries, backoff;
};

/* Checks SUPABASE_URL; returns 0, or -1 after logging one line. */
static int
check_url(const char *url)
{
	const char *host;
	char safe[512];

	if (url == NULL) {
		dt_error("SUPABASE_URL is not set (the project URL, e.g. "
		    "https://xyz.supabase.co)");
		return -1;
	}
	if (strncmp(url, "http://", 7) == 0)
		host = url + 7;
	else if (strncmp(url, "https://", 8) == 0)
		host = url + 8;
	else {
		dt_error("SUPABASE_URL: not an http:// or https:// URL: %s",
		    dt_http_safe_url(url, safe, sizeof(safe)));
		return -1;
	}
	if (strchr(url, '?') != NULL || strchr(url, '#') != NULL ||
	    strchr(url, ' ') != NULL) {
		dt_error("SUPABASE_URL: must be the bare project URL, without a "
		    "query, fragment or spaces");
		return -1;
	}
	if (*host == '\0' || *host == '/') {
		dt_error("SUPABASE_URL: no host name: %s",
		    dt_http_safe_url(url, safe, sizeof(safe)));
		return -1;
	}
	return 0;
}

/*
 * Reads and checks every Supabase setting, logging one line per problem,
 * so a person sees them all at once.  Returns the number of problems;
 * c->key is then a new string (or NULL) the caller frees.
 */
static int
read_config(struct sb_config *c)
{
	int bad = 0;

	memset(c, 0, sizeof(*c));
	c->url = dt_env("SUPABASE_URL", NULL);
	if (check_url(c->url) < 0)
		bad++;
	if (dt_env_shared("TIMEOUT_SECONDS", &c->timeout) < 0)
		bad++;
	if (dt_env_shared("DT_SUPABASE_TRIES", &c->tries) < 0)
		bad++;
	if (dt_env_shared("DT_SUPABASE_BACKOFF_MS", &c->backoff) < 0)
		bad++;
	if (dt_env_secret("SUPABASE_KEY", &c->key) < 0)
		bad++;
	else if (c->key == NULL || *c->key == '\0') {
		dt_error("SUPABASE_KEY is not set (a secret key, sb_secret_..., "
		    "or the legacy service_role key; or SUPABASE_KEY_FILE naming "
		    "a file that holds it)");
		bad++;
	} else if (strpbrk(c->key, "\r\n") != NULL) {
		dt_error("SUPABASE_KEY: contains a line break");
		bad++;
	} else if (strncmp(c->key, "sb_publishable_", 15) == 0) {
		dt_error("SUPABASE_KEY: a publishable key (sb_publishable_...); "
		    NOT_SECRET_KEY);
		bad++;
	}
	return bad;
}

int
dt_supabase_check(void)
{
	struct sb_config c;
	int bad = read_config(&c);

	free(c.key);
	return bad;
}

struct dt_supabase *
dt_supabase_new(void)
{
	struct dt_supabase *sb = NULL;
	struct sb_config c;
	size_t n;

	if (read_config(&c) > 0) {
		free(c.key);
		return NULL;
	}
	if ((sb = calloc(1, sizeof(*sb))) == NULL)
		goto oom;
	sb->timeout_ms = (long)c.timeout * 1000;
	sb->tries = c.tries;
	sb->backoff_ms = c.backoff;
	if ((sb->url = strdup(c.url)) == NULL)
		goto oom;
	n = strlen(sb->url);
	while (n > 0 && sb->url[n - 1] == '/')
		sb->url[--n] = '\0';
	/* A URL that already ends in /rest/v1 is taken as the API root. */
	if (n >= 8 && strcmp(sb->url + n - 8, "/rest/v1") == 0)
		sb->url[n - 8] = '\0';
	sb->apikey_hdr = joinstr("apikey: ", c.key);
	sb->auth_hdr = joinstr("Authorization: Bearer ", c.key);
	if (sb->apikey_hdr == NULL || sb->auth_hdr == NULL)
		goto oom;
	free(c.key);
	if ((sb->http = dt_http_new("supabase")) == NULL) {
		dt_supabase_free(sb);
		return NULL;
	}
	return sb;
oom:
	dt_error("out of memory");
	free(c.key);
	dt_supabase_free(sb);
	return NULL;
}

void
dt_supabase_free(struct dt_supabase *sb)
{
	if (sb == NULL)
		return;
	dt_http_free(sb->http);
	free(sb->url);
	free(sb->apikey_hdr);
	free(sb->auth_hdr);
	free(sb);
}

int
dt_sb_exit(int kind)
{
	switch (kind) {
	case DT_SB_OK:
		return DT_EXIT_OK;
	case DT_SB_UNAVAILABLE:
	case DT_SB_TIMEOUT:
		return DT_EXIT_UNAVAILABLE;
	case DT_SB_CONFIG:
		return DT_EXIT_CONFIG;
	case DT_SB_REJECTED:
		return DT_EXIT_DATAERR;
	default:
		return DT_EXIT_TEMPFAIL;
	}
}

void
dt_sb_result_clear(struct dt_sb_result *res)
{
	if (res == NULL)
		return;
	json_decref(res->body);
	memset(res, 0, sizeof(*res));
}

/* Appends "what" from the error body's field to buf. */
static void
add_field(char *buf, size_t len, json_t *body, const char *field,
    const char *fmt)
{
	const char *v = json_string_value(json_object_get(body, field));
	size_t used = strlen(buf);

	if (v == NULL || *v == '\0' || used >= len)
		return;
	snprintf(buf + used, len - used, fmt, v);
}

/* Describes a non-2xx response from PostgREST's error body. */
static void
describe_error(struct dt_sb_result *res, const char *raw)
{
	char *clean;

	snprintf(res->message, sizeof(res->message), "HTTP %ld", res->status);
	if (json_is_object(res->body)) {
		add_field(res->message, sizeof(res->message), res->body, "code",
		    ": %s");
		add_field(res->message, sizeof(res->message), res->body,
		    "message", ": %s");
		add_field(res->message, sizeof(res->message), res->body,
		    "details", " (%s)");
		add_field(res->message, sizeof(res->message), res->body, "hint",
		    " (hint: %s)");
	} else if (raw != NULL && *raw != '\0') {
		size_t used = strlen(res->message);

		snprintf(res->message + used, sizeof(res->message) - used,
		    ": %.*s", (int)utf8_cut(raw, strlen(raw), 200), raw);
	}
	/*
	 * PostgREST answers a permission error with 401 only to the anon
	 * role, which is what a publishable or anon key gets: dt's tables
	 * and functions are granted to service_role alone.
	 */
	if (res->status == 401 && json_is_object(res->body) &&
	    json_string_value(json_object_get(res->body, "code")) != NULL &&
	    strcmp(json_string_value(json_object_get(res->body, "code")),
	    "42501") == 0) {
		size_t used = strlen(res->message);

		if (used < sizeof(res->message))
			snprintf(res->message + used, sizeof(res->message) - used,
			    ": %s", NOT_SECRET_KEY);
	}
	/* A field that did not fit was cut by snprintf, maybe mid-character. */
	utf8_fix(res->message);
	/* The message may quote what the server said; never a secret. */
	if ((clean = dt_redact(res->message)) != NULL) {
		snprintf(res->message, sizeof(res->message), "%s", clean);
		free(clean);
	}
	utf8_fix(res->message);
}

/*
 * The whole result's size, the number after the slash of a Content-Range
 * value ("0-999/5000"), or -1 when there is none or it is "*".
 */
static long long
range_total(const char *v)
{
	const char *slash = v != NULL ? strrchr(v, '/') : NULL;
	char *end;
	long long n;

	if (slash == NULL || slash[1] < '0' || slash[1] > '9')
		return -1;
	errno = 0;
	n = strtoll(slash + 1, &end, 10);
	while (*end == ' ' || *end == '\t' || *end == '\r')
		end++;
	return errno != 0 || *end != '\0' ? -1 : n;
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

/*
 * Fills res from the answer resp to a call: the kind of result, the
 * parsed body and, for a failure, the message.
 */
static void
read_reply(struct dt_sb_result *res, const struct dt_http_resp *resp)
{
	res->tries = resp->tries;
	res->status = resp->status;
	res->total = range_total(resp->content_range);
	if (resp->result != DT_HTTP_OK) {
		res->kind = resp->result == DT_HTTP_ETIMEOUT ? DT_SB_TIMEOUT :
		    resp->result == DT_HTTP_ETOOBIG ? DT_SB_BADREPLY :
		    DT_SB_UNAVAILABLE;
		snprintf(res->message, sizeof(res->message), "%s", resp->error);
		utf8_fix(res->message);
		return;
	}
	if (resp->len > 0)
		res->body = json_loadb(resp->body, resp->len, JSON_DECODE_ANY,
		    NULL);
	if (resp->status >= 200 && resp->status < 300) {
		if (resp->len > 0 && res->body == NULL) {
			res->kind = DT_SB_BADREPLY;
			snprintf(res->message, sizeof(res->message),
			    "HTTP %ld: the reply is not JSON", resp->status);
		} else
			res->kind = DT_SB_OK;
		return;
	}
	describe_error(res, resp->body);
	if (resp->status == 401 || resp->status == 403 || resp->status == 404)
		res->kind = DT_SB_CONFIG;
	else if (resp->status >= 500 || resp->status == 429 ||
	    resp->status == 408)
		res->kind = DT_SB_UNAVAILABLE;
	else
		res->kind = DT_SB_REJECTED;
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
		.max_response = MAX_RESPONSE,
	};
	struct dt_buf url = {0}, prefer_hdr = {0};
	const char *headers[] = {sb->apikey_hdr, sb->auth_hdr,
	    "Content-Type: application/json", "Accept: application/json",
	    NULL, NULL};
	struct dt_http_resp resp;
	struct dt_http_req req;

	memset(res, 0, sizeof(*res));
	memset(&resp, 0, sizeof(resp));
	memset(&req, 0, sizeof(req));
	dt_buf_printf(&url, "%s/rest/v1/%s", sb->url, path);
	if (prefer != NULL && dt_buf_printf(&prefer_hdr, "Prefer: %s",
	    prefer) == 0)
		headers[4] = prefer_hdr.p;
	if (url.oom || prefer_hdr.oom) {
		res->kind = DT_SB_UNAVAILABLE;
		snprintf(res->message, sizeof(res->message), "out of memory");
	} else {
		req.method = method;
		req.url = url.p;
		req.headers = headers;
		req.body = body;
		req.body_len = body != NULL ? body_len : 0;
		req.timeout_ms = sb->timeout_ms;
		dt_http_send(sb->http, &req, &pol, &resp);
		read_reply(res, &resp);
		dt_http_resp_clear(&resp);
	}
	dt_buf_free(&url);
	dt_buf_free(&prefer_hdr);
	return res->kind;
}
