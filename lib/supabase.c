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

#define NOT_SECRET_KEY "this is not a secret (service) key: set SUPABASE_KEY " \
	"to a secret key (sb_secret_...) or the legacy service_role key"

struct dt_supabase {
	struct dt_http *http;
	char *url;              /* base URL, no trailing slash */
	char *apikey_hdr;       /* "apikey: <key>" */
	char *auth_hdr;         /* "Authorization: Bearer <key>" */
	long long timeout, tries, backoff_ms;
};

/* Checks SUPABASE_URL; returns 0, or -1 after logging one line. */
static int
check_url(const char *url)
{
	const char *host = url;
	char safe[512];

	if (url == NULL) {
		dt_error("SUPABASE_URL is not set (the project URL, e.g. "
		    "https://xyz.supabase.co)");
		return -1;
	}
	if (strncmp(url, "http://", 7) == 0 ||
	    strncmp(url, "https://", 8) == 0)
		host = strstr(url, "://") + 3;
	if (host == url)
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
		bad++;
	else if (*key == NULL) {
		dt_error("SUPABASE_KEY is not set (a secret key, sb_secret_..., "
		    "or the legacy service_role key; or SUPABASE_KEY_FILE naming "
		    "a file that holds it)");
		bad++;
	} else if (strncmp(*key, "sb_publishable_", 15) == 0) {
		dt_error("SUPABASE_KEY: a publishable key (sb_publishable_...); "
		    NOT_SECRET_KEY);
		bad++;
	}
	return bad;
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
	struct dt_buf apikey = {0}, auth = {0};
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
	dt_buf_printf(&apikey, "apikey: %s", key);
	dt_buf_printf(&auth, "Authorization: Bearer %s", key);
	free(key);
	sb->apikey_hdr = apikey.p;
	sb->auth_hdr = auth.p;
	if ((sb->url = strdup(url)) == NULL || apikey.oom || auth.oom) {
		dt_error("out of memory");
		dt_supabase_free(sb);
		return NULL;
	}
	n = strlen(sb->url);
	while (n > 0 && sb->url[n - 1] == '/')
		sb->url[--n] = '\0';
	/* A URL that already ends in /rest/v1 is taken as the API root. */
	if (n >= 8 && strcmp(sb->url + n - 8, "/rest/v1") == 0)
		sb->url[n - 8] = '\0';
	if ((sb->http = dt_http_new("supabase")) == NULL) {
		dt_supabase_free(sb);
		return NULL;
	}
	return sb;
}

void
dt_supabase_free(struct dt_supabase *sb)
{
	if (sb != NULL) {
		dt_http_free(sb->http);
		free(sb->url);
		free(sb->apikey_hdr);
		free(sb->auth_hdr);
	}
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
	/*
	 * PostgREST answers a permission error with 401 only to the anon
	 * role, which a publishable or anon key gets: dt's tables are
	 * service_role's alone.
	 */
	if (res->status == 401 && code != NULL && strcmp(code, "42501") == 0)
		dt_buf_printf(&b, ": %s", NOT_SECRET_KEY);
	/* It may quote what the server said; never a secret. */
	clean = b.p != NULL ? dt_redact(b.p) : NULL;
	snprintf(res->message, sizeof(res->message), "%s", clean != NULL ?
	    clean : "out of memory");
	utf8_fix(res->message);
	free(clean);
	dt_buf_free(&b);
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
	return errno != 0 || end[strspn(end, " \t\r")] != '\0' ? -1 : n;
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
	long st = resp->status;

	res->tries = resp->tries;
	res->status = st;
	res->total = range_total(resp->content_range);
	if (resp->result != DT_HTTP_OK) {
		res->kind = resp->result == DT_HTTP_ETIMEOUT ? DT_SB_TIMEOUT :
		    resp->result == DT_HTTP_ETOOBIG ? DT_SB_BADREPLY :
		    DT_SB_UNAVAILABLE;
		utf8_format(res->message, sizeof(res->message), "%s",
		    resp->error);
		return;
	}
	if (resp->len > 0)
		res->body = json_loadb(resp->body, resp->len, JSON_DECODE_ANY,
		    NULL);
	if (st >= 200 && st < 300 && resp->len > 0 && res->body == NULL) {
		res->kind = DT_SB_BADREPLY;
		snprintf(res->message, sizeof(res->message),
		    "HTTP %ld: the reply is not JSON", st);
	} else if (st >= 200 && st < 300)
		res->kind = DT_SB_OK;
	else {
		describe_error(res, resp->body);
		res->kind = st == 401 || st == 403 || st == 404 ? DT_SB_CONFIG :
		    st >= 500 || st == 429 || st == 408 ? DT_SB_UNAVAILABLE :
		    DT_SB_REJECTED;
	}
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
	struct dt_http_resp resp = {0};
	struct dt_http_req req = {.method = method, .headers = headers,
	    .body = body, .body_len = body != NULL ? body_len : 0,
	    .timeout_ms = (long)sb->timeout * 1000};

	memset(res, 0, sizeof(*res));
	dt_buf_printf(&url, "%s/rest/v1/%s", sb->url, path);
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
