/*
 * uri.c - request-target splitting and percent decoding (see uri.h).
 *
 * Callers: the request parser (http_parse.c) once per request.
 *
 * The rules are those of waitress's split_uri() and of the CPython 3.11
 * urlsplit() it calls, byte for byte, because applications see the
 * result in PATH_INFO and QUERY_STRING:
 *   - non-ASCII input makes urlsplit fail to decode it: "Bad URI";
 *   - leading C0 controls and spaces are stripped, every HT/CR/LF removed;
 *   - a scheme is cut off, then a "//authority"; brackets in the
 *     authority are checked the way urlsplit does, and a failure there is
 *     a ValueError that waitress lets escape, dropping the connection.
 */
#include "uri.h"

#include <string.h>

static int
hexval(unsigned char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

size_t
wd_http_unquote(const char *in, size_t len, char *out)
{
    size_t i = 0, o = 0;

    while (i < len) {
        const char *pct = memchr(in + i, '%', len - i);
        size_t run = pct ? (size_t)(pct - (in + i)) : len - i;

        memmove(out + o, in + i, run);
        o += run;
        i += run;
        if (i >= len)
            break;
        /* in[i] == '%' */
        if (len - i >= 3) {
            int hi = hexval((unsigned char)in[i + 1]);
            int lo = hexval((unsigned char)in[i + 2]);

            if (hi >= 0 && lo >= 0) {
                out[o++] = (char)(hi << 4 | lo);
                i += 3;
                continue;
            }
        }
        out[o++] = '%';
        i++;
    }
    return o;
}

static int
is_alpha(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

static int
is_digit(unsigned char c)
{
    return c >= '0' && c <= '9';
}

static const char *
find_byte(const char *s, size_t len, char c)
{
    return memchr(s, c, len);
}

/* ipaddress.IPv4Address: four decimal octets, no leading zeros, <= 255. */
static int
ipv4_valid(const char *s, size_t len, unsigned *value)
{
    size_t i = 0;
    unsigned v = 0;
    int octets = 0;

    for (;;) {
        size_t start = i;
        unsigned o = 0;

        while (i < len && s[i] != '.') {
            if (!is_digit((unsigned char)s[i]))
                return 0;
            o = o * 10 + (unsigned)(s[i] - '0');
            i++;
            if (i - start > 3)
                return 0;
        }
        if (i == start || o > 255 || (i - start > 1 && s[start] == '0'))
            return 0;
        v = v << 8 | o;
        octets++;
        if (i == len)
            break;
        i++; /* '.' */
        if (octets == 4)
            return 0;
    }
    if (octets != 4)
        return 0;
    if (value != NULL)
        *value = v;
    return 1;
}

/* One hextet: 1 to 4 hex digits. */
static int
hextet_valid(const char *s, size_t len)
{
    if (len == 0 || len > 4)
        return 0;
    for (size_t i = 0; i < len; i++)
        if (hexval((unsigned char)s[i]) < 0)
            return 0;
    return 1;
}

/*
 * ipaddress.IPv6Address._ip_int_from_string, reduced to validity.  Parts
 * are the ':'-separated fields; a final dotted quad counts as two parts.
 */
static int
ipv6_addr_valid(const char *s, size_t len)
{
    const char *part[10];
    size_t plen[10];
    size_t nparts = 0, i, start = 0;
    long skip = -1;
    size_t hi, lo;

    if (len == 0)
        return 0;
    for (i = 0; i <= len; i++) {
        if (i == len || s[i] == ':') {
            if (nparts == 10)
                return 0; /* more than 9 parts even before expansion */
            part[nparts] = s + start;
            plen[nparts] = i - start;
            nparts++;
            start = i + 1;
        }
    }
    if (nparts < 3)
        return 0;
    if (find_byte(part[nparts - 1], plen[nparts - 1], '.') != NULL) {
        if (!ipv4_valid(part[nparts - 1], plen[nparts - 1], NULL))
            return 0;
        /* becomes two valid hextets */
        if (nparts == 10)
            return 0;
        part[nparts - 1] = "0";
        plen[nparts - 1] = 1;
        part[nparts] = "0";
        plen[nparts] = 1;
        nparts++;
    }
    if (nparts > 9)
        return 0;
    for (i = 1; i + 1 < nparts; i++) {
        if (plen[i] == 0) {
            if (skip >= 0)
                return 0;
            skip = (long)i;
        }
    }
    if (skip >= 0) {
        hi = (size_t)skip;
        lo = nparts - (size_t)skip - 1;
        if (plen[0] == 0 && --hi != 0)
            return 0;
        if (plen[nparts - 1] == 0 && --lo != 0)
            return 0;
        if (hi + lo >= 8)
            return 0;
    } else {
        if (nparts != 8 || plen[0] == 0 || plen[nparts - 1] == 0)
            return 0;
        hi = nparts;
        lo = 0;
    }
    for (i = 0; i < hi; i++)
        if (!hextet_valid(part[i], plen[i]))
            return 0;
    for (i = nparts - lo; i < nparts; i++)
        if (!hextet_valid(part[i], plen[i]))
            return 0;
    return 1;
}

/* urllib.parse._check_bracketed_host */
static int
bracketed_host_valid(const char *h, size_t len)
{
    const char *pct;

    if (len > 0 && h[0] == 'v') {
        /* \Av[a-fA-F0-9]+\..+\Z */
        size_t i = 1;

        while (i < len && hexval((unsigned char)h[i]) >= 0)
            i++;
        if (i == 1 || i >= len || h[i] != '.')
            return 0;
        return len - i - 1 >= 1 && find_byte(h, len, '\n') == NULL;
    }
    /* ipaddress.ip_address: an IPv4 address is refused in brackets */
    if (ipv4_valid(h, len, NULL))
        return 0;
    if (find_byte(h, len, '/') != NULL)
        return 0;
    pct = find_byte(h, len, '%');
    if (pct != NULL) {
        size_t scope = len - (size_t)(pct + 1 - h);

        if (scope == 0 || find_byte(pct + 1, scope, '%') != NULL)
            return 0;
        len = (size_t)(pct - h);
    }
    return ipv6_addr_valid(h, len);
}

int
wd_http_bracketed_netloc_valid(const char *netloc, size_t len)
{
    const char *hp = netloc, *ob, *cb, *host;
    size_t hplen = len, hostlen;

    /* rpartition('@') */
    for (size_t i = len; i > 0; i--) {
        if (netloc[i - 1] == '@') {
            hp = netloc + i;
            hplen = len - i;
            break;
        }
    }
    ob = find_byte(hp, hplen, '[');
    if (ob != NULL) {
        const char *br = ob + 1;
        size_t brlen = hplen - (size_t)(br - hp);

        if (ob != hp)
            return 0; /* data before the bracket */
        cb = find_byte(br, brlen, ']');
        host = br;
        if (cb == NULL) {
            hostlen = brlen;
        } else {
            size_t portlen = brlen - (size_t)(cb + 1 - br);

            hostlen = (size_t)(cb - br);
            if (portlen > 0 && cb[1] != ':')
                return 0;
        }
    } else {
        const char *colon = find_byte(hp, hplen, ':');

        host = hp;
        hostlen = colon ? (size_t)(colon - hp) : hplen;
    }
    return bracketed_host_valid(host, hostlen);
}

static void
set_span(const char **p, size_t *l, const char *s, size_t n)
{
    *p = s;
    *l = n;
}

/* Cut S at the first C: S keeps the head, *TAIL gets what follows C. */
static void
cut_at(const char *s, size_t *len, char c, const char **tail,
       size_t *tail_len)
{
    const char *hit = memchr(s, c, *len);

    if (hit == NULL)
        return;
    *tail = hit + 1;
    *tail_len = *len - (size_t)(hit + 1 - s);
    *len = (size_t)(hit - s);
}

int
wd_http_split_uri(const char *uri, size_t len, char *scratch,
                  struct wd_uri_parts *out)
{
    size_t i, n = 0;
    const char *url;
    size_t ulen;

    memset(out, 0, sizeof *out);
    out->scheme = out->netloc = out->query = out->fragment = scratch;

    if (len >= 2 && uri[0] == '/' && uri[1] == '/') {
        /* waitress keeps the whole thing as a path (waitress #260) */
        memcpy(scratch, uri, len);
        ulen = len;
        cut_at(scratch, &ulen, '#', &out->fragment, &out->fragment_len);
        cut_at(scratch, &ulen, '?', &out->query, &out->query_len);
        set_span(&out->path, &out->path_len, scratch, ulen);
        return WD_URI_OK;
    }

    /* any byte >= 0x80 fails urlsplit's ASCII decode; note controls */
    {
        unsigned char any = 0, ctl = 0;

        for (i = 0; i < len; i++) {
            unsigned char c = (unsigned char)uri[i];

            any |= c;
            ctl |= c < 0x21;
        }
        if (any & 0x80)
            return WD_URI_BAD;
        if (!ctl) { /* the usual case: nothing to strip or remove */
            memcpy(scratch, uri, len);
            n = len;
            goto split;
        }
    }

    /* lstrip C0 controls and space, then drop every HT, CR and LF */
    i = 0;
    while (i < len && (unsigned char)uri[i] <= 0x20)
        i++;
    for (; i < len; i++)
        if (uri[i] != '\t' && uri[i] != '\r' && uri[i] != '\n')
            scratch[n++] = uri[i];
split:
    url = scratch;
    ulen = n;

    /* scheme */
    {
        const char *colon = memchr(url, ':', ulen);

        if (colon != NULL && colon > url && is_alpha((unsigned char)url[0])) {
            size_t slen = (size_t)(colon - url), k;

            for (k = 0; k < slen; k++) {
                unsigned char c = (unsigned char)url[k];

                if (!is_alpha(c) && !is_digit(c) && c != '+' && c != '-' &&
                    c != '.')
                    break;
            }
            if (k == slen) {
                for (k = 0; k < slen; k++)
                    if (scratch[k] >= 'A' && scratch[k] <= 'Z')
                        scratch[k] = (char)(scratch[k] - 'A' + 'a');
                set_span(&out->scheme, &out->scheme_len, scratch, slen);
                url = colon + 1;
                ulen -= slen + 1;
            }
        }
    }

    /* authority */
    if (ulen >= 2 && url[0] == '/' && url[1] == '/') {
        size_t delim = ulen, k;
        int open, close;

        for (k = 2; k < ulen; k++) {
            if (url[k] == '/' || url[k] == '?' || url[k] == '#') {
                delim = k;
                break;
            }
        }
        set_span(&out->netloc, &out->netloc_len, url + 2, delim - 2);
        url += delim;
        ulen -= delim;
        open = find_byte(out->netloc, out->netloc_len, '[') != NULL;
        close = find_byte(out->netloc, out->netloc_len, ']') != NULL;
        if (open != close)
            return WD_URI_INVALID;
        if (open &&
            !wd_http_bracketed_netloc_valid(out->netloc, out->netloc_len))
            return WD_URI_INVALID;
    }

    cut_at(url, &ulen, '#', &out->fragment, &out->fragment_len);
    cut_at(url, &ulen, '?', &out->query, &out->query_len);
    set_span(&out->path, &out->path_len, url, ulen);
    return WD_URI_OK;
}
