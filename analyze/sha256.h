/*
 * sha256.h: SHA-256 (FIPS 180-4), for prompt_version and request markers.
 */
#ifndef DT_SHA256_H
#define DT_SHA256_H

#include <stddef.h>
#include <stdint.h>

struct dt_sha256 {
	uint32_t h[8];
	uint64_t len;           /* bytes hashed so far */
	unsigned char buf[64];
	size_t nbuf;
};

void dt_sha256_init(struct dt_sha256 *c);
void dt_sha256_update(struct dt_sha256 *c, const void *data, size_t n);

/* Writes the 32-byte digest to out.  c must be initialised again to reuse. */
void dt_sha256_final(struct dt_sha256 *c, unsigned char out[32]);

/*
 * Writes the first nhex hex digits (at most 64) of the SHA-256 of data to
 * hex, NUL-terminated; hex must hold nhex + 1 bytes.  Returns hex.
 */
char *dt_sha256_hex(const void *data, size_t n, char *hex, size_t nhex);

/* Formats the first nhex hex digits of a digest into hex (nhex + 1 bytes). */
char *dt_sha256_tohex(const unsigned char dig[32], char *hex, size_t nhex);

#endif
