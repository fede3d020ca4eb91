/*
 * dt-analyze: adds a model's structured analysis to every source record.
 *
 * Reads NDJSON source records, sends each record's text to Perplexity's
 * Agent API (or any OpenAI-compatible chat completions endpoint) with a
 * JSON schema as the response format, checks the answer against the
 * schema and writes the record back with "analysis" or an "error".
 * docs/analyze.md has the whole story.
 */
#include <sys/file.h>
#include <sys/resource.h>
#include <sys/stat.h>

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include "api.h"
#include "cli.h"
#include "config.h"
#include "estimate.h"
#include "exit.h"
#include "http.h"
#include "log.h"
#include "ndjson.h"
#include "preflight.h"
#include "record.h"
#include "schema.h"
#include "shared.h"
#include "utf8.h"
#include "watch.h"

#ifndef DT_DATADIR
#define DT_DATADIR "/usr/local/share/dt"
#endif

#define RAW_KEEP 1024           /* bytes of bad output kept in an error */
#define NKINDS 9

static const char usage_text[] =
    "usage: dt-analyze [-dhqVvw] [-a agent|chat] [-B url] [-b usd] "
    "[-k failures]\n"
    "                  [-m model] [-n bytes] [-p prompt] [-r rpm] "
    "[-s schema]\n"
    "                  [-t seconds] [-x cut|reject] [file ...]\n"
    "       dt-analyze --check-config | --preflight | --estimate [option ...]\n"
    "\n"
    "Adds a structured analysis of each record's \"text\" to the record.\n"
    "A record whose text is null, empty or blank gets \"skip\" instead, "
    "with no call.\n"
    "\n"
    "  -a, --api agent|chat      Agent API or chat completions "
    "(DT_API; agent)\n"
    "  -B, --base-url URL        API base URL (PERPLEXITY_BASE_URL)\n"
    "  -b, --budget USD          stop calling once the run spent this\n"
    "                            (DT_BUDGET_USD)\n"
    "      --check-config        check the configuration (environment, "
    "options,\n"
    "                            prompt, schema, key) and exit: 0 valid, "
    "78 not;\n"
    "                            reads no input and sends nothing\n"
    "  -d, --dry-run             print the requests instead of sending "
    "them\n"
    "      --estimate            read dt-fetch --backlog's object on stdin "
    "and\n"
    "                            print the runs, tokens and cost the "
    "backlog\n"
    "                            will take (DT_PRICE_INPUT_PER_M,\n"
    "                            DT_PRICE_OUTPUT_PER_M, "
    "DT_PRICE_PER_REQUEST: by\n"
    "                            default the model's published prices); "
    "call\n"
    "                            nothing\n"
    "  -h, --help                print this help and exit\n"
    "  -k, --breaker N           open the circuit after N consecutive "
    "outage\n"
    "                            failures (DT_BREAKER_THRESHOLD; 10)\n"
    "  -m, --model NAME          model (PERPLEXITY_MODEL; "
    "perplexity/sonar,\n"
    "                            with --api chat: sonar)\n"
    "  -n, --max-text-bytes N    longest text sent (DT_MAX_TEXT_BYTES; "
    "16384)\n"
    "  -p, --prompt FILE         instructions (DT_PROMPT_FILE; "
    "share/dt/prompt.txt)\n"
    "      --preflight           send one tiny request (a few words, at "
    "most 16\n"
    "                            output tokens) as a run would, and "
    "print one\n"
    "                            line: \"perplexity: ready: ...\" or "
    "\"perplexity:\n"
    "                            not ready: ...\" naming the variable to "
    "fix;\n"
    "                            exit 0, 78, or 69 (unreachable)\n"
    "  -q, --quiet               log less\n"
    "  -r, --rpm N               requests per minute, all workers "
    "together\n"
    "                            (DT_RPM; 50)\n"
    "  -s, --schema FILE         analysis JSON schema (DT_SCHEMA_FILE;\n"
    "                            share/dt/schema.json)\n"
    "  -t, --timeout SECONDS     per API call (TIMEOUT_SECONDS; 300)\n"
    "  -V, --version             print the version and exit\n"
    "  -v, --verbose             log more (-vv: debug)\n"
    "  -w, --web-search          let the model search the web "
    "(DT_WEB_SEARCH)\n"
    "  -x, --too-large cut|reject  longer texts are cut or rejected "
    "(DT_TOO_LARGE)\n"
    "\n"
    "The default prompt and schema are looked for in ../share/dt beside "
    "this\n"
    "program, then in " DT_DATADIR ".\n"
    "When the file named by DT_STOP_FILE appears (the run is stopping), "
    "no more\n"
    "calls are made: every later record passes through at once as an "
    "\"unavailable\"\n"
    "error, which gives its row back without using an attempt, and the "
    "exit status\n"
    "is 75.  The key comes from PERPLEXITY_API_KEY or "
    "PERPLEXITY_API_KEY_FILE, never\n"
    "from a flag.\n"
    "An error answer of the API that is not about the record (a refused "
    "key, no\n"
    "credits, a wrong URL, the same refusal for 2 records and a plain "
    "test text:\n"
    "a misspelt model) opens the circuit for the whole run: no more "
    "calls, every\n"
    "row is given back unused (error kind \"config\"), exit status 78 "
    "with one line\n"
    "saying what to fix.\n"
    "Exit status: 0 all analyzed, 1 some records failed, 65 bad input "
    "lines,\n"
    "69 circuit open, 75 budget spent or interrupted, 78 bad "
    "configuration, or the\n"
    "API refused the run's setup.\n";

static const struct option longopts[] = {
	{"api", required_argument, NULL, 'a'},
	{"base-url", required_argument, NULL, 'B'},
	{"budget", required_argument, NULL, 'b'},
	{"breaker", required_argument, NULL, 'k'},
	{"check-config", no_argument, NULL, 'C'},
	{"dry-run", no_argument, NULL, 'd'},
	{"estimate", no_argument, NULL, 'E'},
	{"help", no_argument, NULL, 'h'},
	{"max-text-bytes", required_argument, NULL, 'n'},
	{"model", required_argument, NULL, 'm'},
	{"preflight", no_argument, NULL, 'P'},
	{"prompt", required_argument, NULL, 'p'},
	{"quiet", no_argument, NULL, 'q'},
	{"rpm", required_argument, NULL, 'r'},
	{"schema", required_argument, NULL, 's'},
	{"timeout", required_argument, NULL, 't'},
	{"too-large", required_argument, NULL, 'x'},
	{"verbose", no_argument, NULL, 'v'},
	{"version", no_argument, NULL, 'V'},
	{"web-search", no_argument, NULL, 'w'},
	{NULL, 0, NULL, 0}
};

/* Error kinds, in the order the stage record counts them. */
static const char *const kinds[NKINDS] = {"timeout", "rate_limited",
    "unavailable", "config", "http_4xx", "invalid_output", "too_large",
    "bad_record", "budget"};
enum { K_TIMEOUT, K_RATE, K_UNAVAIL, K_CONFIG, K_4XX, K_INVALID, K_TOOLARGE,
    K_BAD, K_BUDGET };

/*
 * Error answers alike for this many consecutive calls, from any worker,
 * the last of them with a plain test text (probe_setup), are the run's
 * setup (a misspelt model), not the records.
 */
#define SETUP_THRESHOLD 3

struct config {
	int api;
	const char *base_url;
	const char *model;
	char *key;
	int web_search;
	int disable_search;
	long long timeout_s, first_timeout_s;
	const char *prompt_file, *schema_file;
	const char *stop_file;  /* DT_STOP_FILE or NULL */
	const char *schema_name;
	long long max_text;
	int reject_large;
	long long max_output_tokens;
	long long rpm, rpm_window_ms;
	double budget;
	long long breaker;
	struct dt_http_policy pol;
	long long max_line;
	long long pipe_bytes;
	long long read_bytes;   /* per read(2) from a pipe on stdin */
	int dry_run;
	int check_config;       /* --check-config: validate and exit */
	int preflight;          /* --preflight */
	int estimate;           /* --estimate */
	double price_in, price_out, price_request; /* DT_PRICE_* */
	int prices_set;         /* DT_PRICE_INPUT/OUTPUT_PER_M given */
	int request_price_set;  /* DT_PRICE_PER_REQUEST given */
	const char *run_id_env;
};

struct counts {
	unsigned long records, analyzed, errors, passed, bad, skipped;
	unsigned long kind[NKINDS];
	long long tokens;
	double cost;
	long long est_in, est_out;
};

struct run {
	struct config c;
	struct dt_api api;
	char *prompt;
	json_t *schema;
	struct dt_schema *compiled;
	char version[17];
	char url[2048];
	char *auth;
	const char *headers[5];
	struct dt_http *http;
	struct dt_shared *sh;
	char state_dir[4096];
	int own_state_dir;
	char run_id[256];
	const char *where;      /* position of the current record */
	struct counts n;
	int status;
	const char *message;
	int seen_success;
	char last_refused[400];  /* the last 4xx a record of this worker got */
};

static volatile sig_atomic_t got_signal;
static int stop_seen;

static volatile sig_atomic_t in_call;
static struct run *cur;         /* for the signal handler */

/*
 * Returns 1 once the stop file (DT_STOP_FILE) exists.  entrypoint.sh
 * creates it on SIGTERM or at its deadline: only it gets the signal in
 * a pod, and the fan-out between must keep the records flowing so that
 * every claimed row comes out, analyzed or given back.  dt-analyze
 * creates it itself when the API refuses the run's setup.
 */
static int
stop_requested(const char *path)
{
	if (!stop_seen && path != NULL && access(path, F_OK) == 0) {
		stop_seen = 1;
		/* A circuit opened for a setup error said why already. */
		if (cur == NULL || cur->sh == NULL ||
		    dt_shared_breaker(cur->sh) == DT_BREAKER_CLOSED ||
		    dt_shared_breaker(cur->sh) == DT_BREAKER_OUTAGE)
			dt_info("the run is stopping: no more API calls");
	}
	return stop_seen;
}

static int out_lock_fd = -1;    /* DT_FANOUT_OUTPUT_LOCK, see emit() */
static int out_failed;          /* an exit status once stdout failed */
static struct {
	char *s;
	size_t len, cap;
} out_line;                     /* emit()'s buffer, kept between records */

/* Async-signal-safe appending for the handler's stage record. */
static void
sput(char *buf, size_t len, size_t *o, const char *s)
{
	while (*s != '\0' && *o + 1 < len)
		buf[(*o)++] = *s++;
}

static void
sputu(char *buf, size_t len, size_t *o, unsigned long long v)
{
	char d[24];
	int i = 0;

	do
		d[i++] = (char)('0' + v % 10);
	while ((v /= 10) > 0);
	while (i > 0 && *o + 1 < len)
		buf[(*o)++] = d[--i];
}

/*
 * On SIGTERM or SIGINT between calls, the main loop notices the flag
 * and ends cleanly.  During a call libcurl would wait for the server,
 * possibly for the whole timeout, so the handler writes the stage record
 * itself (with async-signal-safe code only) and exits at once; the
 * record in flight is not written and comes back when its lease expires.
 */
static void
on_signal(int sig)
{
	char buf[2048];
	size_t o = 0;
	struct run *x = cur;
	unsigned long long nano;
	int i;

	got_signal = sig;
	if (!in_call || x == NULL)
		return;
	sput(buf, sizeof(buf), &o, "{\"stage\":\"dt-analyze\",\"run_id\":");
	if (x->run_id[0] != '\0') {
		sput(buf, sizeof(buf), &o, "\"");
		sput(buf, sizeof(buf), &o, x->run_id);
		sput(buf, sizeof(buf), &o, "\"");
	} else
		sput(buf, sizeof(buf), &o, "null");
	sput(buf, sizeof(buf), &o, ",\"status\":75,\"message\":\"interrupted "
	    "by a signal\",\"counts\":{\"records\":");
	sputu(buf, sizeof(buf), &o, x->n.records);
	sput(buf, sizeof(buf), &o, ",\"analyzed\":");
	sputu(buf, sizeof(buf), &o, x->n.analyzed);
	sput(buf, sizeof(buf), &o, ",\"errors\":");
	sputu(buf, sizeof(buf), &o, x->n.errors);
	sput(buf, sizeof(buf), &o, ",\"passed\":");
	sputu(buf, sizeof(buf), &o, x->n.passed);
	sput(buf, sizeof(buf), &o, ",\"bad\":");
	sputu(buf, sizeof(buf), &o, x->n.bad);
	sput(buf, sizeof(buf), &o, ",\"skipped\":");
	sputu(buf, sizeof(buf), &o, x->n.skipped);
	for (i = 0; i < NKINDS; i++) {
		if (x->n.kind[i] == 0)
			continue;
		sput(buf, sizeof(buf), &o, ",\"");
		sput(buf, sizeof(buf), &o, kinds[i]);
		sput(buf, sizeof(buf), &o, "\":");
		sputu(buf, sizeof(buf), &o, x->n.kind[i]);
	}
	sput(buf, sizeof(buf), &o, "},\"tokens\":");
	sputu(buf, sizeof(buf), &o, (unsigned long long)x->n.tokens);
	sput(buf, sizeof(buf), &o, ",\"cost_usd\":");
	nano = (unsigned long long)(x->n.cost * 1e9 + 0.5);
	sputu(buf, sizeof(buf), &o, nano / 1000000000ULL);
	sput(buf, sizeof(buf), &o, ".");
	for (i = 100000000; i > 0; i /= 10)
		sputu(buf, sizeof(buf), &o, (nano / (unsigned long long)i) % 10);
	sput(buf, sizeof(buf), &o, ",\"prompt_version\":\"");
	sput(buf, sizeof(buf), &o, x->version);
	sput(buf, sizeof(buf), &o, "\",\"interrupted\":true}\n");
	if (out_lock_fd >= 0)
		(void)flock(out_lock_fd, LOCK_EX);
	(void)!write(STDOUT_FILENO, buf, o);
	_exit(DT_EXIT_TEMPFAIL);
}

/*
 * Sleeps ms milliseconds, returning early (1) on a signal or once the
 * stop file appears, which is looked for every 100 ms: a record waiting
 * for a retry or for the warm-up call must not hold up a stopping run.
 */
static int
nap(long long ms, const char *stop_file)
{
	long long end = dt_shared_now() + ms;

	while (!got_signal && !stop_requested(stop_file)) {
		long long left = end - dt_shared_now();
		struct timespec ts;

		if (left <= 0)
			return 0;
		if (stop_file != NULL && left > 100)
			left = 100;
		ts.tv_sec = (time_t)(left / 1000);
		ts.tv_nsec = (long)(left % 1000) * 1000000L;
		nanosleep(&ts, NULL);
	}
	return 1;
}

/*
 * Under dt-fanout the workers write straight to one shared stdout
 * (parallel --ungroup, which costs parallel far less CPU than relaying
 * lines).  A record can be longer than the pipe's atomic write size, so
 * every write holds an flock(2) on a file dt-fanout names: records are
 * never split or mixed.  Without DT_FANOUT_OUTPUT_LOCK there is no lock.
 */
static void
open_output_lock(void)
{
	const char *path = getenv("DT_FANOUT_OUTPUT_LOCK");

	if (path != NULL && *path != '\0' && (out_lock_fd = open(path,
	    O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600)) < 0)
		dt_warn("%s: %s; writing without the output lock", path,
		    strerror(errno));
}

static void
out_lock(int op)
{
	if (out_lock_fd >= 0)
		while (flock(out_lock_fd, op) < 0 && errno == EINTR)
			;
}

/*
 * Writes n bytes of s to stdout under the lock.  Returns 0, or -1 once
 * a write failed: EPIPE (the reader went away) silently, anything else
 * logged; out_failed then holds the exit status for it, and every
 * later call fails at once.
 */
static int
emit_raw(const char *s, size_t n)
{
	int rc = 0;

	if (out_failed)
		return -1;
	out_lock(LOCK_EX);
	while (n > 0) {
		ssize_t w = write(STDOUT_FILENO, s, n);

		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0) {
			if (errno != EPIPE)
				dt_error("cannot write standard output: %s",
				    strerror(errno));
			out_failed = errno == EPIPE ? DT_EXIT_PIPE :
			    DT_EXIT_IOERR;
			rc = -1;
			break;
		}
		s += w;
		n -= (size_t)w;
	}
	out_lock(LOCK_UN);
	return rc;
}

/* Appends n bytes of s to out_line (json_dump_callback's callback). */
static int
append_line(const char *s, size_t n, void *arg)
{
	(void)arg;
	if (out_line.len + n + 1 > out_line.cap) {
		size_t cap = out_line.cap ? out_line.cap : 4096;
		char *p;

		while (cap < out_line.len + n + 1)
			cap *= 2;
		if ((p = realloc(out_line.s, cap)) == NULL)
			return -1;
		out_line.s = p;
		out_line.cap = cap;
	}
	memcpy(out_line.s + out_line.len, s, n);
	out_line.len += n;
	return 0;
}

/*
 * Writes rec as one line, in dt_emit's format, with the newline in the
 * same write(2): under the fan-out a record is written whole or not at
 * all.
 */
static void
emit(json_t *rec)
{
	if (out_failed)
		return;
	out_line.len = 0;
	if (json_dump_callback(rec, append_line, NULL, JSON_COMPACT |
	    JSON_REAL_PRECISION(15)) < 0 || append_line("\n", 1, NULL) < 0) {
		dt_error("cannot encode a record (out of memory)");
		out_failed = DT_EXIT_IOERR;
		return;
	}
	(void)emit_raw(out_line.s, out_line.len);
}

static char *
slurp(const char *path, size_t *len)
{
	FILE *f;
	char *buf = NULL, *p;
	size_t cap = 0, n = 0, r;

	if ((f = fopen(path, "re")) == NULL)
		return NULL;
	for (;;) {
		if (n + 4096 + 1 > cap) {
			cap = cap ? cap * 2 : 8192;
			if ((p = realloc(buf, cap)) == NULL) {
				free(buf);
				fclose(f);
				errno = ENOMEM;
				return NULL;
			}
			buf = p;
		}
		r = fread(buf + n, 1, cap - n - 1, f);
		n += r;
		if (r == 0)
			break;
	}
	if (ferror(f)) {
		free(buf);
		fclose(f);
		return NULL;
	}
	fclose(f);
	buf[n] = '\0';
	*len = n;
	return buf;
}

static int
parse_api(const char *name, const char *s, int *out)
{
	if (strcmp(s, "agent") == 0)
		*out = DT_API_AGENT;
	else if (strcmp(s, "chat") == 0)
		*out = DT_API_CHAT;
	else {
		dt_error("%s: '%s' is not one of agent, chat", name, s);
		return -1;
	}
	return 0;
}

static int
parse_too_large(const char *name, const char *s, int *out)
{
	if (strcmp(s, "cut") == 0)
		*out = 0;
	else if (strcmp(s, "reject") == 0)
		*out = 1;
	else {
		dt_error("%s: '%s' is not one of cut, reject", name, s);
		return -1;
	}
	return 0;
}

/* Reads the environment.  Returns 0 or -1 (logged). */
static int
read_env(struct config *c)
{
	long long v;
	const char *s;
	int rc = 0;

	c->base_url = dt_env("PERPLEXITY_BASE_URL", "https://api.perplexity.ai");
	/* The default depends on DT_API, which a flag may change: main(). */
	c->model = dt_env("PERPLEXITY_MODEL", NULL);
	if ((s = dt_env("DT_API", NULL)) != NULL &&
	    parse_api("DT_API", s, &c->api) < 0)
		rc = -1;
	if ((s = dt_env("DT_TOO_LARGE", NULL)) != NULL &&
	    parse_too_large("DT_TOO_LARGE", s, &c->reject_large) < 0)
		rc = -1;
	c->prompt_file = dt_env("DT_PROMPT_FILE", dt_data_file("prompt.txt"));
	c->stop_file = dt_env("DT_STOP_FILE", NULL);
	c->schema_file = dt_env("DT_SCHEMA_FILE", dt_data_file("schema.json"));
	c->schema_name = dt_env("DT_SCHEMA_NAME", "analysis");
	c->run_id_env = dt_env("DT_RUN_ID", NULL);
	if (dt_env_bool("DT_WEB_SEARCH", 0, &c->web_search) < 0 ||
	    dt_env_bool("DT_CHAT_DISABLE_SEARCH", 1, &c->disable_search) < 0 ||
	    dt_env_ll("TIMEOUT_SECONDS", 300, 1, 86400, &c->timeout_s) < 0 ||
	    dt_env_ll("DT_FIRST_TIMEOUT_SECONDS", 0, 1, 86400,
	    &c->first_timeout_s) < 0 ||
	    dt_env_ll("DT_MAX_TEXT_BYTES", 16384, 64, 1 << 24, &c->max_text) < 0 ||
	    dt_env_ll("DT_MAX_OUTPUT_TOKENS", 1024, 16, 1 << 20,
	    &c->max_output_tokens) < 0 ||
	    dt_env_ll("DT_RPM", 50, 0, 1000000, &c->rpm) < 0 ||
	    dt_env_ll("DT_RPM_WINDOW_MS", 60000, 100, 3600000,
	    &c->rpm_window_ms) < 0 ||
	    dt_env_double("DT_BUDGET_USD", 0, 0, 1e9, &c->budget) < 0 ||
	    dt_env_ll("DT_BREAKER_THRESHOLD", 10, 1, 1000000, &c->breaker) < 0 ||
	    dt_env_ll("DT_MAX_LINE", (long long)DT_NDJSON_MAX_LINE_DEFAULT, 1024,
	    1 << 28,
	    &c->max_line) < 0 ||
	    dt_env_ll("DT_STDIN_PIPE_BYTES", 4096, 0, 1 << 20,
	    &c->pipe_bytes) < 0 ||
	    dt_env_ll("DT_STDIN_READ_BYTES", 512, 0, 65536,
	    &c->read_bytes) < 0)
		rc = -1;
	c->prices_set = dt_env("DT_PRICE_INPUT_PER_M", NULL) != NULL ||
	    dt_env("DT_PRICE_OUTPUT_PER_M", NULL) != NULL;
	/* Their defaults depend on the model: estimate() fills them in. */
	if (dt_env_double("DT_PRICE_INPUT_PER_M", 0, 0, 1e6,
	    &c->price_in) < 0 || dt_env_double("DT_PRICE_OUTPUT_PER_M",
	    0, 0, 1e6, &c->price_out) < 0 ||
	    dt_env_double("DT_PRICE_PER_REQUEST", 0, 0, 1e3,
	    &c->price_request) < 0)
		rc = -1;
	c->request_price_set = dt_env("DT_PRICE_PER_REQUEST", NULL) != NULL;
	if (dt_env_ll("DT_HTTP_TRIES", 4, 1, 100, &v) < 0)
		rc = -1;
	c->pol.max_tries = (int)v;
	if (dt_env_ll("DT_RETRY_BASE_MS", 500, 1, 3600000, &v) < 0)
		rc = -1;
	c->pol.base_ms = (long)v;
	if (dt_env_ll("DT_RETRY_CAP_MS", 30000, 1, 3600000, &v) < 0)
		rc = -1;
	c->pol.cap_ms = (long)v;
	if (dt_env_ll("DT_RETRY_TOTAL_MS", 120000, 0, 86400000, &v) < 0)
		rc = -1;
	c->pol.max_total_ms = (long)v;
	if (dt_env_ll("DT_MAX_RESPONSE_BYTES", 1 << 20, 4096, 1 << 30, &v) < 0)
		rc = -1;
	c->pol.max_response = (size_t)v;
	return rc;
}

/* Parses the command line over the environment.  Returns optind or -1. */
static int
read_flags(struct config *c, int argc, char **argv, int *exit_now)
{
	int ch;

	*exit_now = -1;
	/* getopt's own messages name argv[0]: the name, not the path. */
	argv[0] = (char *)dt_prog();
	while ((ch = getopt_long(argc, argv, "a:B:b:dhk:m:n:p:qr:s:t:Vvwx:",
	    longopts, NULL)) != -1) {
		switch (ch) {
		case 'a':
			if (parse_api("--api", optarg, &c->api) < 0)
				goto usage;
			break;
		case 'B':
			c->base_url = optarg;
			break;
		case 'b':
			if (dt_parse_double("--budget", optarg, 0, 1e9,
			    &c->budget) < 0)
				goto usage;
			break;
		case 'C':
			c->check_config = 1;
			break;
		case 'd':
			c->dry_run = 1;
			break;
		case 'E':
			c->estimate = 1;
			break;
		case 'P':
			c->preflight = 1;
			break;
		case 'h':
			*exit_now = dt_cli_help(usage_text);
			return -1;
		case 'k':
			if (dt_parse_ll("--breaker", optarg, 1, 1000000,
			    &c->breaker) < 0)
				goto usage;
			break;
		case 'm':
			c->model = optarg;
			break;
		case 'n':
			if (dt_parse_ll("--max-text-bytes", optarg, 64, 1 << 24,
			    &c->max_text) < 0)
				goto usage;
			break;
		case 'p':
			c->prompt_file = optarg;
			break;
		case 'q':
			dt_log_adjust(-1);
			break;
		case 'r':
			if (dt_parse_ll("--rpm", optarg, 0, 1000000, &c->rpm) < 0)
				goto usage;
			break;
		case 's':
			c->schema_file = optarg;
			break;
		case 't':
			if (dt_parse_ll("--timeout", optarg, 1, 86400,
			    &c->timeout_s) < 0)
				goto usage;
			break;
		case 'V':
			dt_cli_version();
			*exit_now = dt_cli_close_stdout(DT_EXIT_OK);
			return -1;
		case 'v':
			dt_log_adjust(1);
			break;
		case 'w':
			c->web_search = 1;
			break;
		case 'x':
			if (parse_too_large("--too-large", optarg,
			    &c->reject_large) < 0)
				goto usage;
			break;
		default:
			*exit_now = dt_cli_usage_error(NULL);
			return -1;
		}
	}
	return optind;
usage:
	*exit_now = dt_cli_usage_error(NULL);
	return -1;
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
 * Picks the directory the workers share: DT_STATE_DIR, else one per run
 * id under TMPDIR, else (a lone process) a private one removed at exit.
 */
static int
open_state(struct run *x)
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

static void
count_error(struct run *x, int k, int status)
{
	x->n.errors++;
	x->n.kind[k]++;
	x->status = dt_exit_worse(x->status, status);
}

static void
set_error(struct run *x, json_t *rec, int k, int retryable, int status,
    const char *fmt, ...) __attribute__((format(printf, 6, 7)));

static void
set_error(struct run *x, json_t *rec, int k, int retryable, int status,
    const char *fmt, ...)
{
	va_list ap;
	char msg[1024];

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	/* Jansson refuses a message cut inside a character. */
	utf8_fix(msg);
	if (dt_record_set_error(rec, kinds[k], retryable, "%s", msg) < 0)
		dt_error("out of memory");
	count_error(x, k, status);
}

static json_t *
usage_json(const struct dt_usage *u)
{
	json_t *o = json_object();

	/* (json_pack would read its format string for every record.) */
	if (o != NULL && (json_object_set_new_nocheck(o, "prompt_tokens",
	    json_integer(u->input_tokens)) < 0 ||
	    json_object_set_new_nocheck(o, "completion_tokens",
	    json_integer(u->output_tokens)) < 0 ||
	    json_object_set_new_nocheck(o, "total_tokens",
	    json_integer(u->total_tokens)) < 0 ||
	    json_object_set_new_nocheck(o, "cost_usd",
	    json_real(u->cost_usd)) < 0)) {
		json_decref(o);
		return NULL;
	}
	return o;
}

/*
 * The peak resident size of this program.  ru_maxrss also counts the
 * process image before execve (under parallel, a forked perl), so the
 * kernel's per-image high-water mark is read when there is one.
 */
static long
peak_rss_kb(long fallback)
{
	FILE *f = fopen("/proc/self/status", "re");
	char line[256];
	long kb = fallback;

	if (f == NULL)
		return fallback;
	while (fgets(line, sizeof(line), f) != NULL)
		if (strncmp(line, "VmHWM:", 6) == 0) {
			kb = strtol(line + 6, NULL, 10);
			break;
		}
	fclose(f);
	return kb;
}

/* Renders the stage record (see docs/pipeline.md) into buf. */
static size_t
render_stage(struct run *x, int status, const char *message, int interrupted,
    char *buf, size_t len)
{
	struct rusage ru;
	size_t o = 0;
	int i, n;

#define PUT(...) do { \
	n = snprintf(buf + o, o < len ? len - o : 0, __VA_ARGS__); \
	if (n > 0) \
		o += (size_t)n; \
} while (0)
	PUT("{\"stage\":\"dt-analyze\",\"run_id\":");
	if (x->run_id[0] != '\0')
		PUT("\"%s\"", x->run_id);
	else
		PUT("null");
	PUT(",\"status\":%d,\"message\":", status);
	if (message != NULL)
		PUT("\"%s\"", message);
	else
		PUT("null");
	PUT(",\"counts\":{\"records\":%lu,\"analyzed\":%lu,\"errors\":%lu,"
	    "\"passed\":%lu,\"bad\":%lu,\"skipped\":%lu", x->n.records,
	    x->n.analyzed, x->n.errors, x->n.passed, x->n.bad, x->n.skipped);
	for (i = 0; i < NKINDS; i++)
		if (x->n.kind[i] > 0)
			PUT(",\"%s\":%lu", kinds[i], x->n.kind[i]);
	PUT("},\"tokens\":%lld,\"cost_usd\":%.9g,\"prompt_version\":\"%s\"",
	    x->n.tokens, x->n.cost, x->version);
	if (x->c.dry_run)
		PUT(",\"dry_run\":true,\"estimate\":{\"input_tokens\":%lld,"
		    "\"max_output_tokens\":%lld}", x->n.est_in, x->n.est_out);
	if (getrusage(RUSAGE_SELF, &ru) == 0)
		PUT(",\"resources\":{\"cpu_ms\":%ld,\"maxrss_kb\":%ld}",
		    (long)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) * 1000 +
		    (long)(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1000,
		    peak_rss_kb(ru.ru_maxrss));
	PUT(",\"interrupted\":%s}\n", interrupted ? "true" : "false");
#undef PUT
	if (o >= len)
		o = len - 1;
	return o;
}

/* The run id and message strings go into JSON as they are: keep safe. */
static void
take_run_id(struct run *x, json_t *rec)
{
	const char *s;
	size_t i;

	if (x->run_id[0] != '\0')
		return;
	s = x->c.run_id_env;
	if (s == NULL)
		s = json_string_value(json_object_get(rec, "run_id"));
	if (s == NULL)
		return;
	for (i = 0; s[i] != '\0' && i + 1 < sizeof(x->run_id); i++)
		x->run_id[i] = (char)((s[i] == '"' || s[i] == '\\' ||
		    (unsigned char)s[i] < 0x20 || (unsigned char)s[i] >= 0x7f) ?
		    '_' : s[i]);
	x->run_id[i] = '\0';
}

static int
outage_kind(const struct dt_http_resp *r)
{
	if (r->result == DT_HTTP_ETIMEOUT || r->status == 408)
		return K_TIMEOUT;
	if (r->status == 429)
		return K_RATE;
	return K_UNAVAIL;
}

/*
 * An error answer that is no record's fault however it came: a refused
 * key, an account that cannot pay, a path that does not exist.
 */
static int
never_the_record(long status)
{
	return status < 400 || status == 401 || status == 402 ||
	    status == 403 || status == 404;
}

static int
mentions(const char *s, const char *word)
{
	return strcasestr(s, word) != NULL;
}

/*
 * The one line that says what to fix when the API refuses the run's
 * setup: which variable, why (the API's own message) and what happens
 * to the rows.
 */
static void
setup_line(struct run *x, long status, const char *sig, const char *apimsg,
    char *buf, size_t len)
{
	char answer[400];

	utf8_format(answer, sizeof(answer), "HTTP %ld%s%s", status,
	    apimsg[0] ? ": " : "", apimsg);
	if (status == 401 || status == 403)
		utf8_format(buf, len, "PERPLEXITY_API_KEY: the API refused the "
		    "key (%s); check the key", answer);
	else if (status == 402)
		utf8_format(buf, len, "PERPLEXITY_API_KEY: the API account "
		    "cannot pay for calls (%s); add credits to it", answer);
	else if (status < 400)
		utf8_format(buf, len, "PERPLEXITY_BASE_URL: %s answers with a "
		    "redirect (%s); set PERPLEXITY_BASE_URL to where it points "
		    "(https://api.perplexity.ai)", x->url, answer);
	else if (status == 404)
		utf8_format(buf, len, "PERPLEXITY_BASE_URL: %s does not exist "
		    "(%s); check PERPLEXITY_BASE_URL (https://api.perplexity.ai) "
		    "and DT_API", x->url, answer);
	else if (mentions(apimsg, "model") || mentions(sig, "model"))
		utf8_format(buf, len, "PERPLEXITY_MODEL: the API refused model "
		    "'%s' (%s); fix the model name", x->c.model, answer);
	else
		utf8_format(buf, len, "the API refused records and a plain "
		    "test text alike (%s); check PERPLEXITY_MODEL, DT_API, "
		    "DT_SCHEMA_FILE and PERPLEXITY_BASE_URL", answer);
}

/*
 * The last call of a streak of refusals: the same request with a plain
 * text of no user's in place of a record's.  The same refusal for it is
 * the setup's, and opens the circuit (returns 1); an analysis proves
 * the setup good, so the refusals were the records' own.  The call is
 * made under the rate limit and the budget; what it costs counts in
 * the stage's totals, not in any record's.
 */
static int
probe_setup(struct run *x, const struct dt_http_req *like, const char *line)
{
	static const char probe[] = "Thanks for the update, see you tomorrow.";
	struct config *c = &x->c;
	struct dt_http_req req = *like;
	struct dt_http_resp resp;
	struct dt_usage u;
	json_t *analysis = NULL;
	char *input, *body, *raw = NULL, sig[64], why[300], model[128];
	size_t ilen, blen;
	double reserved;
	long long wait;
	int opened = 0, streak, rc;

	if ((input = dt_api_wrap(probe, sizeof(probe) - 1, &ilen)) == NULL ||
	    (body = dt_api_body(&x->api, input, ilen, &blen)) == NULL) {
		free(input);
		return 0;
	}
	if (!dt_shared_budget_take(x->sh, c->budget, &reserved))
		goto done;
	if ((wait = dt_shared_slot(x->sh)) > 0)
		nap(wait, c->stop_file);
	if (got_signal || stop_seen) {
		dt_shared_budget_settle(x->sh, c->budget, reserved, 0);
		goto done;
	}
	req.body = body;
	req.body_len = blen;
	memset(&resp, 0, sizeof(resp));
	memset(&u, 0, sizeof(u));
	in_call = 1;
	dt_http_once(x->http, &req, &c->pol, &resp);
	in_call = 0;
	rc = -1;
	if (resp.result == DT_HTTP_OK && resp.status >= 200 &&
	    resp.status <= 299)
		rc = dt_api_parse(&x->api, resp.body, resp.len, &analysis, &u,
		    model, sizeof(model), why, sizeof(why), &raw);
	json_decref(analysis);
	free(raw);
	dt_shared_budget_settle(x->sh, c->budget, reserved, u.cost_usd);
	x->n.tokens += u.total_tokens;
	x->n.cost += u.cost_usd;
	if (rc != -1)
		dt_shared_setup_ok(x->sh, rc == DT_API_OK);
	else if (resp.result == DT_HTTP_OK && resp.status >= 300 &&
	    resp.status <= 499 && !dt_http_retryable(&resp)) {
		dt_api_error_type(resp.body, resp.len, sig, sizeof(sig));
		opened = dt_shared_setup_note(x->sh, resp.status, sig,
		    SETUP_THRESHOLD, line, &streak);
	}
	dt_debug("the test call with a plain text: %s", rc == DT_API_OK ?
	    "analyzed: the setup is good" : opened ? "refused alike: the "
	    "setup is at fault" : "no verdict");
	dt_http_resp_clear(&resp);
done:
	free(body);
	free(input);
	return opened;
}

/*
 * Once the circuit opened for a setup error, dt-fetch is to claim no
 * more: the stop file says so (and every worker sees it too).
 */
static void
stop_the_run(const char *stop_file)
{
	int fd;

	if (stop_file != NULL && (fd = open(stop_file, O_WRONLY | O_CREAT |
	    O_CLOEXEC | O_NOFOLLOW, 0600)) >= 0)
		close(fd);
}

/*
 * Sends one record's text until it has an analysis or a final error,
 * and sets either on rec.
 */
static void
call_api(struct run *x, json_t *rec, const char *id, const char *text,
    size_t len)
{
	struct config *c = &x->c;
	struct dt_http_resp resp;
	struct dt_http_req req;
	struct dt_usage u, sum;
	json_t *analysis;
	char *input = NULL, *payload = NULL, *raw = NULL;
	char why[600], model[128], apimsg[300], sig[64];
	size_t ilen, plen;
	long long start = dt_shared_now(), wait;
	int tries = 0, outages = 0, invalid = 0, lead, warm, rc, k, refused;

	memset(&resp, 0, sizeof(resp));
	memset(&sum, 0, sizeof(sum));
	if ((input = dt_api_wrap(text, len, &ilen)) == NULL ||
	    (payload = dt_api_body(&x->api, input, ilen, &plen)) == NULL) {
		dt_error("out of memory");
		set_error(x, rec, K_UNAVAIL, 1, DT_EXIT_TEMPFAIL, "out of memory");
		goto out;
	}
	memset(&req, 0, sizeof(req));
	req.method = "POST";
	req.url = x->url;
	req.headers = x->headers;
	req.body = payload;
	req.body_len = plen;
	req.connect_timeout_ms = 10000;

	for (;;) {
		double reserved;
		int br;

		if (got_signal) {
			set_error(x, rec, K_UNAVAIL, 1, DT_EXIT_TEMPFAIL,
			    "interrupted before the API answered");
			goto out;
		}
		/*
		 * The breaker before the stop file: a run stopped for a
		 * setup error gives its rows back as such.
		 */
		if ((br = dt_shared_breaker(x->sh)) == DT_BREAKER_OUTAGE) {
			set_error(x, rec, K_UNAVAIL, 1, DT_EXIT_UNAVAILABLE,
			    "circuit open after %lld consecutive outage "
			    "failures; not calling the API in this run",
			    c->breaker);
			goto done;
		} else if (br != DT_BREAKER_CLOSED) {
			dt_shared_breaker_why(x->sh, why, sizeof(why));
			set_error(x, rec, K_CONFIG, 1, DT_EXIT_CONFIG,
			    "not called: %s", why);
			goto done;
		}
		if (stop_requested(c->stop_file)) {
			if (tries == 0) {
				set_error(x, rec, K_UNAVAIL, 1,
				    DT_EXIT_TEMPFAIL, "the run is stopping; the "
				    "API was not called");
				goto out;
			}
			set_error(x, rec, K_UNAVAIL, 1, DT_EXIT_TEMPFAIL,
			    "the run is stopping; no call after the %d made",
			    tries);
			goto fail;
		}
		/*
		 * Only one worker makes the first call with a new schema,
		 * and each call after it while the answers look like a
		 * setup error.
		 */
		while ((lead = dt_shared_warm(x->sh, ((c->first_timeout_s >
		    c->timeout_s ? c->first_timeout_s : c->timeout_s) + 10) *
		    1000, &warm)) == DT_WARM_WAIT)
			if (nap(20, c->stop_file))
				break;
		if (got_signal || stop_seen ||
		    dt_shared_breaker(x->sh) != DT_BREAKER_CLOSED) {
			if (lead == DT_WARM_LEAD)
				dt_shared_warm_done(x->sh, DT_WARM_AGAIN);
			continue;
		}
		if (!dt_shared_budget_take(x->sh, c->budget, &reserved)) {
			if (lead == DT_WARM_LEAD)
				dt_shared_warm_done(x->sh, DT_WARM_FAILED);
			set_error(x, rec, K_BUDGET, 1, DT_EXIT_TEMPFAIL,
			    "the run's budget of %.4f USD is spent; not calling "
			    "the API", c->budget);
			goto out;
		}
		if ((wait = dt_shared_slot(x->sh)) > 0) {
			dt_debug("%s: id %s: waiting %lld ms for a request slot",
			    x->where, id, wait);
			nap(wait, c->stop_file);
		}
		if (got_signal || stop_seen) {
			dt_shared_budget_settle(x->sh, c->budget, reserved, 0);
			if (lead == DT_WARM_LEAD)
				dt_shared_warm_done(x->sh, DT_WARM_AGAIN);
			continue;
		}
		/*
		 * TIMEOUT_SECONDS bounds every call; only a
		 * DT_FIRST_TIMEOUT_SECONDS set on purpose gives the calls
		 * before the first answer (a new schema) longer.
		 */
		req.timeout_ms = (long)(c->timeout_s * 1000);
		if (!warm && !x->seen_success &&
		    c->first_timeout_s > c->timeout_s)
			req.timeout_ms = (long)(c->first_timeout_s * 1000);
		in_call = 1;
		if (got_signal) {
			in_call = 0;
			continue;
		}
		dt_http_once(x->http, &req, &c->pol, &resp);
		in_call = 0;
		tries++;

		u.cost_usd = 0;
		rc = -1;
		analysis = NULL;
		free(raw);
		raw = NULL;
		if (resp.result == DT_HTTP_OK && resp.status >= 200 &&
		    resp.status <= 299) {
			rc = dt_api_parse(&x->api, resp.body, resp.len, &analysis,
			    &u, model, sizeof(model), why, sizeof(why), &raw);
			sum.input_tokens += u.input_tokens;
			sum.output_tokens += u.output_tokens;
			sum.total_tokens += u.total_tokens;
			sum.cost_usd += u.cost_usd;
		} else if (resp.result == DT_HTTP_ETOOBIG) {
			rc = DT_API_INVALID;
			utf8_format(why, sizeof(why), "%s", resp.error);
		}
		/*
		 * An error answer that no retry changes (a 3xx, a 4xx but
		 * 408 and 429) is not known to be about this record: the same
		 * answer for every record is the run's setup.
		 */
		refused = rc == -1 && resp.result == DT_HTTP_OK &&
		    resp.status >= 300 && resp.status <= 499 &&
		    !dt_http_retryable(&resp);
		dt_shared_budget_settle(x->sh, c->budget, reserved,
		    u.cost_usd);
		/* Any answer from the model ends a streak of refusals. */
		if (rc != -1)
			dt_shared_setup_ok(x->sh, rc == DT_API_OK);
		/* A refusal keeps the lead until it is told (below). */
		if (lead == DT_WARM_LEAD && !refused) {
			dt_shared_warm_done(x->sh, rc == DT_API_OK ? DT_WARM_OK :
			    DT_WARM_FAILED);
			lead = DT_WARM_GO;
		}

		if (rc == DT_API_OK) {
			dt_shared_breaker_note(x->sh, 0, c->breaker);
			x->seen_success = 1;
			json_object_set_new(rec, "analysis", analysis);
			json_object_set_new(rec, "model", json_string(model));
			json_object_set_new(rec, "usage", usage_json(&sum));
			json_object_set_new(rec, "latency_ms",
			    json_integer(resp.elapsed_ms));
			json_object_set_new(rec, "tries", json_integer(tries));
			json_object_set_new(rec, "prompt_version",
			    json_string(x->version));
			x->n.analyzed++;
			goto out;
		}
		if (rc == DT_API_INVALID) {
			dt_shared_breaker_note(x->sh, 0, c->breaker);
			if (++invalid < 2) {
				dt_warn("%s: id %s: %s; asking once more",
				    x->where, id, why);
				continue;
			}
			set_error(x, rec, K_INVALID, 1, DT_EXIT_PARTIAL,
			    "%s (after %d tries)", why, tries);
			if (raw != NULL) {
				size_t n = utf8_cut(raw, strlen(raw), RAW_KEEP);
				json_t *e = json_object_get(rec, "error");

				json_object_set_new(e, "output",
				    json_stringn(raw, n));
				if (n < strlen(raw))
					json_object_set_new(e, "output_cut",
					    json_true());
			}
			goto fail;
		}
		if (refused) {
			char line[1024];
			int streak = 0, opened;

			dt_shared_breaker_note(x->sh, 0, c->breaker);
			dt_api_error_message(resp.body, resp.len, apimsg,
			    sizeof(apimsg));
			dt_api_error_type(resp.body, resp.len, sig, sizeof(sig));
			setup_line(x, resp.status, sig, apimsg, line,
			    sizeof(line));
			/*
			 * The same key, model, URL and schema got an analysis
			 * for another record in this run: a refusal (but for
			 * what is never a record's) is this record's own, and
			 * uses an attempt.
			 */
			if (!never_the_record(resp.status) &&
			    dt_shared_setup_proven(x->sh)) {
				if (lead == DT_WARM_LEAD)
					dt_shared_warm_done(x->sh, DT_WARM_FAILED);
				dt_warn("%s: id %s: HTTP %ld%s%s; the API answered "
				    "other records of this run", x->where, id,
				    resp.status, apimsg[0] ? ": " : "", apimsg);
				set_error(x, rec, K_4XX, 1, DT_EXIT_PARTIAL,
				    "HTTP %ld%s%s", resp.status, apimsg[0] ?
				    ": " : "", apimsg);
				goto fail;
			}
			if (never_the_record(resp.status))
				opened = dt_shared_breaker_trip(x->sh,
				    resp.status == 401 || resp.status == 403 ?
				    DT_BREAKER_AUTH : DT_BREAKER_SETUP, line);
			else {
				opened = dt_shared_setup_note(x->sh, resp.status,
				    sig, SETUP_THRESHOLD, line, &streak);
				/*
				 * Records refused alike so far may each be at
				 * fault (three spam messages first in the
				 * queue): the last call of the streak asks
				 * about a plain text instead.
				 */
				if (!opened && streak == SETUP_THRESHOLD - 1)
					opened = probe_setup(x, &req, line);
			}
			if (lead == DT_WARM_LEAD)
				dt_shared_warm_done(x->sh,
				    dt_shared_setup_proven(x->sh) ? DT_WARM_OK :
				    DT_WARM_AGAIN);
			/*
			 * The row goes back without using an attempt: the
			 * answer may be the setup's (the next calls tell),
			 * and an attempt is for what is the record's own.
			 */
			set_error(x, rec, K_CONFIG, 1, dt_shared_breaker(x->sh) ==
			    DT_BREAKER_CLOSED ? DT_EXIT_PARTIAL : DT_EXIT_CONFIG,
			    "HTTP %ld%s%s", resp.status, apimsg[0] ? ": " : "",
			    apimsg);
			if (opened) {
				dt_error("%s; no more calls in this run, every "
				    "row is given back", line);
				stop_the_run(c->stop_file);
			} else {
				dt_debug("%s: id %s: HTTP %ld%s%s (%d in a row); "
				    "the row is given back", x->where, id,
				    resp.status, apimsg[0] ? ": " : "", apimsg,
				    streak);
				utf8_format(x->last_refused,
				    sizeof(x->last_refused), "id %s: HTTP %ld%s%s",
				    id, resp.status, apimsg[0] ? ": " : "",
				    apimsg);
			}
			goto fail;
		}
		if (rc == DT_API_FAILED || dt_http_retryable(&resp) ||
		    resp.result != DT_HTTP_OK) {
			long backoff;
			const char *what;

			k = rc == DT_API_FAILED ? K_UNAVAIL : outage_kind(&resp);
			if (rc != DT_API_FAILED) {
				if (resp.result == DT_HTTP_OK) {
					dt_api_error_message(resp.body, resp.len,
					    apimsg, sizeof(apimsg));
					utf8_format(why, sizeof(why),
					    "HTTP %ld%s%s", resp.status,
					    apimsg[0] ? ": " : "", apimsg);
				} else
					utf8_format(why, sizeof(why), "%s",
					    resp.error);
			}
			what = why;
			outages++;
			if (dt_shared_breaker_note(x->sh, 1, c->breaker) !=
			    DT_BREAKER_CLOSED) {
				dt_warn("%s: id %s: %s; circuit open", x->where,
				    id, what);
				continue;
			}
			backoff = dt_http_backoff_ms(&c->pol, outages, &resp);
			if (outages >= c->pol.max_tries ||
			    dt_shared_now() - start + backoff >
			    c->pol.max_total_ms) {
				dt_warn("%s: id %s: %s; giving up after %d tries",
				    x->where, id, what, tries);
				set_error(x, rec, k, 1, DT_EXIT_PARTIAL,
				    "%s (after %d tries)", what, tries);
				goto fail;
			}
			dt_warn("%s: id %s: %s; retrying in %.1f s (%d of %d "
			    "tries left)", x->where, id, what, backoff / 1000.0,
			    c->pol.max_tries - outages, c->pol.max_tries);
			if (resp.status == 429)
				dt_shared_hold(x->sh, backoff);
			else
				nap(backoff, c->stop_file);
			continue;
		}
		/* A status no HTTP server should send. */
		utf8_format(why, sizeof(why), "unexpected HTTP %ld", resp.status);
		set_error(x, rec, K_UNAVAIL, 1, DT_EXIT_PARTIAL, "%s (after %d "
		    "tries)", why, tries);
		goto fail;
	}
done:
	if (tries == 0)
		goto out;
fail:
	json_object_set_new(rec, "tries", json_integer(tries));
	if (sum.total_tokens > 0 || sum.cost_usd > 0)
		json_object_set_new(rec, "usage", usage_json(&sum));
out:
	x->n.tokens += sum.total_tokens;
	x->n.cost += sum.cost_usd;
	dt_http_resp_clear(&resp);
	free(raw);
	free(payload);
	free(input);
}

/* Prints what would be sent for one text, with the key masked. */
static void
dry_run(struct run *x, json_t *rec, json_t *id, const char *text, size_t len)
{
	size_t ilen;
	char *input = dt_api_wrap(text, len, &ilen), *s;
	json_t *body, *out;
	long long est;

	if (input == NULL || (body = dt_api_request(&x->api, input, ilen)) == NULL) {
		free(input);
		dt_error("out of memory");
		return;
	}
	s = json_dumps(body, JSON_COMPACT);
	est = dt_api_estimate_tokens(s, s ? strlen(s) : 0);
	free(s);
	x->n.est_in += est;
	x->n.est_out += x->c.max_output_tokens;
	out = json_pack("{s:O, s:b, s:{s:s, s:s, s:{s:s, s:s}, s:o}, "
	    "s:{s:I, s:I}}", "id", id, "dry_run", 1, "request", "method",
	    "POST", "url", x->url, "headers", "Authorization",
	    x->c.key ? "Bearer ***" : "Bearer (PERPLEXITY_API_KEY unset)",
	    "Content-Type", "application/json", "body", body, "estimate",
	    "input_tokens", (json_int_t)est, "max_output_tokens",
	    (json_int_t)x->c.max_output_tokens);
	if (out == NULL) {
		dt_error("out of memory");
		free(input);
		return;
	}
	if (json_object_get(rec, "text_cut") != NULL)
		json_object_set(out, "text_cut", json_object_get(rec,
		    "text_cut"));
	emit(out);
	json_decref(out);
	free(input);
}

/*
 * A record with nothing to analyze (a sticker, a photo, a join: a row
 * without text) is ordinary data, not a failure: it gets "skip" and no
 * call is made; dt-store settles its row as skipped.  Returns 1.
 */
static int
skip(struct run *x, json_t *rec, const char *id, const char *why)
{
	dt_debug("%s: id %s: %s: skipped", x->where, id, why);
	x->n.skipped++;
	json_object_set_new(rec, "skip", json_pack("{ssss}", "reason",
	    "no_text", "message", why));
	return 1;
}

/* The tokens of a request for an empty text: the prompt, schema, framing. */
static long long
fixed_tokens(struct run *x)
{
	size_t ilen, blen = 0;
	char *input = dt_api_wrap("", 0, &ilen), *body = NULL;
	long long n;

	if (input != NULL)
		body = dt_api_body(&x->api, input, ilen, &blen);
	n = dt_api_estimate_tokens(body, body != NULL ? blen : 0);
	free(body);
	free(input);
	return n;
}

/* --estimate: reads dt-fetch --backlog's object.  Returns the exit status. */
static int
estimate(struct run *x)
{
	struct dt_estimate e = {0};
	const struct dt_price *p;
	json_error_t je;
	json_t *in;
	int rc;

	e.model = x->c.model;
	e.rpm = x->c.rpm;
	e.max_text = x->c.max_text;
	e.max_output_tokens = x->c.max_output_tokens;
	e.web_search = x->c.web_search;
	/*
	 * Unset prices are the model's published ones, else
	 * perplexity/sonar's (and the estimate says so); with web search,
	 * every Agent API request is taken to search once.
	 */
	if ((p = dt_price_of(x->c.model)) == NULL)
		p = dt_price_of("perplexity/sonar");
	e.prices_known = x->c.prices_set || dt_price_of(x->c.model) != NULL;
	e.price_in = dt_env("DT_PRICE_INPUT_PER_M", NULL) != NULL ?
	    x->c.price_in : p->in;
	e.price_out = dt_env("DT_PRICE_OUTPUT_PER_M", NULL) != NULL ?
	    x->c.price_out : p->out;
	e.price_request = x->c.request_price_set ? x->c.price_request :
	    p->request + (x->c.web_search && x->c.api == DT_API_AGENT ?
	    DT_PRICE_WEB_SEARCH : 0);
	e.budget = x->c.budget;
	/* dt-entrypoint's settings, which it has checked. */
	if (dt_env_ll("DT_DEADLINE_SECONDS", 3300, 1, 86400,
	    &e.deadline_s) < 0 || dt_env_ll("DT_SHARDS", 1, 1, 1000,
	    &e.shards) < 0)
		return DT_EXIT_CONFIG;
	e.fixed_tokens = fixed_tokens(x);
	if ((in = json_loadf(stdin, 0, &je)) == NULL) {
		dt_error("--estimate: <stdin>:%d: %s", je.line, je.text);
		return DT_EXIT_DATAERR;
	}
	rc = dt_estimate_print(&e, in, stdout) < 0 ? DT_EXIT_DATAERR :
	    DT_EXIT_OK;
	json_decref(in);
	return rc;
}

/*
 * --preflight: one request as small as a request can be, through the
 * run's own URL, headers, model, prompt and schema, with a text of two
 * words and at most 16 output tokens (a few hundred input tokens: about
 * a ten-thousandth of a dollar at perplexity/sonar's prices).  Whatever
 * the answer holds, a 2xx says the key, the model and the URL work.
 * Prints the one line; returns the exit status.
 */
static int
preflight(struct run *x)
{
	static const char text[] = "Preflight check.";
	struct dt_api a = x->api;
	struct dt_http_policy pol = x->c.pol;
	struct dt_http_resp resp = {0};
	struct dt_http_req req = {0};
	struct dt_usage u = {0};
	json_t *analysis = NULL;
	char *input = NULL, *body = NULL, *raw = NULL;
	char msg[300], why[600], model[128], safe[512];
	size_t ilen, blen;
	long long t;
	int rc;

	a.max_output_tokens = 16;
	if ((input = dt_api_wrap(text, sizeof(text) - 1, &ilen)) == NULL ||
	    (body = dt_api_body(&a, input, ilen, &blen)) == NULL) {
		rc = dt_preflight_line("perplexity", DT_EXIT_TEMPFAIL,
		    "out of memory");
		goto out;
	}
	t = x->c.first_timeout_s > x->c.timeout_s ? x->c.first_timeout_s :
	    x->c.timeout_s;
	req.method = "POST";
	req.url = x->url;
	req.headers = x->headers;
	req.body = body;
	req.body_len = blen;
	req.timeout_ms = (long)(t * 1000);
	req.connect_timeout_ms = 10000;
	pol.max_tries = 1;
	dt_http_once(x->http, &req, &pol, &resp);
	dt_http_safe_url(x->url, safe, sizeof(safe));
	if (resp.result != DT_HTTP_OK) {
		rc = dt_preflight_line("perplexity", DT_EXIT_UNAVAILABLE,
		    "PERPLEXITY_BASE_URL: %s cannot be reached (%s)", safe,
		    resp.error);
		goto out;
	}
	dt_api_error_message(resp.body, resp.len, msg, sizeof(msg));
	if (resp.status >= 200 && resp.status <= 299) {
		rc = dt_api_parse(&a, resp.body, resp.len, &analysis, &u, model,
		    sizeof(model), why, sizeof(why), &raw);
		if (rc == DT_API_FAILED)
			rc = dt_preflight_line("perplexity", DT_EXIT_UNAVAILABLE,
			    "model %s at %s: the API says the call failed (%s)",
			    x->c.model, safe, why);
		else
			rc = dt_preflight_line("perplexity", DT_EXIT_OK,
			    "model %s answered at %s (HTTP %ld, %lld tokens, "
			    "%.6f USD)", model[0] ? model : x->c.model, safe,
			    resp.status, u.total_tokens, u.cost_usd);
	} else if (resp.status == 401 || resp.status == 403)
		rc = dt_preflight_line("perplexity", DT_EXIT_CONFIG,
		    "PERPLEXITY_API_KEY: refused (HTTP %ld%s%s)", resp.status,
		    msg[0] ? ": " : "", msg);
	else if (resp.status == 402)
		rc = dt_preflight_line("perplexity", DT_EXIT_CONFIG,
		    "PERPLEXITY_API_KEY: its API group has no credits left "
		    "(HTTP 402%s%s)", msg[0] ? ": " : "", msg);
	else if (resp.status == 404 || resp.status == 405)
		rc = dt_preflight_line("perplexity", DT_EXIT_CONFIG,
		    "PERPLEXITY_BASE_URL: %s is not the API (HTTP %ld%s%s)", safe,
		    resp.status, msg[0] ? ": " : "", msg);
	else if (resp.status == 408 || resp.status == 429 ||
	    resp.status >= 500)
		rc = dt_preflight_line("perplexity", DT_EXIT_UNAVAILABLE,
		    "%s is busy or down (HTTP %ld%s%s); try again", safe,
		    resp.status, msg[0] ? ": " : "", msg);
	else if (strstr(msg, "model") != NULL || strstr(msg, "Model") != NULL)
		rc = dt_preflight_line("perplexity", DT_EXIT_CONFIG,
		    "PERPLEXITY_MODEL: %s refused (HTTP %ld: %s)", x->c.model,
		    resp.status, msg);
	else
		rc = dt_preflight_line("perplexity", DT_EXIT_CONFIG,
		    "the API refused the request (HTTP %ld%s%s): check "
		    "PERPLEXITY_MODEL, DT_API and DT_SCHEMA_FILE", resp.status,
		    msg[0] ? ": " : "", msg);
out:
	json_decref(analysis);
	free(raw);
	free(body);
	free(input);
	dt_http_resp_clear(&resp);
	return rc;
}

/* Handles one record; returns 1 when rec is to be written. */
static int
process(struct run *x, json_t *rec)
{
	json_t *id, *t, *pv;
	const char *why, *text;
	char idbuf[256];
	size_t len, keep;
	char *cut = NULL;

	x->n.records++;
	take_run_id(x, rec);
	if (json_object_get(rec, "stage") != NULL &&
	    json_object_get(rec, "id") == NULL) {
		x->n.passed++;
		return 1;
	}
	if (dt_record_id(rec, &id, &why) < 0) {
		dt_warn("%s: %s", x->where, why);
		set_error(x, rec, K_BAD, 0, DT_EXIT_DATAERR, "%s", why);
		return 1;
	}
	dt_record_id_str(id, idbuf, sizeof(idbuf));
	if (json_object_get(rec, "error") != NULL ||
	    json_object_get(rec, "skip") != NULL) {
		x->n.passed++;
		return 1;
	}
	pv = json_object_get(rec, "prompt_version");
	if (json_object_get(rec, "analysis") != NULL && json_is_string(pv) &&
	    strcmp(json_string_value(pv), x->version) == 0) {
		x->n.passed++;
		return 1;
	}
	t = json_object_get(rec, "text");
	if (json_is_null(t))
		return skip(x, rec, idbuf, "the text is null");
	if (!json_is_string(t)) {
		why = t == NULL ? "missing text" : "text must be a string";
		dt_warn("%s: id %s: %s", x->where, idbuf, why);
		set_error(x, rec, K_BAD, 0, DT_EXIT_DATAERR, "%s", why);
		return 1;
	}
	text = json_string_value(t);
	len = json_string_length(t);
	if (len == 0)
		return skip(x, rec, idbuf, "the text is empty");
	if (strspn(text, " \t\r\n") == len)
		return skip(x, rec, idbuf, "the text is blank");
	if (memchr(text, '\0', len) != NULL) {
		dt_warn("%s: id %s: text contains a NUL character", x->where,
		    idbuf);
		set_error(x, rec, K_BAD, 0, DT_EXIT_DATAERR,
		    "text contains a NUL character");
		return 1;
	}
	dt_log_text("text", text);
	if (len > (size_t)x->c.max_text) {
		if (x->c.reject_large) {
			dt_warn("%s: id %s: text of %zu bytes is over the "
			    "limit of %lld", x->where, idbuf, len, x->c.max_text);
			set_error(x, rec, K_TOOLARGE, 0, DT_EXIT_PARTIAL,
			    "text of %zu bytes is over the limit of %lld bytes",
			    len, x->c.max_text);
			return 1;
		}
		keep = utf8_cut(text, len, (size_t)x->c.max_text);
		if (asprintf(&cut, "%.*s\n[... cut by dt-analyze: %zu of %zu "
		    "bytes kept]", (int)keep, text, keep, len) < 0) {
			dt_error("out of memory");
			set_error(x, rec, K_UNAVAIL, 1, DT_EXIT_TEMPFAIL,
			    "out of memory");
			return 1;
		}
		json_object_set_new(rec, "text_cut", json_pack("{s:I, s:I}",
		    "kept_bytes", (json_int_t)keep, "total_bytes",
		    (json_int_t)len));
		text = cut;
		len = strlen(cut);
	}
	if (x->c.dry_run) {
		dry_run(x, rec, id, text, len);
		free(cut);
		return 0;
	}
	call_api(x, rec, idbuf, text, len);
	free(cut);
	return 1;
}

/*
 * A pipe from GNU parallel holds 64 KiB by default, hundreds of records
 * that would wait behind one slow call; a one-page pipe keeps the
 * backlog of each worker small so parallel hands records to whichever
 * worker has room.  The kernel refuses while the pipe holds more than
 * the new size, so main() tries first thing (parallel starts writing as
 * soon as the worker exists) and the loop tries again after each record
 * until it works.  Returns 1 when done or not applicable.
 */
static int
shrink_stdin_pipe(long long bytes)
{
#ifdef F_SETPIPE_SZ
	struct stat sb;

	if (bytes <= 0 || fstat(STDIN_FILENO, &sb) < 0 || !S_ISFIFO(sb.st_mode))
		return 1;
	if (fcntl(STDIN_FILENO, F_GETPIPE_SZ) <= bytes)
		return 1;
	if (fcntl(STDIN_FILENO, F_SETPIPE_SZ, (int)bytes) < 0)
		return 0;
#else
	(void)bytes;
#endif
	return 1;
}

/*
 * Tells dt-fanout that this worker's input pipe is small now: the rest
 * of the input flows only when every worker has said so (see dt-fanout).
 */
static void
say_ready(void)
{
	const char *dir = getenv("DT_FANOUT_READY_DIR");
	char path[4096];
	int fd;

	if (dir == NULL || *dir == '\0')
		return;
	snprintf(path, sizeof(path), "%s/ready.%ld", dir, (long)getpid());
	if ((fd = open(path, O_WRONLY | O_CREAT | O_CLOEXEC, 0600)) >= 0)
		close(fd);
}

/*
 * Under the fan-out the input pipe is this worker's queue: what the
 * reader has taken out of it waits here however slow the current call
 * is, while what is still in the pipe keeps the pipe full, so parallel
 * hands the next records to other workers.  So a pipe on stdin is read
 * a little at a time (DT_STDIN_READ_BYTES), which a heavy tail of slow
 * calls measurably likes (docs/analyze.md); files are read 64 KiB at a
 * time.
 */
static void
small_reads(struct dt_reader *r, long long bytes)
{
	struct stat sb;

	if (bytes > 0 && fstat(STDIN_FILENO, &sb) == 0 &&
	    S_ISFIFO(sb.st_mode))
		dt_reader_set_chunk(r, (size_t)bytes);
}

/* The pipe size before anything else is read or set up. */
static long long
early_pipe_bytes(void)
{
	const char *s = getenv("DT_STDIN_PIPE_BYTES");
	char *end;
	long long v;

	/* read_env() checks the value properly later; here a bad one is 0. */
	if (s == NULL || *s == '\0')
		return 4096;
	errno = 0;
	v = strtoll(s, &end, 10);
	return errno != 0 || *end != '\0' || v < 0 ? 0 : v;
}

static const char *
final_message(struct run *x, int interrupted)
{
	if (interrupted)
		return got_signal ? "interrupted by a signal" :
		    "stopped: the run is stopping";
	switch (x->status) {
	case DT_EXIT_OK:
		return NULL;
	case DT_EXIT_CONFIG:
		return dt_shared_breaker(x->sh) == DT_BREAKER_AUTH ?
		    "the API refused the key" :
		    "the API refused the run's setup";
	case DT_EXIT_UNAVAILABLE:
		return "circuit open: the API is unavailable";
	case DT_EXIT_TEMPFAIL:
		return x->n.kind[K_BUDGET] ? "the run's budget is spent" :
		    "temporary failure";
	case DT_EXIT_DATAERR:
		return "bad input records";
	case DT_EXIT_PARTIAL:
		return "some records failed";
	default:
		return "output failed";
	}
}

/*
 * The read-process-write loop: every line becomes one output line, until
 * the input ends, a signal arrives or stdout fails.
 */
static void
read_records(struct run *x, struct dt_reader *r, int shrunk)
{
	json_t *rec;
	int rc;

	while (!got_signal && out_failed == 0) {
		rc = dt_reader_next(r, &rec);
		if (rc == DT_NDJSON_EOF)
			break;
		if (rc == DT_NDJSON_ERROR) {
			x->status = dt_exit_worse(x->status, DT_EXIT_DATAERR);
			continue;
		}
		x->where = dt_reader_where(r);
		if (rc == DT_NDJSON_BAD) {
			json_t *bad = dt_record_bad_line(x->where,
			    dt_reader_error(r), dt_reader_excerpt(r));

			x->n.records++;
			x->n.bad++;
			count_error(x, K_BAD, DT_EXIT_DATAERR);
			if (bad != NULL && !x->c.dry_run)
				emit(bad);
			json_decref(bad);
			continue;
		}
		if (process(x, rec))
			emit(rec);
		json_decref(rec);
		if (!shrunk && (shrunk = shrink_stdin_pipe(x->c.pipe_bytes)))
			say_ready();
	}
}

static void
install_signals(void)
{
	struct sigaction sa;

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_signal;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
}

int
main(int argc, char **argv)
{
	static struct run x;
	struct dt_reader *r = NULL;
	char stage[2048];
	int first, exit_now, interrupted = 0, shrunk;

	if ((shrunk = shrink_stdin_pipe(early_pipe_bytes())))
		say_ready();
	if (dt_log_init("dt-analyze") < 0 || dt_watch_start() < 0)
		return DT_EXIT_CONFIG;
#ifdef F_GETPIPE_SZ
	if (dt_log_enabled(DT_LOG_DEBUG) && fcntl(STDIN_FILENO, F_GETPIPE_SZ) > 0)
		dt_debug("input pipe holds %d bytes%s",
		    fcntl(STDIN_FILENO, F_GETPIPE_SZ), shrunk ? "" :
		    " (shrinking it again after each record)");
#endif
	dt_out_init();
	dt_config_register_secrets();
	if (read_env(&x.c) < 0)
		return DT_EXIT_CONFIG;
	if ((first = read_flags(&x.c, argc, argv, &exit_now)) < 0)
		return exit_now;
	if (x.c.model == NULL)
		x.c.model = x.c.api == DT_API_CHAT ? "sonar" : "perplexity/sonar";
	if ((x.c.preflight || x.c.estimate) && (first < argc ||
	    x.c.dry_run || x.c.check_config || (x.c.preflight &&
	    x.c.estimate)))
		return dt_cli_usage_error("--preflight and --estimate read no "
		    "files and go with no other mode");
	if (dt_env_secret("PERPLEXITY_API_KEY", &x.c.key) < 0)
		return DT_EXIT_CONFIG;
	if (x.c.key == NULL && !x.c.dry_run && !x.c.estimate) {
		dt_error("PERPLEXITY_API_KEY (or PERPLEXITY_API_KEY_FILE) is "
		    "not set");
		return DT_EXIT_CONFIG;
	}
	/*
	 * Only a worker that takes its configuration touches the fan-out's
	 * files: one refusing it may still be starting when parallel has
	 * given up and dt-fanout removed them.
	 */
	open_output_lock();
	srandom((unsigned)time(NULL) ^ ((unsigned)getpid() << 16));
	x.status = DT_EXIT_OK;
	if (load_prompt(&x) < 0 || setup_http(&x) < 0) {
		x.status = DT_EXIT_CONFIG;
		goto out;
	}
	/* The whole configuration is read and checked; nothing was sent. */
	if (x.c.check_config)
		goto out;
	if (x.c.estimate) {
		x.status = estimate(&x);
		goto out;
	}
	if (x.c.preflight) {
		x.status = preflight(&x);
		goto out;
	}
	if (!x.c.dry_run && open_state(&x) < 0) {
		x.status = DT_EXIT_CONFIG;
		goto out;
	}
	cur = &x;
	install_signals();
	if ((r = dt_reader_new(argv + first, argc - first,
	    (size_t)x.c.max_line)) == NULL) {
		dt_error("out of memory");
		x.status = DT_EXIT_TEMPFAIL;
		goto out;
	}
	if (first == argc)
		small_reads(r, x.c.read_bytes);
	take_run_id(&x, NULL);
	read_records(&x, r, shrunk);
	if (got_signal) {
		interrupted = 1;
		x.status = dt_exit_worse(x.status, DT_EXIT_TEMPFAIL);
		dt_warn("interrupted by signal %d; %lu records done",
		    (int)got_signal, x.n.records);
	} else if (x.sh != NULL && dt_shared_breaker(x.sh) != DT_BREAKER_CLOSED &&
	    dt_shared_breaker(x.sh) != DT_BREAKER_OUTAGE) {
		/* It stopped the run itself: nothing interrupted it. */
		if (x.n.kind[K_CONFIG] > 0)
			x.status = dt_exit_worse(x.status, DT_EXIT_CONFIG);
	} else if (stop_seen) {
		interrupted = 1;
		x.status = dt_exit_worse(x.status, DT_EXIT_TEMPFAIL);
	}
	if (x.n.kind[K_CONFIG] > 0 && x.last_refused[0] != '\0' &&
	    x.sh != NULL && dt_shared_breaker(x.sh) == DT_BREAKER_CLOSED)
		dt_warn("%lu record%s refused by the API with an answer other "
		    "records did not get (last: %s); given back without using "
		    "an attempt", x.n.kind[K_CONFIG], x.n.kind[K_CONFIG] == 1 ?
		    " was" : "s were", x.last_refused);
	if (out_failed == 0) {
		size_t n = render_stage(&x, x.status,
		    final_message(&x, interrupted), interrupted, stage,
		    sizeof(stage));

		(void)emit_raw(stage, n);
	}
	if (out_failed != 0)
		x.status = dt_exit_worse(x.status, out_failed);
out:
	dt_reader_free(r);
	if (x.sh != NULL)
		close_state(&x);
	dt_http_free(x.http);
	if (out_lock_fd >= 0)
		close(out_lock_fd);
	free(out_line.s);
	dt_schema_free(x.compiled);
	json_decref(x.schema);
	free(x.prompt);
	free(x.auth);
	free(x.c.key);
	return dt_cli_close_stdout(x.status);
}
