/*
 * ndjson.c: streaming NDJSON reader and writer.
 *
 * The reader does its own buffering over read(2) so that it can tell
 * whether a line is already buffered (dt_reader_wait) and so that a
 * line longer than the limit is skipped without ever being held whole.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "exit.h"
#include "log.h"
#include "ndjson.h"
#include "utf8.h"

#define INBUF_SIZE ((size_t)64 * 1024)
#define EXCERPT_BYTES 256

struct dt_reader {
	char **paths;
	int npaths;
	int next_path;          /* index of the next file to open */
	int fd;                 /* -1 when no file is open */
	const char *name;       /* current file's name for messages */
	int eof;                /* current file reached end of input */
	size_t max_line;

	char *in;               /* read(2) buffer */
	size_t in_pos, in_len;

	char *line;             /* current line, max_line + 1 bytes */
	size_t line_len;

	unsigned long lineno;
	unsigned long nrecords, nbad, nfail;
	char where[512];
	char error[256];
	char excerpt[EXCERPT_BYTES * 3 + 1];
};

struct dt_reader *
dt_reader_new(char **paths, int n, size_t max_line)
{
	struct dt_reader *r;

	if ((r = calloc(1, sizeof(*r))) == NULL)
		return NULL;
	r->paths = paths;
	r->npaths = n;
	r->fd = -1;
	r->max_line = max_line ? max_line : DT_NDJSON_MAX_LINE_DEFAULT;
	r->in = malloc(INBUF_SIZE);
	r->line = malloc(r->max_line + 1);
	if (r->in == NULL || r->line == NULL) {
		dt_reader_free(r);
		return NULL;
	}
	return r;
}

void
dt_reader_free(struct dt_reader *r)
{
	if (r == NULL)
		return;
	if (r->fd > STDIN_FILENO)
		close(r->fd);
	free(r->in);
	free(r->line);
	free(r);
}

/* Opens the next input.  Returns 1, 0 at the end, or -1 (logged). */
static int
open_next(struct dt_reader *r)
{
	const char *path;

	if (r->npaths == 0) {
		if (r->next_path > 0)
			return 0;
		path = "-";
	} else if (r->next_path >= r->npaths)
		return 0;
	else
		path = r->paths[r->next_path];
	r->next_path++;
	r->lineno = 0;
	r->eof = 0;
	r->in_pos = r->in_len = 0;
	if (strcmp(path, "-") == 0) {
		r->fd = STDIN_FILENO;
		r->name = "<stdin>";
		return 1;
	}
	r->name = path;
	if ((r->fd = open(path, O_RDONLY | O_CLOEXEC)) < 0) {
		snprintf(r->where, sizeof(r->where), "%s", path);
		dt_error("%s: %s", path, strerror(errno));
		r->nfail++;
		return -1;
	}
	return 1;
}

static void
close_current(struct dt_reader *r)
{
	if (r->fd > STDIN_FILENO)
		close(r->fd);
	r->fd = -1;
}

/* Refills the input buffer.  Returns bytes read, 0 at EOF, -1 on error. */
static ssize_t
fill(struct dt_reader *r)
{
	ssize_t n;

	do
		n = read(r->fd, r->in, INBUF_SIZE);
	while (n < 0 && errno == EINTR);
	r->in_pos = 0;
	r->in_len = n > 0 ? (size_t)n : 0;
	return n;
}

/*
 * Reads one line into r->line.  Returns 1 with a line (possibly too
 * long: *toolong set, line holds its first max_line bytes), 0 at the end
 * of the file, -1 on a read error (logged).
 */
static int
read_line(struct dt_reader *r, int *toolong)
{
	int got = 0;

	r->line_len = 0;
	*toolong = 0;
	for (;;) {
		char *nl;
		size_t avail, take;

		if (r->in_pos == r->in_len) {
			ssize_t n;

			if (r->eof)
				return got;
			if ((n = fill(r)) < 0) {
				dt_error("%s: %s", r->name, strerror(errno));
				r->nfail++;
				return -1;
			}
			if (n == 0) {
				r->eof = 1;
				return got;
			}
		}
		got = 1;
		avail = r->in_len - r->in_pos;
		nl = memchr(r->in + r->in_pos, '\n', avail);
		take = nl ? (size_t)(nl - (r->in + r->in_pos)) : avail;
		if (r->line_len + take > r->max_line) {
			size_t room = r->max_line - r->line_len;

			memcpy(r->line + r->line_len, r->in + r->in_pos, room);
			r->line_len += room;
			*toolong = 1;
		} else {
			memcpy(r->line + r->line_len, r->in + r->in_pos, take);
			r->line_len += take;
		}
		r->in_pos += take;
		if (nl != NULL) {
			r->in_pos++;
			return 1;
		}
	}
}

/* Copies up to EXCERPT_BYTES of the line as valid UTF-8. */
static void
make_excerpt(struct dt_reader *r)
{
	const unsigned char *s = (const unsigned char *)r->line;
	size_t i = 0, o = 0, lim = r->line_len, n;

	if (lim > EXCERPT_BYTES)
		lim = EXCERPT_BYTES;
	while (i < lim) {
		n = utf8_seq(s + i, r->line_len - i);
		if (n == 0) {
			memcpy(r->excerpt + o, "\xef\xbf\xbd", 3);
			o += 3;
			i++;
			continue;
		}
		if (i + n > lim)
			break;
		memcpy(r->excerpt + o, s + i, n);
		o += n;
		i += n;
	}
	r->excerpt[o] = '\0';
}

static int
bad(struct dt_reader *r, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

static int
bad(struct dt_reader *r, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(r->error, sizeof(r->error), fmt, ap);
	va_end(ap);
	/*
	 * Jansson quotes the input near an error cut at a byte count, which
	 * can split a UTF-8 sequence; the reason must stay valid UTF-8 to
	 * travel in an error record.
	 */
	r->error[utf8_check(r->error, strlen(r->error))] = '\0';
	make_excerpt(r);
	r->nbad++;
	dt_warn("%s: %s", r->where, r->error);
	return DT_NDJSON_BAD;
}

static int
blank(const char *s, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++)
		if (s[i] != ' ' && s[i] != '\t' && s[i] != '\r')
			return 0;
	return 1;
}

static const char *
type_name(const json_t *v)
{
	switch (json_typeof(v)) {
	case JSON_ARRAY:
		return "an array";
	case JSON_STRING:
		return "a string";
	case JSON_INTEGER:
	case JSON_REAL:
		return "a number";
	case JSON_TRUE:
	case JSON_FALSE:
		return "a boolean";
	case JSON_NULL:
		return "null";
	default:
		return "an object";
	}
}

/*
 * The length of a UTF-8 byte order mark (EF BB BF) at the start of the
 * n bytes at s: 3, or 0 when there is none.  Editors on Windows put one
 * at the start of a file; the reader skips it on an input's first line.
 */
static size_t
bom_len(const char *s, size_t n)
{
	return n >= 3 && memcmp(s, "\xEF\xBB\xBF", 3) == 0 ? 3 : 0;
}

/*
 * Reads the next line that is not blank: DT_NDJSON_RECORD with *line
 * and *len set (borrowed, without the newline), or DT_NDJSON_BAD for a
 * line too long or not UTF-8, DT_NDJSON_EOF, DT_NDJSON_ERROR.
 */
static int
next_line(struct dt_reader *r, const char **line, size_t *len)
{
	size_t off;
	int toolong, rc;

	*line = NULL;
	*len = 0;
	r->error[0] = '\0';
	r->excerpt[0] = '\0';
	for (;;) {
		if (r->fd < 0) {
			rc = open_next(r);
			if (rc == 0)
				return DT_NDJSON_EOF;
			if (rc < 0)
				return DT_NDJSON_ERROR;
		}
		rc = read_line(r, &toolong);
		if (rc < 0) {
			close_current(r);
			return DT_NDJSON_ERROR;
		}
		if (rc == 0) {
			close_current(r);
			continue;
		}
		r->lineno++;
		snprintf(r->where, sizeof(r->where), "%s:%lu", r->name,
		    r->lineno);
		if (r->lineno == 1 && (off = bom_len(r->line,
		    r->line_len)) > 0) {
			r->line_len -= off;
			memmove(r->line, r->line + off, r->line_len);
		}
		if (toolong)
			return bad(r, "line too long (limit %zu bytes)",
			    r->max_line);
		if (blank(r->line, r->line_len))
			continue;
		if ((off = utf8_check(r->line, r->line_len)) != r->line_len)
			return bad(r, "not valid UTF-8 (byte %zu)", off + 1);
		*line = r->line;
		*len = r->line_len;
		return DT_NDJSON_RECORD;
	}
}

/* Parses the line next_line() returned into *rec. */
static int
parse_line(struct dt_reader *r, json_t **rec)
{
	json_error_t jerr;
	json_t *v;
	int rc;

	*rec = NULL;
	v = json_loadb(r->line, r->line_len, JSON_ALLOW_NUL | JSON_DECODE_ANY,
	    &jerr);
	if (v == NULL)
		return bad(r, "invalid JSON: %s (column %d)", jerr.text,
		    jerr.column);
	if (!json_is_object(v)) {
		rc = bad(r, "not a JSON object (got %s)", type_name(v));
		json_decref(v);
		return rc;
	}
	r->nrecords++;
	*rec = v;
	return DT_NDJSON_RECORD;
}

int
dt_reader_next(struct dt_reader *r, json_t **rec)
{
	const char *line;
	size_t len;
	int rc;

	*rec = NULL;
	if ((rc = next_line(r, &line, &len)) != DT_NDJSON_RECORD)
		return rc;
	return parse_line(r, rec);
}

int
dt_reader_wait(struct dt_reader *r, int timeout_ms)
{
	struct pollfd pfd;
	int n;

	if (r->fd < 0 || r->in_pos < r->in_len || r->eof)
		return 1;
	pfd.fd = r->fd;
	pfd.events = POLLIN;
	do
		n = poll(&pfd, 1, timeout_ms);
	while (n < 0 && errno == EINTR);
	return n != 0;
}

const char *
dt_reader_where(const struct dt_reader *r)
{
	return r->where;
}

const char *
dt_reader_error(const struct dt_reader *r)
{
	return r->error;
}

const char *
dt_reader_excerpt(const struct dt_reader *r)
{
	return r->excerpt;
}

unsigned long
dt_reader_nrecords(const struct dt_reader *r)
{
	return r->nrecords;
}

unsigned long
dt_reader_nbad(const struct dt_reader *r)
{
	return r->nbad;
}

unsigned long
dt_reader_nfail(const struct dt_reader *r)
{
	return r->nfail;
}

static int out_status;

void
dt_out_init(void)
{
	signal(SIGPIPE, SIG_IGN);
}

int
dt_out_status(void)
{
	return out_status;
}

int
dt_emit(json_t *rec)
{
	char *s, *p;
	size_t len;

	if (out_status != 0)
		return -1;
	if ((s = json_dumps(rec, DT_LINE_FLAGS)) == NULL) {
		dt_error("cannot encode a record (out of memory)");
		out_status = DT_EXIT_IOERR;
		return -1;
	}
	/*
	 * The newline goes in the same write(2) so a line is never split
	 * from its end, and lines of up to PIPE_BUF bytes stay whole even
	 * when several processes share the pipe.
	 */
	len = strlen(s);
	s[len] = '\n';
	p = s;
	len++;
	while (len > 0) {
		ssize_t n = write(STDOUT_FILENO, p, len);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			if (errno == EPIPE)
				out_status = DT_EXIT_PIPE;
			else {
				dt_error("cannot write standard output: %s",
				    strerror(errno));
				out_status = DT_EXIT_IOERR;
			}
			free(s);
			return -1;
		}
		p += n;
		len -= (size_t)n;
	}
	free(s);
	return 0;
}
