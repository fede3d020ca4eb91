/*
 * setup.c: dt-analyze's configuration from the environment, the prompt
 * and schema with prompt_version, the HTTP client, and the state the
 * workers of a run share.
 */
#include <sys/stat.h>
#include <sys/uio.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <jansson.h>

#include "analyze.h"
#include "buf.h"
#include "cli.h"
#include "config.h"
#include "log.h"
#include "schema.h"
#include "shared.h"
#include "utf8.h"

/*
 * Reads the file at path.  Returns its bytes followed by a NUL, a new
 * string the caller frees (the length in *len), or NULL with errno set.
 */
static char *
slurp(const char *path, size_t *len)
{
	struct dt_buf b = {0};
	char chunk[8192];
	FILE *f;
	size_t r;
	int err;

	if ((f = fopen(path, "re")) == NULL)
		return NULL;
	while ((r = fread(chunk, 1, sizeof(chunk), f)) > 0 &&
	    dt_buf_add(&b, chunk, r) == 0)
		;
	err = b.oom ? ENOMEM : ferror(f) ? errno : 0;
	fclose(f);
	if (err == 0 && dt_buf_add(&b, "", 0) < 0)
		err = ENOMEM;
	if (err != 0) {
		dt_buf_free(&b);
		errno = err;
		return NULL;
	}
	*len = b.len;
	return b.p;
}

int
dt_az_parse_choice(const char *name, const char *s, const char *zero,
    const char *one, int *out)
{
	if (strcmp(s, zero) == 0)
		*out = 0;
	else if (strcmp(s, one) == 0)
		*out = 1;
	else {
		dt_error("%s: '%s' is not one of %s, %s", name, s, zero, one);
		return -1;
	}
	return 0;
}

int
dt_az_read_env(struct config *c)
{
	long long tries = 0, base = 0, cap = 0, total = 0, v = 0;
	const char *s;
	int rc = 0;

	c->base_url = dt_env("PERPLEXITY_BASE_URL", "https://api.perplexity.ai");
	/* The default depends on DT_API, which a flag may change: main(). */
	c->model = dt_env("PERPLEXITY_MODEL", NULL);
	if ((s = dt_env("DT_API", NULL)) != NULL &&
	    dt_az_parse_choice("DT_API", s, "agent", "chat", &c->api) < 0)
		rc = -1;
	if ((s = dt_env("DT_TOO_LARGE", NULL)) != NULL &&
	    dt_az_parse_choice("DT_TOO_LARGE", s, "cut", "reject",
	    &c->reject_large) < 0)
		rc = -1;
	c->prompt_file = dt_env("DT_PROMPT_FILE", dt_data_file("prompt.txt"));
	c->stop_file = dt_env("DT_STOP_FILE", NULL);
	c->schema_file = dt_env("DT_SCHEMA_FILE", dt_data_file("schema.json"));
	c->schema_name = dt_env("DT_SCHEMA_NAME", "analysis");
	c->run_id_env = dt_env("DT_RUN_ID", NULL);
	if (dt_env_bool("DT_WEB_SEARCH", 0, &c->web_search) < 0 ||
	    dt_env_bool("DT_CHAT_DISABLE_SEARCH", 1, &c->disable_search) < 0 ||
	    dt_env_shared("TIMEOUT_SECONDS", &c->timeout_s) < 0 ||
	    dt_env_ll("DT_FIRST_TIMEOUT_SECONDS", 0, 1, 86400,
	    &c->first_timeout_s) < 0 ||
	    dt_env_ll("DT_MAX_TEXT_BYTES", 16384, 64, 1 << 24, &c->max_text) < 0 ||
	    dt_env_ll("DT_MAX_OUTPUT_TOKENS", 1024, 16, 1 << 20,
	    &c->max_output_tokens) < 0 ||
	    dt_env_ll("DT_PACK", 10, 1, 100, &c->pack) < 0 ||
	    dt_env_ll("DT_RPM", 50, 0, 1000000, &c->rpm) < 0 ||
	    dt_env_ll("DT_RPM_WINDOW_MS", 60000, 100, 3600000,
	    &c->rpm_window_ms) < 0 ||
	    dt_env_double("DT_BUDGET_USD", 0, 0, 1e9, &c->budget) < 0 ||
	    dt_env_ll("DT_BREAKER_THRESHOLD", 10, 1, 1000000, &c->breaker) < 0 ||
	    dt_env_ll("DT_MAX_LINE", (long long)DT_NDJSON_MAX_LINE_DEFAULT, 1024,
	    1 << 28,
	    &c->max_line) < 0 ||
	    dt_env_ll("DT_HTTP_TRIES", 4, 1, 100, &tries) < 0 ||
	    dt_env_ll("DT_RETRY_BASE_MS", 500, 1, 3600000, &base) < 0 ||
	    dt_env_ll("DT_RETRY_CAP_MS", 30000, 1, 3600000, &cap) < 0 ||
	    dt_env_ll("DT_RETRY_TOTAL_MS", 120000, 0, 86400000, &total) < 0 ||
	    dt_env_ll("DT_MAX_RESPONSE_BYTES", 1 << 20, 4096, 1 << 30,
	    &v) < 0)
		rc = -1;
	c->prices_set = dt_env("DT_PRICE_INPUT_PER_M", NULL) != NULL ||
	    dt_env("DT_PRICE_OUTPUT_PER_M", NULL) != NULL;
	/* Their defaults depend on the model: dt_az_estimate() fills them in. */
	if (dt_env_double("DT_PRICE_INPUT_PER_M", 0, 0, 1e6,
	    &c->price_in) < 0 || dt_env_double("DT_PRICE_OUTPUT_PER_M",
	    0, 0, 1e6, &c->price_out) < 0 ||
	    dt_env_double("DT_PRICE_PER_REQUEST", 0, 0, 1e3,
	    &c->price_request) < 0)
		rc = -1;
	c->request_price_set = dt_env("DT_PRICE_PER_REQUEST", NULL) != NULL;
	c->pol.max_tries = (int)tries;
	c->pol.base_ms = (long)base;
	c->pol.cap_ms = (long)cap;
	c->pol.max_total_ms = (long)total;
	c->pol.max_response = (size_t)v;
	return rc;
}

static int
name_ok(const char *s)
{
	size_t n = strlen(s), i;

	if (n < 1 || n > 64)
		return 0;
	for (i = 0; i < n; i++)
		if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= 'A' &&
		    s[i] <= 'Z') || (s[i] >= '0' && s[i] <= '9') ||
		    s[i] == '_' || s[i] == '-'))
			return 0;
	return 1;
}

/*
 * A model name must have the form its API gives it: provider/model on
 * the Agent API ("perplexity/sonar"), a bare name on chat completions
 * ("sonar"), and neither white space nor control characters (a value
 * pasted with a newline).  Otherwise every call of the run would be
 * refused.  Returns 0, or -1 after one error line.
 */
static int
check_model(const char *m, int api)
{
	const char *slash = strchr(m, '/');
	size_t i;

	for (i = 0; m[i] != '\0'; i++)
		if ((unsigned char)m[i] <= ' ' || m[i] == 0x7f) {
			dt_error("PERPLEXITY_MODEL: the model name contains "
			    "white space or a control character (byte %zu)",
			    i + 1);
			return -1;
		}
	if (api == DT_API_AGENT && (slash == NULL || slash == m ||
	    slash[1] == '\0' || strchr(slash + 1, '/') != NULL)) {
		dt_error("PERPLEXITY_MODEL: '%s' is not a model name of the "
		    "Agent API (DT_API=agent), which are provider/model, such "
		    "as perplexity/sonar", m);
		return -1;
	}
	if (api == DT_API_CHAT && slash != NULL) {
		dt_error("PERPLEXITY_MODEL: '%s' is not a model name of chat "
		    "completions (DT_API=chat), which are bare names, such as "
		    "sonar", m);
		return -1;
	}
	return 0;
}

/*
 * Loads the prompt and schema and derives prompt_version: the first 16
 * hex digits of SHA-256 over the prompt, the schema in canonical form
 * (sorted keys, compact) and the model, NUL-separated.
 */
static int
load_prompt(struct run *x)
{
	struct config *c = &x->c;
	json_error_t je;
	char err[300], *canon;
	size_t plen;

	if ((x->prompt = slurp(c->prompt_file, &plen)) == NULL) {
		dt_error("%s: %s", c->prompt_file, strerror(errno));
		return -1;
	}
	if (plen == 0 || strlen(x->prompt) != plen) {
		dt_error("%s: the prompt must be non-empty text", c->prompt_file);
		return -1;
	}
	/* The prompt, the model and the URL go into JSON as they are. */
	if (utf8_cut(x->prompt, plen, plen) != plen) {
		dt_error("%s: the prompt is not valid UTF-8 (byte %zu)",
		    c->prompt_file, utf8_cut(x->prompt, plen, plen) + 1);
		return -1;
	}
	if (utf8_cut(c->model, strlen(c->model), strlen(c->model)) !=
	    strlen(c->model)) {
		dt_error("PERPLEXITY_MODEL: the model name is not valid UTF-8");
		return -1;
	}
	if (check_model(c->model, c->api) < 0)
		return -1;
	if ((x->schema = json_load_file(c->schema_file, 0, &je)) == NULL) {
		dt_error("%s:%d: %s", c->schema_file, je.line, je.text);
		return -1;
	}
	if (dt_schema_check(x->schema, err, sizeof(err)) < 0) {
		dt_error("%s: %s", c->schema_file, err);
		return -1;
	}
	if (!name_ok(c->schema_name)) {
		dt_error("DT_SCHEMA_NAME: '%s' must be 1 to 64 letters, digits, "
		    "'_' or '-'", c->schema_name);
		return -1;
	}
	if ((canon = json_dumps(x->schema, JSON_COMPACT | JSON_SORT_KEYS)) ==
	    NULL) {
		dt_error("out of memory");
		return -1;
	}
	{
		struct iovec parts[5] = {{x->prompt, plen}, {"", 1},
		    {canon, strlen(canon)}, {"", 1},
		    {(void *)c->model, strlen(c->model)}};

		dt_api_digest(parts, 5, x->version, 16);
	}
	free(canon);

	x->api.kind = c->api;
	x->api.model = c->model;
	x->api.prompt = x->prompt;
	x->api.schema = x->schema;
	if ((x->compiled = dt_schema_compile(x->schema)) == NULL) {
		dt_error("out of memory");
		return -1;
	}
	x->api.compiled = x->compiled;
	x->api.schema_name = c->schema_name;
	x->api.max_output_tokens = c->max_output_tokens;
	x->api.web_search = c->web_search;
	x->api.disable_search = c->disable_search;
	return 0;
}

/* Makes dir (mode 0700) unless it exists as this user's directory. */
static int
own_dir(const char *dir)
{
	struct stat sb;

	if (mkdir(dir, 0700) < 0 && errno != EEXIST) {
		dt_error("%s: %s", dir, strerror(errno));
		return -1;
	}
	if (lstat(dir, &sb) < 0) {
		dt_error("%s: %s", dir, strerror(errno));
		return -1;
	}
	if (!S_ISDIR(sb.st_mode) || sb.st_uid != geteuid()) {
		dt_error("%s: not a directory of this user; refusing to keep "
		    "state there", dir);
		return -1;
	}
	return 0;
}

/*
 * The directory the workers share: DT_STATE_DIR, else one per run id
 * under TMPDIR, else (a lone process) a private one removed at exit.
 */
int
dt_az_open_state(struct run *x)
{
	const char *dir = dt_env("DT_STATE_DIR", NULL);
	const char *tmp = dt_env("TMPDIR", "/tmp");
	char err[512];

	if (dir != NULL)
		snprintf(x->state_dir, sizeof(x->state_dir), "%s", dir);
	else if (x->c.run_id_env != NULL) {
		char safe[128];
		size_t i;

		snprintf(safe, sizeof(safe), "%s", x->c.run_id_env);
		for (i = 0; safe[i] != '\0'; i++)
			if (!((safe[i] >= 'a' && safe[i] <= 'z') ||
			    (safe[i] >= 'A' && safe[i] <= 'Z') ||
			    (safe[i] >= '0' && safe[i] <= '9') ||
			    safe[i] == '-' || safe[i] == '_' || safe[i] == '.'))
				safe[i] = '_';
		snprintf(x->state_dir, sizeof(x->state_dir),
		    "%s/dt-analyze-%ld-%s", tmp, (long)geteuid(), safe);
	} else {
		snprintf(x->state_dir, sizeof(x->state_dir),
		    "%s/dt-analyze.XXXXXX", tmp);
		if (mkdtemp(x->state_dir) == NULL) {
			dt_error("%s: %s", x->state_dir, strerror(errno));
			return -1;
		}
		x->own_state_dir = 1;
	}
	if (!x->own_state_dir && own_dir(x->state_dir) < 0)
		return -1;
	if ((x->sh = dt_shared_open(x->state_dir, x->c.rpm,
	    x->c.rpm_window_ms, err, sizeof(err))) == NULL) {
		dt_error("%s", err);
		return -1;
	}
	dt_debug("state shared in %s", x->state_dir);
	return 0;
}

static void
close_state(struct run *x)
{
	char path[4200];

	dt_shared_close(x->sh);
	x->sh = NULL;
	if (x->own_state_dir) {
		snprintf(path, sizeof(path), "%s/analyze.state", x->state_dir);
		unlink(path);
		rmdir(x->state_dir);
	}
}

static int
setup_http(struct run *x)
{
	size_t n = strlen(x->c.base_url);
	const char *key = x->c.key;

	while (n > 0 && x->c.base_url[n - 1] == '/')
		n--;
	if (strncmp(x->c.base_url, "http://", 7) != 0 &&
	    strncmp(x->c.base_url, "https://", 8) != 0) {
		dt_error("PERPLEXITY_BASE_URL: '%s' is not an http(s) URL",
		    x->c.base_url);
		return -1;
	}
	/* Room for the path; the URL goes into --dry-run's JSON. */
	if (n > sizeof(x->url) - 32) {
		dt_error("PERPLEXITY_BASE_URL: longer than %zu bytes",
		    sizeof(x->url) - 32);
		return -1;
	}
	if (utf8_cut(x->c.base_url, n, n) != n) {
		dt_error("PERPLEXITY_BASE_URL: not valid UTF-8");
		return -1;
	}
	snprintf(x->url, sizeof(x->url), "%.*s%s", (int)n, x->c.base_url,
	    dt_api_path(x->c.api));
	if (asprintf(&x->auth, "Authorization: Bearer %s",
	    key != NULL ? key : "***") < 0) {
		x->auth = NULL;
		dt_error("out of memory");
		return -1;
	}
	x->headers[0] = x->auth;
	x->headers[1] = "Content-Type: application/json";
	x->headers[2] = "Accept: application/json";
	x->headers[3] = NULL;
	if (x->c.dry_run)
		return 0;
	if ((x->http = dt_http_new("perplexity")) == NULL)
		return -1;
	return 0;
}

int
dt_az_setup(struct run *x)
{
	return load_prompt(x) < 0 || dt_az_pack_setup(x) < 0 ||
	    setup_http(x) < 0 ? -1 : 0;
}

void
dt_az_teardown(struct run *x)
{
	if (x->sh != NULL)
		close_state(x);
	dt_http_free(x->http);
	dt_schema_free(x->compiled);
	json_decref(x->schema);
	free(x->prompt);
	json_decref(x->pack_schema);
	free(x->pack_prompt);
	free(x->auth);
	free(x->c.key);
}
