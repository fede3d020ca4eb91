/*
 * setup.c: dt-analyze's settings, the prompt and schema, the HTTP client
 * and the state the workers of a run share.
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
#include "cli.h"
#include "config.h"
#include "exit.h"
#include "log.h"
#include "schema.h"
#include "shared.h"
#include "utf8.h"

#ifndef DT_DATADIR
#define DT_DATADIR "/usr/local/share/dt"
#endif

static const char usage_head[] =
    "usage: dt-analyze [-hnqVvw] [-B url] [-k failures] [-s schema]\n"
    "                  [option ...] [file ...]\n"
    "       dt-analyze --check-config | --preflight | --estimate |\n"
    "                  --prompt-version [option ...]\n"
    "       dt-analyze --merge-stages dir\n"
    "\n"
    "Adds a model's analysis of each record's \"text\" to the record (or\n"
    "\"skip\" when it has none), up to DT_PACK records a request.\n";

static const char usage_tail[] =
    "The default prompt and schema are looked for in ../share/dt beside\n"
    "this program, then in " DT_DATADIR ".\n"
    "Exit status: 0 all analyzed, 1 some records failed, 65 bad input\n"
    "lines, 69 circuit open, 75 budget spent, DT_STOP_FILE or interrupted,\n"
    "78 bad configuration, or the API refused the run's setup.\n";

/* What the table below fills in; dt_az_setup() copies it out. */
static struct config conf = {.price_in = -1, .price_out = -1,
    .price_request = -1};
static long long pol_tries, pol_base, pol_cap, pol_total, pol_max_resp;

/* The first two defaults are found beside the program (dt_data_file). */
static struct dt_opt opts[] = {
	{0, "prompt", "DT_PROMPT_FILE", DT_OPT_TEXT, &conf.prompt_file, NULL,
	    0, 0, "FILE", "instructions"},
	{'s', "schema", "DT_SCHEMA_FILE", DT_OPT_TEXT, &conf.schema_file, NULL,
	    0, 0, "FILE", "analysis JSON schema"},
	{0, "estimate", NULL, DT_OPT_SWITCH, &conf.estimate, NULL, 0, 0, NULL,
	    "print the runs, tokens and cost of dt-fetch --backlog's object"},
	{'n', "dry-run", NULL, DT_OPT_SWITCH, &conf.dry_run, NULL, 0, 0, NULL,
	    "print the requests instead of sending them"},
	{0, "prompt-version", NULL, DT_OPT_SWITCH, &conf.show_version, NULL,
	    0, 0, NULL, "print the prompt version analyses get and exit"},
	{0, "merge-stages", NULL, DT_OPT_TEXT, &conf.merge_dir, NULL, 0, 0,
	    "DIR", "sum the \"stage.*\" records of dt-fanout's jobs in DIR"},
	{0, "preflight", NULL, DT_OPT_SWITCH, &conf.preflight, NULL, 0, 0,
	    NULL, "send one tiny request; say if the API is ready, else why"},
	{0, "api", "DT_API", DT_OPT_CHOICE, &conf.api, "agent", 0, 0,
	    "agent|chat", "Agent API or chat completions"},
	{'B', "base-url", "PERPLEXITY_BASE_URL", DT_OPT_TEXT, &conf.base_url,
	    "https://api.perplexity.ai", 0, 0, "URL", "API base URL"},
	{0, "model", "PERPLEXITY_MODEL", DT_OPT_TEXT, &conf.model, NULL, 0, 0,
	    "NAME", "model; perplexity/sonar, with --api chat sonar"},
	{'w', "web-search", "DT_WEB_SEARCH", DT_OPT_BOOL, &conf.web_search,
	    "0", 0, 0, NULL, "let the model search the web"},
	{0, NULL, "DT_CHAT_DISABLE_SEARCH", DT_OPT_BOOL, &conf.disable_search,
	    "1", 0, 0, NULL, "chat: send disable_search without web search"},
	{0, NULL, "DT_SCHEMA_NAME", DT_OPT_TEXT, &conf.schema_name,
	    "analysis", 0, 0, NULL, "json_schema.name"},
	DT_OPT_USE("TIMEOUT_SECONDS", &conf.timeout_s),
	{0, NULL, "DT_FIRST_TIMEOUT_SECONDS", DT_OPT_INT, &conf.first_timeout_s,
	    NULL, 1, 86400, NULL, "per call until one succeeded, if set"},
	{0, "max-text-bytes", "DT_MAX_TEXT_BYTES", DT_OPT_INT, &conf.max_text,
	    "16384", 64, 1 << 24, "N", "longest text sent"},
	{0, "too-large", "DT_TOO_LARGE", DT_OPT_CHOICE, &conf.reject_large,
	    "cut", 0, 0, "cut|reject", "longer texts are cut or rejected"},
	{0, NULL, "DT_MAX_OUTPUT_TOKENS", DT_OPT_INT, &conf.max_output_tokens,
	    "1024", 16, 1 << 20, NULL, "max_output_tokens, max_tokens on chat"},
	{0, NULL, "DT_PACK", DT_OPT_INT, &conf.pack, "10", 1, DT_AZ_PACK_MAX,
	    NULL, "records per request; 1 for one a request"},
	{0, "rpm", "DT_RPM", DT_OPT_INT, &conf.rpm, "50", 0, 1000000, "N",
	    "requests per window, all workers together; 0 no limit"},
	{0, NULL, "DT_RPM_WINDOW_MS", DT_OPT_INT, &conf.rpm_window_ms,
	    "60000", 100, 3600000, NULL, "the window"},
	{0, "budget", "DT_BUDGET_USD", DT_OPT_NUM, &conf.budget, NULL, 0,
	    1000000000, "USD", "stop calling once the run spent this"},
	{0, NULL, "DT_PRICE_INPUT_PER_M", DT_OPT_NUM, &conf.price_in, NULL, 0,
	    1000000, NULL, "USD per million input tokens for --estimate"},
	{0, NULL, "DT_PRICE_OUTPUT_PER_M", DT_OPT_NUM, &conf.price_out, NULL,
	    0, 1000000, NULL, "USD per million output tokens"},
	{0, NULL, "DT_PRICE_PER_REQUEST", DT_OPT_NUM, &conf.price_request,
	    NULL, 0, 1000, NULL, "USD per request"},
	{'k', "breaker", "DT_BREAKER_THRESHOLD", DT_OPT_INT, &conf.breaker,
	    "10", 1, 1000000, "N", "open the circuit after N consecutive "
	    "outage failures"},
	{0, NULL, "DT_HTTP_TRIES", DT_OPT_INT, &pol_tries, "4", 1, 100, NULL,
	    "calls per record through outages"},
	{0, NULL, "DT_RETRY_BASE_MS", DT_OPT_INT, &pol_base, "500", 1,
	    3600000, NULL, "first backoff"},
	{0, NULL, "DT_RETRY_CAP_MS", DT_OPT_INT, &pol_cap, "30000", 1,
	    3600000, NULL, "longest backoff"},
	{0, NULL, "DT_RETRY_TOTAL_MS", DT_OPT_INT, &pol_total, "120000", 0,
	    86400000, NULL, "longest time spent retrying a record"},
	{0, NULL, "DT_MAX_RESPONSE_BYTES", DT_OPT_INT, &pol_max_resp,
	    "1048576", 4096, 1 << 30, NULL, "larger answers are invalid"},
	{.env = "DT_MAX_LINE", .type = DT_OPT_SHARED, .out = &conf.max_line,
	    .min = 1024, .max = 1 << 28},
	DT_OPT_USE("DT_DEADLINE_SECONDS", &conf.deadline_s),
	DT_OPT_USE("DT_SHARDS", &conf.shards),
	DT_OPT_USE("DT_STOP_FILE", &conf.stop_file),
	DT_OPT_USE("DT_RUN_ID", &conf.run_id_env),
	{0, NULL, "DT_FANOUT_SLOTS", DT_OPT_INT, &conf.slots, NULL, 1, 100000,
	    NULL, "workers of a dt-fanout run that may call at once"},
	{0, NULL, "PERPLEXITY_API_KEY", DT_OPT_SECRET, &conf.key, NULL, 0, 0,
	    NULL, "the API key"},
};

/* The prompt file: non-empty UTF-8 text.  Returns 0, or -1 (logged). */
static int
load_prompt(struct run *x, size_t *plen)
{
	const char *path = x->c.prompt_file;
	FILE *f = fopen(path, "re");
	size_t cap = 0;
	/* Up to a NUL, which text does not hold. */
	ssize_t n = f != NULL ? getdelim(&x->prompt, &cap, '\0', f) : -1;
	int rc = -1;

	*plen = n > 0 ? (size_t)n : 0;
	if (f == NULL || ferror(f))
		dt_error("%s: %s", path, strerror(errno));
	else if (n <= 0 || strlen(x->prompt) != *plen)
		dt_error("%s: the prompt must be non-empty text", path);
	else if (utf8_cut(x->prompt, *plen, *plen) != *plen)
		dt_error("%s: the prompt is not valid UTF-8 (byte %zu)", path,
		    utf8_cut(x->prompt, *plen, *plen) + 1);
	else
		rc = 0;
	if (f != NULL)
		fclose(f);
	return rc;
}

int
dt_az_open_state(struct run *x)
{
	const char *dir = dt_env("DT_STATE_DIR", NULL);
	const char *tmp = dt_env("TMPDIR", "/tmp");
	char err[512], safe[128], *p;
	struct stat sb;

	snprintf(safe, sizeof(safe), "%s", x->c.run_id_env != NULL ?
	    x->c.run_id_env : "");
	for (p = safe; *p != '\0'; p++)
		if (!strchr("abcdefghijklmnopqrstuvwxyz"
		    "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.", *p))
			*p = '_';
	if (dir != NULL)
		snprintf(x->state_dir, sizeof(x->state_dir), "%s", dir);
	else if (safe[0] != '\0')
		snprintf(x->state_dir, sizeof(x->state_dir),
		    "%s/dt-analyze-%ld-%s", tmp, (long)geteuid(), safe);
	else
		snprintf(x->state_dir, sizeof(x->state_dir),
		    "%s/dt-analyze.XXXXXX", tmp);
	x->own_state_dir = dir == NULL && safe[0] == '\0';
	/* One not made here must be this user's: no other may forge it. */
	if (x->own_state_dir ? mkdtemp(x->state_dir) == NULL :
	    ((mkdir(x->state_dir, 0700) < 0 && errno != EEXIST) ||
	    lstat(x->state_dir, &sb) < 0))
		dt_error("%s: %s", x->state_dir, strerror(errno));
	else if (!x->own_state_dir && (!S_ISDIR(sb.st_mode) ||
	    sb.st_uid != geteuid()))
		dt_error("%s: not a directory of this user; refusing to keep "
		    "state there", x->state_dir);
	else if ((x->sh = dt_shared_open(x->state_dir, x->c.rpm,
	    x->c.rpm_window_ms, err, sizeof(err))) == NULL)
		dt_error("%s", err);
	else {
		dt_debug("state shared in %s", x->state_dir);
		return 0;
	}
	return -1;
}

/* The URL, the headers and (unless --dry-run) the client. */
static int
setup_http(struct run *x)
{
	const char *base = x->c.base_url;
	size_t n = strlen(base);

	while (n > 0 && base[n - 1] == '/')
		n--;
	if (strncmp(base, "http://", 7) != 0 &&
	    strncmp(base, "https://", 8) != 0)
		dt_error("PERPLEXITY_BASE_URL: '%s' is not an http(s) URL",
		    base);
	else if (n > sizeof(x->url) - 32)
		dt_error("PERPLEXITY_BASE_URL: longer than %zu bytes",
		    sizeof(x->url) - 32);
	else if (utf8_cut(base, n, n) != n)
		dt_error("PERPLEXITY_BASE_URL: not valid UTF-8");
	else if (asprintf(&x->auth, "Authorization: Bearer %s",
	    x->c.key != NULL ? x->c.key : "***") < 0) {
		x->auth = NULL;
		dt_error("out of memory");
	} else {
		snprintf(x->url, sizeof(x->url), "%.*s%s", (int)n, base,
		    x->c.api == DT_API_CHAT ? "/chat/completions" :
		    "/v1/agent");
		x->headers[0] = x->auth;
		x->headers[1] = "Content-Type: application/json";
		x->headers[2] = "Accept: application/json";
		return x->c.dry_run || (x->http = dt_http_new("perplexity")) !=
		    NULL ? 0 : -1;
	}
	return -1;
}

/*
 * Loads the prompt and the schema, checks the model, and sets the
 * prompt_version, the request and (but with --dry-run) the HTTP client.
 * Returns 0, or -1 after one error line.
 */
static int
load(struct run *x)
{
	struct config *c = &x->c;
	const char *m = c->model, *slash = strchr(m, '/');
	json_error_t je;
	char err[300], *canon = NULL;
	size_t i, plen, n = strlen(m), ns = strlen(c->schema_name);

	for (i = 0; i < n && (unsigned char)m[i] > ' ' && m[i] != 0x7f; i++)
		;
	if (load_prompt(x, &plen) < 0)
		return -1;
	/* A model is provider/model on the Agent API, a bare name on chat. */
	if (utf8_cut(m, n, n) != n)
		dt_error("PERPLEXITY_MODEL: the model name is not valid UTF-8");
	else if (i < n)
		dt_error("PERPLEXITY_MODEL: the model name contains white "
		    "space or a control character (byte %zu)", i + 1);
	else if (c->api == DT_API_AGENT && (slash == NULL || slash == m ||
	    slash[1] == '\0' || strchr(slash + 1, '/') != NULL))
		dt_error("PERPLEXITY_MODEL: '%s' is not a model name of the "
		    "Agent API (DT_API=agent), which are provider/model, such "
		    "as perplexity/sonar", m);
	else if (c->api == DT_API_CHAT && slash != NULL)
		dt_error("PERPLEXITY_MODEL: '%s' is not a model name of chat "
		    "completions (DT_API=chat), which are bare names, such as "
		    "sonar", m);
	else if ((x->schema = json_load_file(c->schema_file, 0, &je)) == NULL)
		dt_error("%s:%d: %s", c->schema_file, je.line, je.text);
	else if (dt_schema_check(x->schema, err, sizeof(err)) < 0)
		dt_error("%s: %s", c->schema_file, err);
	else if (ns < 1 || ns > 64 || strspn(c->schema_name, "abcdefghijklmn"
	    "opqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-") != ns)
		dt_error("DT_SCHEMA_NAME: '%s' must be 1 to 64 letters, "
		    "digits, '_' or '-'", c->schema_name);
	else if ((canon = json_dumps(x->schema, JSON_COMPACT |
	    JSON_SORT_KEYS)) == NULL)
		dt_error("out of memory");
	if (canon == NULL)
		return -1;
	dt_api_digest((struct iovec[]){{x->prompt, plen}, {"", 1},
	    {canon, strlen(canon)}, {"", 1}, {(void *)c->model,
	    strlen(c->model)}}, 5, x->version, 16);
	free(canon);
	x->api = (struct dt_api){.kind = c->api, .model = c->model,
	    .prompt = x->prompt, .schema = x->schema,
	    .schema_name = c->schema_name,
	    .max_output_tokens = c->max_output_tokens,
	    .web_search = c->web_search, .disable_search = c->disable_search};
	return dt_az_pack_setup(x) < 0 || setup_http(x) < 0 ? -1 : 0;
}

int
dt_az_setup(struct run *x, int argc, char **argv)
{
	struct config *c = &x->c;
	const struct dt_cmd cmd = {usage_head, usage_tail, opts,
	    sizeof(opts) / sizeof(opts[0])};
	int rc;

	opts[0].def = dt_data_file("prompt.txt");
	opts[1].def = dt_data_file("schema.json");
	if ((rc = dt_opts_parse(&cmd, argc, argv, &conf.check_config)) != 0)
		return rc;
	if (conf.model == NULL)
		conf.model = conf.api == DT_API_CHAT ? "sonar" :
		    "perplexity/sonar";
	conf.pol.max_tries = (int)pol_tries;
	conf.pol.base_ms = (long)pol_base;
	conf.pol.cap_ms = (long)pol_cap;
	conf.pol.max_total_ms = (long)pol_total;
	conf.pol.max_response = (size_t)pol_max_resp;
	*c = conf;
	if (c->show_version && (optind < argc || c->dry_run ||
	    c->check_config || c->preflight || c->estimate))
		return dt_cli_usage_error("--prompt-version reads no files and "
		    "goes with no other mode");
	if ((c->preflight || c->estimate) && (optind < argc || c->dry_run ||
	    c->check_config || (c->preflight && c->estimate)))
		return dt_cli_usage_error("--preflight and --estimate read no "
		    "files and go with no other mode");
	if (c->key == NULL && !c->dry_run && !c->estimate &&
	    !c->show_version && c->merge_dir == NULL) {
		dt_error("PERPLEXITY_API_KEY (or PERPLEXITY_API_KEY_FILE) is "
		    "not set");
		return DT_EXIT_CONFIG;
	}
	return c->merge_dir != NULL || load(x) == 0 ? 0 : DT_EXIT_CONFIG;
}

void
dt_az_teardown(struct run *x)
{
	char path[4200];

	if (x->sh != NULL && x->own_state_dir) {
		snprintf(path, sizeof(path), "%s/analyze.state", x->state_dir);
		unlink(path);
		rmdir(x->state_dir);
	}
	dt_shared_close(x->sh);
	dt_http_free(x->http);
	json_decref(x->schema);
	free(x->prompt);
	json_decref(x->pack_schema);
	free(x->pack_prompt);
	free(x->auth);
	free(x->c.key);
}
