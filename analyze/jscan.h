/*
 * jscan.h: dt-analyze's JSON scanner.
 *
 * Jansson reads JSON a byte at a time through several calls and copies
 * every byte on its own: reading a response of 750 bytes took about
 * 130,000 instructions, a third of all a record cost.  This scanner
 * checks JSON text as strictly as json_loadb(..., 0) does, at a few
 * instructions a byte, and reads what dt-analyze needs straight from
 * the text.  It gives up (-1) on anything it does not take: invalid
 * JSON, a key holding an escape, nesting deeper than JS_DEPTH, a
 * number of more than 63 characters or out of range, \u0000.  The
 * Jansson reader then reads the text instead, with the same results
 * and Jansson's error messages.  t/unit/analyze_json.c compares the
 * two.
 *
 * The js_value() family checks text; the js_walk_*() family and the
 * helpers after it read text that js_value() has already accepted, so
 * they check nothing again.
 */
#ifndef DT_ANALYZE_JSCAN_H
#define DT_ANALYZE_JSCAN_H

#include <stddef.h>

#define JS_DEPTH 64

struct js_scan {
	const char *p, *end;
	int depth;
};

/* A value in the text; for a string, its content between the quotes. */
struct js_span {
	const char *s;
	size_t n;
	int esc;                /* a string with escapes in it */
};

static inline void
js_ws(struct js_scan *s)
{
	while (s->p < s->end && (*s->p == ' ' || *s->p == '\n' ||
	    *s->p == '\r' || *s->p == '\t'))
		s->p++;
}

/*
 * Walks the members of an object (or the items of an array) that the
 * scanner has checked: each call to js_walk_next() gives the next key
 * (objects) and value (as the text it spans), 1 while there is one,
 * then 0.
 */
struct js_walk {
	struct js_scan s;
	char close;
	int started;
};

/* Reads the string at s->p (a '"'); sp gets its content. */
int js_string(struct js_scan *s, struct js_span *sp);

/*
 * Decodes a string js_string() accepted into out (sp->n + 1 bytes: a
 * decoded string is never longer).  Returns its length; out ends in NUL.
 */
size_t js_decode(const struct js_span *sp, char *out);

/* A new copy of the decoded string sp, or NULL when out of memory. */
char *js_span_dup(const struct js_span *sp);

/*
 * Reads the number at s->p.  *real tells a number with a fraction or an
 * exponent (Jansson's real) from an integer.  With want set, the value
 * goes to *iv or *dv.  A number out of range fails, as in Jansson; only
 * one with an exponent or of 19 digits or more can be.
 */
int js_number(struct js_scan *s, int want, int *real, long long *iv,
    double *dv);

/* Reads the literal w (true, false, null) of n bytes at s->p. */
int js_literal(struct js_scan *s, const char *w, size_t n);

/* Reads white space, then ',' (1, more to come) or close (0, the end). */
int js_more(struct js_scan *s, char close);

/* Reads a member's key and the ':' after it. */
int js_key(struct js_scan *s, struct js_span *k);

/*
 * Checks the value at s->p and moves past it.  Returns 0, or -1 on
 * anything the scanner does not take (above).
 */
int js_value(struct js_scan *s);

/*
 * Skips the string at p (a '"'), in text the scanner has checked (so the
 * closing quote is there), and returns the position after it; sp gets
 * its content.
 */
const char *js_skip_string(const char *p, struct js_span *sp);

/* Skips the value at s->p, in text the scanner has checked. */
void js_skip_value(struct js_scan *s);

/* Starts a walk over v, which must begin with open ('{' or '['). */
int js_walk_begin(struct js_walk *w, const struct js_span *v, char open);

/* The next member: 1 with k (objects only) and v set, 0 at the end. */
int js_walk_next(struct js_walk *w, struct js_span *k, struct js_span *v);

/*
 * Finds the members keys[0..n-1] of the object v in one walk: vals[i]
 * gets the value of the last member named keys[i] (as json_object_get
 * finds it), or s NULL when there is none.  Returns 0, or -1 when v is
 * no object.
 */
int js_pick(const struct js_span *v, const char *const *keys,
    struct js_span *vals, int n);

/* The value of the last member key of the object v, as json_object_get. */
int js_get(const struct js_span *v, const char *key, struct js_span *out);

/* The string v (a value's text) in *sp; -1 when v is no string. */
int js_as_string(const struct js_span *v, struct js_span *sp);

/* A new copy of the string v, or NULL when v is no string. */
char *js_string_dup(const struct js_span *v);

/* 1 when v is the string lit (which holds no escapes). */
int js_string_is(const struct js_span *v, const char *lit);

/* v as a number: 0 when it is none; *real as in js_number(). */
int js_as_number(const struct js_span *v, int *real, long long *iv,
    double *dv);

/* The integer v, 0 when it is none (a missing member included). */
long long js_as_int(const struct js_span *v);

/*
 * Checks that text[0..len) is one JSON object, white space around it
 * aside, that the scanner takes, and finds its members named keys[0..n-1]
 * in one walk: vals[i] gets the value of the last member named keys[i]
 * (s NULL when there is none) and seen[i] how many there are.  obj gets
 * the object's text, from '{' to '}'.  Returns 0, or -1 when the text is
 * no such object.
 */
int js_object(const char *text, size_t len, const char *const *keys, int n,
    struct js_span *vals, int *seen, struct js_span *obj);

#endif
