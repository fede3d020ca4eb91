/*
 * dt-log: dt's log lines for the scripts and for programs that do not
 * write them.  dt-entrypoint and dt-fanout send their own lines, GNU
 * parallel's warnings and any stray line (a shell's error, a crash) on
 * stderr through it, so that under DT_LOG_FORMAT=json every line of a run
 * is one JSON object with the keys of lib/log.c (ts, prog, level, msg).
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <jansson.h>

#include "cli.h"
#include "config.h"
#include "exit.h"
#include "log.h"

static const char usage[] =
    "usage: dt-log [-hV] [-l level] [-p prog] message ...\n"
    "       dt-log -r [-l level] [-p prog]\n"
    "\n"
    "Writes the message on stderr as one line of dt's log format\n"
    "(DT_LOG_FORMAT: text \"prog: level: message\", or json), at a level\n"
    "DT_LOG_LEVEL lets through, with every configured secret redacted.\n"
    "\n"
    "  -h, --help         print this help and exit\n"
    "  -l, --level level  error, warning, info, debug or trace (error)\n"
    "  -p, --prog name    the program the line is from (dt-log)\n"
    "  -r, --relay        copy stdin to stderr line by line: a JSON object\n"
    "                     goes on as it is, \"name: level: text\" (GNU\n"
    "                     parallel's \"parallel: Warning: ...\") becomes a\n"
    "                     line of name at that level, \"name: text\" a line\n"
    "                     of name at the level of -l, and any other line a\n"
    "                     line of prog; with DT_LOG_FORMAT=text lines go on\n"
    "                     as they are\n"
    "  -V, --version      print the version and exit\n"
    "\n"
    "Exit status: 0; 64 for a bad command line; 78 for a bad DT_LOG_LEVEL\n"
    "or DT_LOG_FORMAT (the message is still written, as text).\n";

/* Is name a program name ("parallel", "dt-fetch", "/usr/bin/x")? */
static int
prog_name(const char *s, size_t n)
{
	size_t i;

	if (n == 0 || n > 64)
		return 0;
	for (i = 0; i < n; i++)
		if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= 'A' &&
		    s[i] <= 'Z') || (s[i] >= '0' && s[i] <= '9') ||
		    strchr("-_./", s[i]) != NULL))
			return 0;
	return 1;
}

/* Writes the whole line and its newline with one write(2). */
static void
put_line(char *line, size_t len)
{
	size_t off = 0;

	line[len] = '\n';
	while (off < len + 1) {
		ssize_t n = write(STDERR_FILENO, line + off, len + 1 - off);

		if (n <= 0)
			break;
		off += (size_t)n;
	}
	line[len] = '\0';
}

/* One line of the relay (line[len] is the NUL getline left). */
static void
relay_line(char *line, size_t len, const char *prog, int level, int json)
{
	char name[65], *colon, *rest, *word_end;
	json_t *o;
	int l;

	if (len > 0 && line[len - 1] == '\r')
		line[--len] = '\0';
	if (!json) {
		put_line(line, len);
		return;
	}
	if (line[0] == '{' && (o = json_loadb(line, len, 0, NULL)) != NULL) {
		int obj = json_is_object(o);

		json_decref(o);
		if (obj) {
			put_line(line, len);
			return;
		}
	}
	if ((colon = strstr(line, ": ")) != NULL &&
	    prog_name(line, (size_t)(colon - line))) {
		memcpy(name, line, (size_t)(colon - line));
		name[colon - line] = '\0';
		rest = colon + 2;
		/* "name: level: text", or "name: text". */
		if ((word_end = strchr(rest, ':')) != NULL &&
		    word_end - rest < 16) {
			char word[16];

			memcpy(word, rest, (size_t)(word_end - rest));
			word[word_end - rest] = '\0';
			if ((l = dt_log_level_of(word)) >= 0) {
				rest = word_end + 1;
				rest += strspn(rest, " ");
				dt_log_as(name, l, rest);
				return;
			}
		}
		dt_log_as(name, level, rest);
		return;
	}
	dt_log_as(prog, level, line);
}

static int
relay(const char *prog, int level)
{
	const char *format = getenv("DT_LOG_FORMAT");
	int json = format != NULL && strcmp(format, "json") == 0;
	char *line = NULL;
	size_t cap = 0;
	ssize_t n;

	/* getline() leaves room for a NUL, which put_line() turns into \n. */
	while ((n = getline(&line, &cap, stdin)) > 0) {
		if (line[n - 1] == '\n')
			line[--n] = '\0';
		relay_line(line, (size_t)n, prog, level, json);
	}
	free(line);
	return DT_EXIT_OK;
}

int
main(int argc, char **argv)
{
	static const struct option longopts[] = {
		{"help", no_argument, NULL, 'h'},
		{"level", required_argument, NULL, 'l'},
		{"prog", required_argument, NULL, 'p'},
		{"relay", no_argument, NULL, 'r'},
		{"version", no_argument, NULL, 'V'},
		{NULL, 0, NULL, 0}
	};
	const char *prog = "dt-log";
	int c, level = DT_LOG_ERROR, do_relay = 0, status;
	char *msg;
	size_t len = 0;

	status = dt_log_init("dt-log") < 0 ? DT_EXIT_CONFIG : DT_EXIT_OK;
	while ((c = getopt_long(argc, argv, "+hl:p:rV", longopts, NULL)) !=
	    -1) {
		switch (c) {
		case 'h':
			return dt_cli_help(usage);
		case 'l':
			if ((level = dt_log_level_of(optarg)) < 0)
				return dt_cli_usage_error("--level: '%s' is not "
				    "one of error, warning, info, debug, trace",
				    optarg);
			break;
		case 'p':
			prog = optarg;
			break;
		case 'r':
			do_relay = 1;
			break;
		case 'V':
			dt_cli_version();
			return dt_cli_close_stdout(DT_EXIT_OK);
		default:
			return dt_cli_usage_error(NULL);
		}
	}
	if (do_relay && optind < argc)
		return dt_cli_usage_error("--relay takes no message");
	if (!do_relay && optind == argc)
		return dt_cli_usage_error("no message");
	dt_config_register_secrets();
	if (do_relay)
		return dt_exit_worse(status, relay(prog, level));
	for (c = optind; c < argc; c++)
		len += strlen(argv[c]) + 1;
	if ((msg = malloc(len)) == NULL) {
		dt_error("out of memory");
		return DT_EXIT_TEMPFAIL;
	}
	/* The words joined by spaces, as echo would. */
	len = 0;
	for (c = optind; c < argc; c++) {
		size_t n = strlen(argv[c]);

		if (c > optind)
			msg[len++] = ' ';
		memcpy(msg + len, argv[c], n);
		len += n;
	}
	msg[len] = '\0';
	dt_log_as(prog, level, msg);
	free(msg);
	return status;
}
