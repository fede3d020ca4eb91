/*
 * libcheck: runs one lib function from the command line so the bats
 * tests can check it with exact output.  Used by t/0xx-lib-*.bats.
 *
 *   libcheck ll NAME VALUE MIN MAX         dt_parse_ll
 *   libcheck secret NAME                   dt_env_secret: prints length
 *   libcheck opts [option ...] [arg ...]   dt_opts_parse with a table of
 *                                          every type (X_* variables):
 *                                          prints the values
 *   libcheck shared NAME                   dt_env_shared (a number)
 *   libcheck log LEVEL MESSAGE [-v|-q ...] dt_log after registering the
 *                                          well-known secrets
 *   libcheck worse A B                     dt_exit_worse
 *   libcheck safe-url URL                  dt_http_safe_url
 *   libcheck backoff BASE CAP N [RA]       dt_http_backoff_ms, 1000 draws:
 *                                          prints min and max
 *   libcheck answer RESULT STATUS OUTAGES SPENT_MS
 *                                          dt_retry_answer and
 *                                          dt_retry_check (4 tries,
 *                                          base 100 ms, cap 1 s, 10 s in
 *                                          all): prints "answer retry
 *                                          gave_up"
 *   libcheck id JSON                       dt_record_id
 *   libcheck http [-sv] [-n TRIES] [-b BASE_MS] [-c CAP_MS] [-T TOTAL_MS]
 *            [-m MAX_BYTES] [-t TIMEOUT_MS] [-X METHOD] [-H HEADER]
 *            [-d BODY] URL                 dt_http_send: prints
 *                                          "result status tries bytes"
 *                                          then the body; -s: SIGTERM
 *                                          sets the request's cancel
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "config.h"
#include "exit.h"
#include "http.h"
#include "log.h"
#include "record.h"

static long long
num(const char *s)
{
	long long v;

	if (dt_parse_ll("argument", s, -(1LL << 62), 1LL << 62, &v) != 0)
		exit(DT_EXIT_USAGE);
	return v;
}

static volatile sig_atomic_t cancel;

static void
on_term(int sig)
{
	cancel = sig;
}

static int
http(int argc, char **argv)
{
	struct dt_http_policy pol = {.max_tries = 3, .base_ms = 100,
	    .cap_ms = 1000, .max_total_ms = 10000};
	struct dt_http_req req = {0};
	struct dt_http_resp resp = {0};
	const char *headers[16];
	struct dt_http *h;
	int c, nh = 0;

	optind = 2;
	dt_config_register_secrets();
	while ((c = getopt(argc, argv, "svn:b:c:T:m:t:X:H:d:")) != -1) {
		switch (c) {
		case 's':
			req.cancel = &cancel;
			dt_cli_catch_signals(on_term, 0);
			break;
		case 'v':
			dt_log_adjust(1);
			break;
		case 'n':
			pol.max_tries = (int)num(optarg);
			break;
		case 'b':
			pol.base_ms = (long)num(optarg);
			break;
		case 'c':
			pol.cap_ms = (long)num(optarg);
			break;
		case 'T':
			pol.max_total_ms = (long)num(optarg);
			break;
		case 'm':
			pol.max_response = (size_t)num(optarg);
			break;
		case 't':
			req.timeout_ms = (long)num(optarg);
			break;
		case 'X':
			req.method = optarg;
			break;
		case 'H':
			if (nh < 15)
				headers[nh++] = optarg;
			break;
		case 'd':
			req.body = optarg;
			req.body_len = strlen(optarg);
			break;
		default:
			return DT_EXIT_USAGE;
		}
	}
	if (optind != argc - 1)
		return DT_EXIT_USAGE;
	headers[nh] = NULL;
	req.headers = headers;
	req.url = argv[optind];
	if ((h = dt_http_new("fixture")) == NULL)
		return 70;
	dt_http_send(h, &req, &pol, &resp);
	printf("%d %ld %d %zu\n%s\n", resp.result, resp.status, resp.tries,
	    resp.len, resp.body ? resp.body : "");
	if (resp.result != DT_HTTP_OK)
		fprintf(stderr, "libcheck: %s\n", resp.error);
	dt_http_resp_clear(&resp);
	dt_http_free(h);
	return 0;
}

static void
verbosity(int argc, char **argv, int from)
{
	int i;

	for (i = from; i < argc; i++) {
		if (strcmp(argv[i], "-v") == 0)
			dt_log_adjust(1);
		else if (strcmp(argv[i], "-q") == 0)
			dt_log_adjust(-1);
	}
}

/* dt_opts_parse() over a table of every type; prints what it read. */
static int
opts(int argc, char **argv)
{
	long long count = 0, max_line = 0;
	double ratio = 0;
	int web = 0, lang = -1, dry = 0, check = 0, rc;
	const char *name = NULL;
	char *key = NULL;
	const struct dt_opt opt[] = {
		{'c', "count", "X_COUNT", DT_OPT_INT, &count, "5", 1, 10, "n",
		    "how many"},
		{'n', "dry-run", NULL, DT_OPT_SWITCH, &dry, NULL, 0, 0, NULL,
		    "change nothing"},
		{0, "ratio", "X_RATIO", DT_OPT_NUM, &ratio, "0.5", 0, 1, "r",
		    "a share"},
		{'w', "web", "X_WEB", DT_OPT_BOOL, &web, "0", 0, 0, NULL,
		    "search the web"},
		{0, "lang", "X_LANG", DT_OPT_CHOICE, &lang, "en", 0, 0,
		    "en|ru|de", "the language"},
		{'t', "name", "X_NAME", DT_OPT_TEXT, &name, NULL, 0, 0, "name",
		    "a name"},
		{.ch = 'L', .flag = "max-line", .env = "DT_MAX_LINE",
		    .type = DT_OPT_SHARED, .out = &max_line},
		{0, NULL, "X_KEY", DT_OPT_SECRET, &key, NULL, 0, 0, NULL,
		    "a secret"},
		{0, NULL, "X_LIMIT", DT_OPT_INT, &count, NULL, 1, 10, "n",
		    "a variable without a flag nor a default"},
	};
	const struct dt_cmd cmd = {"usage: libcheck opts [option ...]\n",
	    "The end.\n", opt, sizeof(opt) / sizeof(opt[0])};

	rc = dt_opts_parse(&cmd, argc, argv, &check);
	if (rc == 0)
		printf("count=%lld ratio=%g web=%d lang=%d name=%s "
		    "max_line=%lld key=%s dry=%d check=%d args=%d\n", count,
		    ratio, web, lang, name ? name : "(null)", max_line,
		    key ? "set" : "unset", dry, check, argc - optind);
	free(key);
	return rc;
}

int
main(int argc, char **argv)
{
	const char *cmd = argc > 1 ? argv[1] : "";

	if (dt_log_init("libcheck") != 0)
		return DT_EXIT_CONFIG;
	if (strcmp(cmd, "ll") == 0 && argc == 6) {
		long long v;

		if (dt_parse_ll(argv[2], argv[3], num(argv[4]), num(argv[5]),
		    &v) != 0)
			return DT_EXIT_CONFIG;
		printf("%lld\n", v);
	} else if (strcmp(cmd, "opts") == 0) {
		return opts(argc - 1, argv + 1);
	} else if (strcmp(cmd, "shared") == 0 && argc == 3) {
		long long v = 0;

		if (dt_env_shared(argv[2], &v) != 0)
			return DT_EXIT_CONFIG;
		printf("%lld\n", v);
	} else if (strcmp(cmd, "secret") == 0 && argc == 3) {
		char *s;

		if (dt_env_secret(argv[2], &s) != 0)
			return DT_EXIT_CONFIG;
		if (s == NULL)
			printf("unset\n");
		else
			printf("%zu bytes\n", strlen(s));
		/* Logged on purpose: the test checks it comes out redacted. */
		if (s != NULL)
			dt_info("the secret is %s", s);
		free(s);
	} else if (strcmp(cmd, "log") == 0 && argc >= 4) {
		long long l = num(argv[2]);

		verbosity(argc, argv, 4);
		dt_config_register_secrets();
		dt_log((int)l, "%s", argv[3]);
	} else if (strcmp(cmd, "worse") == 0 && argc == 4)
		printf("%d\n", dt_exit_worse((int)num(argv[2]),
		    (int)num(argv[3])));
	else if (strcmp(cmd, "safe-url") == 0 && argc == 3) {
		char buf[1024];

		dt_config_register_secrets();
		printf("%s\n", dt_http_safe_url(argv[2], buf, sizeof(buf)));
	} else if (strcmp(cmd, "backoff") == 0 && (argc == 5 || argc == 6)) {
		struct dt_http_policy pol = {.max_tries = 10,
		    .base_ms = (long)num(argv[2]), .cap_ms = (long)num(argv[3]),
		    .max_total_ms = 1000000};
		struct dt_http_resp resp = {.retry_after_ms = -1};
		long lo = -1, hi = -1, w;
		int i;

		if (argc == 6)
			resp.retry_after_ms = (long)num(argv[5]);
		for (i = 0; i < 1000; i++) {
			w = dt_http_backoff_ms(&pol, (int)num(argv[4]), &resp);
			if (lo < 0 || w < lo)
				lo = w;
			if (w > hi)
				hi = w;
		}
		printf("%ld %ld\n", lo, hi);
	} else if (strcmp(cmd, "answer") == 0 && argc == 6) {
		static const char *const names[] = {"ok", "outage", "setup",
		    "refused", "failed"};
		static const char *const gave_up[] = {"-", "tries", "time"};
		struct dt_http_policy pol = {.max_tries = 4, .base_ms = 100,
		    .cap_ms = 1000, .max_total_ms = 10000};
		struct dt_http_resp resp = {.result = (int)num(argv[2]),
		    .status = (long)num(argv[3]), .retry_after_ms = -1};
		struct dt_retry r;

		dt_retry_check(&pol, &resp, dt_retry_answer(&resp),
		    (int)num(argv[4]), num(argv[5]), &r);
		printf("%s %d %s\n", names[r.answer], r.retry,
		    gave_up[r.gave_up]);
	} else if (strcmp(cmd, "id") == 0 && argc == 3) {
		json_t *rec = json_loads(argv[2], 0, NULL), *id;
		const char *why;
		char buf[256];

		if (rec == NULL)
			return DT_EXIT_USAGE;
		if (dt_record_id(rec, &id, &why) != 0)
			printf("bad: %s\n", why);
		else
			printf("ok: %s\n", dt_record_id_str(id, buf,
			    sizeof(buf)));
		json_decref(rec);
	} else if (strcmp(cmd, "http") == 0)
		return http(argc, argv);
	else {
		fprintf(stderr, "libcheck: bad arguments\n");
		return DT_EXIT_USAGE;
	}
	return 0;
}
