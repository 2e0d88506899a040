/*
 * fuzz_chunked.c - libFuzzer target for the chunked decoder (chunked.c).
 *
 * Byte 0 picks where to cut; the rest is a chunked body.  The decoder is
 * run on one exact-size heap copy, then on two pieces, then one byte at a
 * time (short inputs): state, error, consumed bytes and decoded data must
 * all agree.  The whole-value validators must agree with the decoder on
 * single size lines too.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "chunked.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

struct result {
    struct wd_chunked c;
    size_t consumed;
    char *out;
    size_t out_len;
};

static struct result
decode(const uint8_t *in, size_t n, size_t cut)
{
    struct result res;
    struct wd_buf *b = wd_buf_new(0);
    size_t pos = 0;

    if (b == NULL)
        abort();
    wd_chunked_init(&res.c);
    res.consumed = 0;
    while (pos < n && res.c.state != WD_CHUNKED_DONE &&
           res.c.state != WD_CHUNKED_ERROR) {
        size_t end = cut == SIZE_MAX ? pos + 1 : (cut > pos && cut < n ? cut : n);
        char *rd = malloc(end - pos);
        ssize_t k;

        if (rd == NULL)
            abort();
        memcpy(rd, in + pos, end - pos);
        k = wd_chunked_feed(&res.c, rd, end - pos, b);
        free(rd);
        if (k < 0 || (size_t)k > end - pos)
            abort();
        if ((size_t)k < end - pos && res.c.state != WD_CHUNKED_DONE &&
            res.c.state != WD_CHUNKED_ERROR)
            abort();
        res.consumed += (size_t)k;
        pos += (size_t)k;
    }
    res.out_len = (size_t)wd_buf_len(b);
    res.out = malloc(res.out_len + 1);
    if (res.out == NULL ||
        wd_buf_pread(b, res.out, res.out_len, 0) != (ssize_t)res.out_len)
        abort();
    wd_buf_free(b);
    return res;
}

static void
same(const struct result *a, const struct result *b)
{
    if (a->c.state != b->c.state || a->c.error != b->c.error ||
        a->consumed != b->consumed || a->c.decoded != b->c.decoded ||
        a->out_len != b->out_len || memcmp(a->out, b->out, a->out_len) != 0)
        abort();
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct result whole, split, bytes;
    size_t n, cut;

    if (size < 1)
        return 0;
    n = size - 1;
    cut = n > 0 ? (size_t)data[0] * n / 255 : 0;
    data++;
    whole = decode(data, n, 0);
    split = decode(data, n, cut);
    same(&whole, &split);
    if (n <= 1024) {
        bytes = decode(data, n, SIZE_MAX);
        same(&whole, &bytes);
        free(bytes.out);
    }
    /* a lone size line: decoder and validators agree */
    {
        const uint8_t *crlf = NULL;

        for (size_t i = 0; i + 1 < n; i++) {
            if (data[i] == '\r' && data[i + 1] == '\n') {
                crlf = data + i;
                break;
            }
        }
        if (crlf != NULL && crlf != data) {
            size_t len = (size_t)(crlf - data);
            const uint8_t *semi = memchr(data, ';', len);
            size_t hl = semi ? (size_t)(semi - data) : len;
            int ok = wd_chunk_size_valid((const char *)data, hl, NULL) &&
                     (semi == NULL ||
                      wd_chunk_ext_valid((const char *)semi, len - hl));
            int dec_ok = whole.c.state != WD_CHUNKED_ERROR ||
                         whole.consumed > len + 2;

            if (ok != dec_ok)
                abort();
        }
    }
    free(whole.out);
    free(split.out);
    return 0;
}
