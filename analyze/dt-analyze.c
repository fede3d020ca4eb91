/*
 * dt-analyze: adds a model's structured analysis to every source record.
 *
 * Reads NDJSON source records, sends each record's text to Perplexity's
 * Agent API (or any OpenAI-compatible chat completions endpoint) with a
 * JSON schema as the response format, checks the answer against the
 * schema and writes the record back with "analysis" or an "error".
 * docs/analyze.md has the whole story.
 */

#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include "analyze.h"
#include "cli.h"
#include "config.h"
#include "exit.h"
#include "log.h"
#include "record.h"
#include "shared.h"
#include "utf8.h"
#include "watch.h"

#ifndef DT_DATADIR
#define DT_DATADIR "/usr/local/share/dt"
#endif


static const char usage_text[] =
    "usage: dt-analyze [-hnqVvw] [-B url] [-k failures] [-s schema]\n"
    "                  [--api agent|chat] [--budget usd] [--max-text-bytes n]\n"
    "                  [--model model] [--prompt file] [--rpm n]\n"
    "                  [--timeout seconds] [--too-large cut|reject] [file ...]\n"
    "       dt-analyze --check-config | --preflight | --estimate |\n"
    "                  --prompt-version [option ...]\n"
    "       dt-analyze --merge-stages dir\n"
    "\n"
    "Adds a structured analysis of each record's \"text\" to the record.\n"
    "A record whose text is null, empty or blank gets \"skip\" instead, "
    "with no call.\n"
    "Up to DT_PACK records (10; 1: one a request) go in one request; a "
    "record whose\n"
    "item of the answer is missing, repeated or invalid is sent again "
    "alone, and\n"
    "its record says so in \"pack\".\n"
    "\n"
    "      --api agent|chat      Agent API or chat completions "
    "(DT_API; agent)\n"
    "  -B, --base-url URL        API base URL (PERPLEXITY_BASE_URL)\n"
    "      --budget USD          stop calling once the run spent this\n"
    "                            (DT_BUDGET_USD)\n"
    "      --check-config        check the configuration (environment, "
    "options,\n"
    "                            prompt, schema, key) and exit: 0 valid, "
    "78 not;\n"
    "                            reads no input and sends nothing\n"
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
    "      --max-text-bytes N    longest text sent (DT_MAX_TEXT_BYTES; "
    "16384)\n"
    "      --model NAME          model (PERPLEXITY_MODEL; "
    "perplexity/sonar,\n"
    "                            with --api chat: sonar)\n"
    "      --merge-stages DIR    write one stage record summing the "
    "\"stage.*\"\n"
    "                            files dt-fanout's jobs left in DIR; "
    "read no\n"
    "                            input\n"
    "  -n, --dry-run             print the requests instead of sending "
    "them\n"
    "      --preflight           send one tiny request (a few words, at "
    "most 16\n"
    "                            output tokens) as a run would, and "
    "print one\n"
    "                            line: \"perplexity: ready: ...\" or "
    "\"perplexity:\n"
    "                            not ready: ...\" naming the variable to "
    "fix;\n"
    "                            exit 0, 78, or 69 (unreachable)\n"
    "      --prompt FILE         instructions (DT_PROMPT_FILE; "
    "share/dt/prompt.txt)\n"
    "      --prompt-version      print the prompt version analyses get "
    "(from the\n"
    "                            prompt, the schema and the model) and "
    "exit;\n"
    "                            reads no input, sends nothing\n"
    "  -q, --quiet               log less\n"
    "      --rpm N               requests per minute, all workers "
    "together\n"
    "                            (DT_RPM; 50)\n"
    "  -s, --schema FILE         analysis JSON schema (DT_SCHEMA_FILE;\n"
    "                            share/dt/schema.json)\n"
    "      --timeout SECONDS     per API call (TIMEOUT_SECONDS; 300)\n"
    "      --too-large cut|reject  longer texts are cut or rejected "
    "(DT_TOO_LARGE)\n"
    "  -V, --version             print the version and exit\n"
    "  -v, --verbose             log more (-vv: debug)\n"
    "  -w, --web-search          let the model search the web "
    "(DT_WEB_SEARCH)\n"
    "\n"
    "Short options mean the same in every dt program (docs/options.md):\n"
    "the options above without one keep only their long form.\n"
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
	{"dry-run", no_argument, NULL, 'n'},
	{"estimate", no_argument, NULL, 'E'},
	{"help", no_argument, NULL, 'h'},
	{"max-text-bytes", required_argument, NULL, 'N'},
	{"merge-stages", required_argument, NULL, 'M'},
	{"model", required_argument, NULL, 'm'},
	{"preflight", no_argument, NULL, 'P'},
	{"prompt", required_argument, NULL, 'p'},
	{"prompt-version", no_argument, NULL, 'G'},
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

/*
 * Sets the option ch that takes a value (arg).  Returns 0, -1 for a bad
 * value (logged), or 1 when ch is not such an option.
 */
static int
set_value(struct config *c, int ch, const char *arg)
{
	/* The options that take a whole number, with their ranges. */
	static const struct {
		int ch;
		const char *name;
		long long min, max;
	} whole[] = {{'k', "--breaker", 1, 1000000},
	    {'N', "--max-text-bytes", 64, 1 << 24}, {'r', "--rpm", 0, 1000000},
	    {'t', "--timeout", 1, 86400}};
	long long *number[] = {&c->breaker, &c->max_text, &c->rpm,
	    &c->timeout_s};
	const char **text = ch == 'B' ? &c->base_url : ch == 'm' ? &c->model :
	    ch == 'p' ? &c->prompt_file : ch == 's' ? &c->schema_file :
	    ch == 'M' ? &c->merge_dir : NULL;
	size_t i;

	if (text != NULL) {
		*text = arg;
		return 0;
	}
	for (i = 0; i < sizeof(whole) / sizeof(whole[0]); i++)
		if (ch == whole[i].ch)
			return dt_parse_ll(whole[i].name, arg, whole[i].min,
			    whole[i].max, number[i]);
	if (ch == 'a')
		return dt_az_parse_choice("--api", arg, "agent", "chat",
		    &c->api);
	if (ch == 'b')
		return dt_parse_double("--budget", arg, 0, 1e9, &c->budget);
	if (ch == 'x')
		return dt_az_parse_choice("--too-large", arg, "cut", "reject",
		    &c->reject_large);
	return 1;
}

/* Parses the command line over the environment.  Returns optind or -1. */
static int
read_flags(struct config *c, int argc, char **argv, int *exit_now)
{
	int ch, rc, *mode;

	*exit_now = -1;
	/* getopt's own messages name argv[0]: the name, not the path. */
	argv[0] = (char *)dt_prog();
	/*
	 * One meaning per letter in every program (docs/options.md): the
	 * long options whose letter is another's have none here; their
	 * values above are only names.
	 */
	while ((ch = getopt_long(argc, argv, "B:hk:nqs:Vvw",
	    longopts, NULL)) != -1) {
		if ((rc = set_value(c, ch, optarg)) < 0)
			goto usage;
		if (rc == 0)
			continue;
		/* The switches that turn something on. */
		mode = ch == 'C' ? &c->check_config : ch == 'n' ? &c->dry_run :
		    ch == 'E' ? &c->estimate : ch == 'G' ? &c->show_version :
		    ch == 'P' ? &c->preflight :
		    ch == 'w' ? &c->web_search : NULL;
		if (mode != NULL) {
			*mode = 1;
			continue;
		}
		switch (ch) {
		case 'h':
			*exit_now = dt_cli_help(usage_text);
			return -1;
		case 'q':
		case 'v':
			dt_log_adjust(ch == 'v' ? 1 : -1);
			break;
		case 'V':
			dt_cli_version();
			*exit_now = dt_cli_close_stdout(DT_EXIT_OK);
			return -1;
		default:
			goto usage;
		}
	}
	return optind;
usage:
	*exit_now = dt_cli_usage_error(NULL);
	return -1;
}

/*
 * Why the text t cannot be analyzed, or NULL when it can.  *skip is set
 * when that is ordinary data (no text: a sticker, a photo, a join), not
 * a bad record.
 */
static const char *
bad_text(const json_t *t, int *skip)
{
	const char *s = json_string_value(t);
	size_t len = json_string_length(t);

	*skip = 1;
	if (json_is_null(t))
		return "the text is null";
	if (json_is_string(t) && len == 0)
		return "the text is empty";
	if (json_is_string(t) && strspn(s, " \t\r\n") == len)
		return "the text is blank";
	*skip = 0;
	if (t == NULL)
		return "missing text";
	if (!json_is_string(t))
		return "text must be a string";
	if (memchr(s, '\0', len) != NULL)
		return "text contains a NUL character";
	return NULL;
}

/*
 * A record with nothing to analyze is ordinary data, not a failure: it
 * gets "skip" and no call is made; dt-store settles its row as skipped.
 */
static void
skip(struct run *x, json_t *rec, const char *id, const char *why)
{
	dt_debug("%s: id %s: %s: skipped", x->where, id, why);
	x->n.skipped++;
	json_object_set_new(rec, "skip", json_pack("{ssss}", "reason",
	    "no_text", "message", why));
}

/*
 * A text over DT_MAX_TEXT_BYTES: rejected (-1, the error set on rec), or
 * cut on a character boundary with a visible marker into *cut, a new
 * string the caller frees, and noted in rec's text_cut (0).
 */
static int
cut_text(struct run *x, json_t *rec, const char *idbuf, const char *text,
    size_t len, char **cut)
{
	size_t keep;

	if (x->c.reject_large) {
		dt_warn("%s: id %s: text of %zu bytes is over the limit of %lld",
		    x->where, idbuf, len, x->c.max_text);
		dt_az_set_error(x, rec, K_TOOLARGE, 0, DT_EXIT_PARTIAL,
		    "text of %zu bytes is over the limit of %lld bytes", len,
		    x->c.max_text);
		return -1;
	}
	keep = utf8_cut(text, len, (size_t)x->c.max_text);
	if (asprintf(cut, "%.*s\n[... cut by dt-analyze: %zu of %zu bytes "
	    "kept]", (int)keep, text, keep, len) < 0) {
		*cut = NULL;
		dt_error("out of memory");
		dt_az_set_error(x, rec, K_UNAVAIL, 1, DT_EXIT_TEMPFAIL,
		    "out of memory");
		return -1;
	}
	json_object_set_new(rec, "text_cut", json_pack("{s:I, s:I}",
	    "kept_bytes", (json_int_t)keep, "total_bytes", (json_int_t)len));
	return 0;
}

/* What prepare() found a record to need. */
enum { WRITE, CALL };

/*
 * Handles one record up to its call.  Returns WRITE when rec is to be
 * written as it is now, or CALL with t filled in (t->rec still to be
 * set by the caller) for a record to be analyzed.
 */
static int
prepare(struct run *x, json_t *rec, struct dt_az_item *t)
{
	json_t *id, *tx, *pv;
	const char *why;
	int skipped;

	x->n.records++;
	dt_az_take_run_id(x, rec);
	if (json_object_get(rec, "stage") != NULL &&
	    json_object_get(rec, "id") == NULL) {
		x->n.passed++;
		return WRITE;
	}
	if (dt_record_id(rec, &id, &why) < 0) {
		dt_warn("%s: %s", x->where, why);
		dt_az_set_error(x, rec, K_BAD, 0, DT_EXIT_DATAERR, "%s", why);
		return WRITE;
	}
	dt_record_id_str(id, t->id, sizeof(t->id));
	pv = json_object_get(rec, "prompt_version");
	if (json_object_get(rec, "error") != NULL ||
	    json_object_get(rec, "skip") != NULL ||
	    (json_object_get(rec, "analysis") != NULL && json_is_string(pv) &&
	    strcmp(json_string_value(pv), x->version) == 0)) {
		x->n.passed++;
		return WRITE;
	}
	tx = json_object_get(rec, "text");
	if ((why = bad_text(tx, &skipped)) != NULL && skipped)
		skip(x, rec, t->id, why);
	else if (why != NULL) {
		dt_warn("%s: id %s: %s", x->where, t->id, why);
		dt_az_set_error(x, rec, K_BAD, 0, DT_EXIT_DATAERR, "%s", why);
	}
	if (why != NULL)
		return WRITE;
	t->text = json_string_value(tx);
	t->len = json_string_length(tx);
	t->cut = NULL;
	dt_log_text("text", t->text);
	if (t->len > (size_t)x->c.max_text) {
		if (cut_text(x, rec, t->id, t->text, t->len, &t->cut) < 0)
			return WRITE;
		t->text = t->cut;
		t->len = strlen(t->cut);
	}
	snprintf(t->where, sizeof(t->where), "%s", x->where);
	return CALL;
}

/*
 * 1 in a dt-fanout job: its input is one group that ends, written by
 * parallel a piece at a time, so a group waits for it to be full or to
 * end rather than going out at the first pause.
 */
static int fanout_job;

/*
 * While waiting for a call slot: the run is stopping (a signal, the stop
 * file) or its circuit is open, so this worker will make no call and
 * needs no slot.
 */
static int
no_call_coming(void *arg)
{
	struct run *x = arg;
	const char *stop = x->c.stop_file;

	return dt_az_signal || (stop != NULL && access(stop, F_OK) == 0) ||
	    dt_shared_breaker(x->sh) != DT_BREAKER_CLOSED;
}

/*
 * Under dt-fanout, which starts more workers than may call at once, a
 * worker takes a call slot (DT_FANOUT_SLOTS of them, in the shared
 * state) before its records, and keeps it until it exits: a started
 * worker waits with its few records, and none queue behind a slow call.
 * Returns 0, or -1 after an error line.
 */
static int
call_slot(struct run *x)
{
	long long slots;
	char err[512];

	if (x->sh == NULL || getenv("DT_FANOUT_SLOTS") == NULL)
		return 0;
	if (dt_env_ll("DT_FANOUT_SLOTS", 0, 1, 100000, &slots) < 0)
		return -1;
	fanout_job = 1;
	if (dt_shared_call_slot(x->sh, (int)slots, no_call_coming, x, err,
	    sizeof(err)) < 0) {
		dt_error("%s", err);
		return -1;
	}
	return 0;
}


/* A line that is not a JSON object: a bad_record error, or NULL. */
static json_t *
bad_line(struct run *x, struct dt_reader *r)
{
	x->n.records++;
	x->n.bad++;
	dt_az_count_error(x, K_BAD, DT_EXIT_DATAERR);
	return dt_record_bad_line(x->where, dt_reader_error(r),
	    dt_reader_excerpt(r));
}

/*
 * The read-process-write loop: every line becomes one output line, in
 * input order, until the input ends, a signal arrives or stdout fails.
 * Records to analyze wait in a group of up to DT_PACK; the group is
 * sent once it is full or no more input is ready: it never waits for
 * input once it holds a record.
 */
static void
read_records(struct run *x, struct dt_reader *r, struct dt_az_group *g)
{
	json_t *rec;
	int rc;

	while (!dt_az_signal && dt_az_out_failed == 0) {
		if (g->ncalls > 0 && (g->ncalls == x->c.pack ||
		    g->nheld == g->cap || (!fanout_job &&
		    !dt_reader_wait(r, 0)))) {
			dt_az_flush(x, g);
			continue;
		}
		rc = dt_reader_next(r, &rec);
		if (rc == DT_NDJSON_EOF)
			break;
		if (rc == DT_NDJSON_ERROR) {
			x->status = dt_exit_worse(x->status, DT_EXIT_DATAERR);
			continue;
		}
		x->where = dt_reader_where(r);
		if (rc == DT_NDJSON_BAD) {
			if ((rec = bad_line(x, r)) != NULL && x->c.dry_run) {
				json_decref(rec);
				rec = NULL;
			}
			if (rec != NULL)
				dt_az_hold(x, g, rec, 0);
		} else
			dt_az_hold(x, g, rec, prepare(x, rec, &g->calls[g->ncalls]) ==
			    CALL);
	}
	/* Records read before a signal still get their lines. */
	if (g->ncalls > 0)
		dt_az_flush(x, g);
}

/*
 * Reads the configuration: the environment, the command line over it,
 * then the key.  Returns the index of the first file argument, or -1
 * with *exit_now set to the exit status.
 */
static int
configure(struct config *c, int argc, char **argv, int *exit_now)
{
	int first;

	*exit_now = DT_EXIT_CONFIG;
	dt_config_register_secrets();
	if (dt_az_read_env(c) < 0)
		return -1;
	if ((first = read_flags(c, argc, argv, exit_now)) < 0)
		return -1;
	if (c->model == NULL)
		c->model = c->api == DT_API_CHAT ? "sonar" : "perplexity/sonar";
	if (c->show_version && (first < argc || c->dry_run ||
	    c->check_config || c->preflight || c->estimate)) {
		*exit_now = dt_cli_usage_error("--prompt-version reads no files "
		    "and goes with no other mode");
		return -1;
	}
	if ((c->preflight || c->estimate) && (first < argc || c->dry_run ||
	    c->check_config || (c->preflight && c->estimate))) {
		*exit_now = dt_cli_usage_error("--preflight and --estimate read "
		    "no files and go with no other mode");
		return -1;
	}
	*exit_now = DT_EXIT_CONFIG;
	if (dt_env_secret("PERPLEXITY_API_KEY", &c->key) < 0)
		return -1;
	if (c->key == NULL && !c->dry_run && !c->estimate &&
	    !c->show_version && c->merge_dir == NULL) {
		dt_error("PERPLEXITY_API_KEY (or PERPLEXITY_API_KEY_FILE) is "
		    "not set");
		return -1;
	}
	return first;
}

int
main(int argc, char **argv)
{
	static struct run x;
	struct dt_reader *r = NULL;
	struct dt_az_group g;
	int first, exit_now, interrupted = 0;

	memset(&g, 0, sizeof(g));
	if (dt_log_init("dt-analyze") < 0 || dt_watch_start() < 0)
		return DT_EXIT_CONFIG;
	dt_out_init();
	if ((first = configure(&x.c, argc, argv, &exit_now)) < 0)
		return exit_now;
	if (x.c.merge_dir != NULL) {
		x.status = dt_az_merge_stages(x.c.merge_dir,
		    dt_az_open_state(&x) == 0 ? x.sh : NULL);
		goto out;
	}
	/*
	 * Only a worker that takes its configuration touches the fan-out's
	 * files: one refusing it may still be starting when parallel has
	 * given up and dt-fanout removed them.
	 */
	dt_az_open_stage_file();
	srandom((unsigned)time(NULL) ^ ((unsigned)getpid() << 16));
	x.status = DT_EXIT_OK;
	if (dt_az_setup(&x) < 0) {
		x.status = DT_EXIT_CONFIG;
		goto out;
	}
	/* The whole configuration is read and checked; nothing was sent. */
	if (x.c.check_config)
		goto out;
	if (x.c.show_version) {
		printf("%s\n", x.version);
		goto out;
	}
	if (x.c.estimate || x.c.preflight) {
		x.status = x.c.estimate ? dt_az_estimate(&x) :
		    dt_az_preflight(&x);
		goto out;
	}
	if (!x.c.dry_run && dt_az_open_state(&x) < 0) {
		x.status = DT_EXIT_CONFIG;
		goto out;
	}
	dt_az_install_signals();
	if ((r = dt_reader_new(argv + first, argc - first,
	    (size_t)x.c.max_line)) == NULL) {
		dt_error("out of memory");
		x.status = DT_EXIT_TEMPFAIL;
		goto out;
	}
	dt_az_take_run_id(&x, NULL);
	if (dt_az_group_init(&g, x.c.pack) < 0) {
		dt_error("out of memory");
		x.status = DT_EXIT_TEMPFAIL;
		goto out;
	}
	if (call_slot(&x) < 0) {
		x.status = DT_EXIT_TEMPFAIL;
		goto out;
	}
	read_records(&x, r, &g);
	interrupted = dt_az_end_of_run(&x);
	dt_az_emit_stage(&x, x.status, dt_az_final_message(&x, interrupted),
	    interrupted);
	if (dt_az_out_failed != 0)
		x.status = dt_exit_worse(x.status, dt_az_out_failed);
out:
	dt_az_group_free(&g);
	dt_reader_free(r);
	dt_az_teardown(&x);
	dt_az_close_output();
	return dt_cli_close_stdout(x.status);
}
