/*
 * response.c - framing and header block of WSGI responses (SPEC.md 12).
 *
 * Called by the WSGI bridge on a pool thread with the app's status and
 * headers already validated and encoded to latin-1.  Everything here is
 * byte work on caller-owned memory; the only allocation is the header
 * block returned by wd_response_head (its scratch space is on the stack
 * unless the app sends dozens of headers), and the Date value is cached
 * per thread for the current second.
 *
 * The order of decisions follows waitress's Task.build_response_header,
 * because later steps look at what earlier ones added (a computed
 * Content-Length makes the HTTP/1.0 keep-alive row apply, for instance).
 */
#include "response.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "httpdate.h"
#include "wd.h"

#define NAME(s) {s, sizeof s - 1}
/* with their lengths: every app header is asked, and few have one */
static const struct {
    const char *name;
    size_t len;
} hop_by_hop[] = {
    NAME("connection"), NAME("keep-alive"), NAME("proxy-authenticate"),
    NAME("proxy-authorization"), NAME("te"), NAME("trailer"),
    NAME("transfer-encoding"), NAME("upgrade"),
};
#undef NAME

static int
ascii_lower(int c)
{
    return (c >= 'A' && c <= 'Z') ? c + ('a' - 'A') : c;
}

static int
ascii_upper(int c)
{
    return (c >= 'a' && c <= 'z') ? c - ('a' - 'A') : c;
}

void
wd_response_init(struct wd_response *r, int http11, const char *connection,
                 size_t connection_len, const char *ident, time_t start)
{
    memset(r, 0, sizeof *r);
    r->http11 = http11;
    r->connection = connection;
    r->connection_len = connection ? connection_len : 0;
    r->ident = ident;
    r->start = start;
    r->has_body = 1;
}

int
wd_response_status_has_body(const char *status, size_t len)
{
    if (len >= 1 && status[0] == '1')
        return 0;
    if (len >= 3 && (memcmp(status, "204", 3) == 0 ||
                     memcmp(status, "304", 3) == 0))
        return 0;
    return 1;
}

int
wd_response_name_is(const char *name, size_t len, const char *lower)
{
    size_t i;

    for (i = 0; i < len; i++) {
        if (lower[i] == '\0' || ascii_lower((unsigned char)name[i]) != lower[i])
            return 0;
    }
    return lower[i] == '\0';
}

int
wd_response_is_hop_by_hop(const char *name, size_t len)
{
    for (size_t i = 0; i < WD_ARRAY_LEN(hop_by_hop); i++) {
        if (hop_by_hop[i].len == len &&
            wd_response_name_is(name, len, hop_by_hop[i].name))
            return 1;
    }
    return 0;
}

void
wd_response_capitalize(char *name, size_t len)
{
    int first = 1;

    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)name[i];

        if (c == '-') {
            first = 1;
            continue;
        }
        name[i] = (char)(first ? ascii_upper(c) : ascii_lower(c));
        first = 0;
    }
}

void
wd_response_set_close(struct wd_response *r)
{
    if (!r->wrote_header)
        r->close_header = 1;
    r->close = 1;
}

/* Compare the whole request Connection value, lowercased, with WHAT. */
static int
connection_is(const struct wd_response *r, const char *what)
{
    return r->connection != NULL &&
           wd_response_name_is(r->connection, r->connection_len, what);
}

struct entry {
    const char *name;
    size_t name_len;
    const char *value;
    size_t value_len;
    size_t order; /* position before sorting: keeps the sort stable */
};

static int
entry_cmp(const void *a, const void *b)
{
    const struct entry *x = a, *y = b;
    size_t n = x->name_len < y->name_len ? x->name_len : y->name_len;
    int c = memcmp(x->name, y->name, n);

    if (c != 0)
        return c;
    if (x->name_len != y->name_len)
        return x->name_len < y->name_len ? -1 : 1;
    return x->order < y->order ? -1 : (x->order > y->order);
}

/* Stable insertion sort by name: a head has a handful of entries, where
 * this beats qsort's indirect calls (entry_cmp breaks ties by order). */
static void
sort_entries(struct entry *e, size_t n)
{
    for (size_t i = 1; i < n; i++) {
        struct entry x = e[i];
        size_t j = i;

        while (j > 0 && entry_cmp(&e[j - 1], &x) > 0) {
            e[j] = e[j - 1];
            j--;
        }
        e[j] = x;
    }
}

static void
add_entry(struct entry *e, size_t *n, const char *name, const char *value,
          size_t value_len)
{
    e[*n].name = name;
    e[*n].name_len = strlen(name);
    e[*n].value = value;
    e[*n].value_len = value_len;
    e[*n].order = *n;
    (*n)++;
}

/* The Date value of T, formatted at most once per second per thread. */
static void
cached_date(time_t t, char out[WD_HTTP_DATE_LEN + 1])
{
    static __thread time_t last = -1;
    static __thread char text[WD_HTTP_DATE_LEN + 1];

    if (t != last) {
        wd_http_date_build(t, text);
        last = t;
    }
    memcpy(out, text, WD_HTTP_DATE_LEN + 1);
}

char *
wd_response_head(struct wd_response *r, const char *status,
                 size_t status_len, const struct wd_resp_header *h,
                 size_t n, size_t *len)
{
    /* room for the server's own: CL, Connection, TE, Server/Via, Date */
    enum { EXTRA = 6, STACK_ENTRIES = 32, STACK_NAMES = 1024 };
    struct entry estack[STACK_ENTRIES], *e = estack;
    char nstack[STACK_NAMES], *names = nstack, *out, *p;
    char clbuf[32], date[WD_HTTP_DATE_LEN + 1];
    size_t ne = 0, names_len = 0, total;
    const struct entry *cl_hdr = NULL, *date_hdr = NULL, *server_hdr = NULL;
    const char *ident_or = r->ident ? r->ident : "waitressd";
    const int closed_early = r->close_header;

    r->has_body = wd_response_status_has_body(status, status_len);

    for (size_t i = 0; i < n; i++)
        names_len += h[i].name_len;
    /* the usual response fits on the stack: no allocation but OUT */
    if (n + EXTRA > STACK_ENTRIES &&
        (e = calloc(n + EXTRA, sizeof *e)) == NULL)
        return NULL;
    if (names_len + 1 > STACK_NAMES &&
        (names = malloc(names_len + 1)) == NULL) {
        if (e != estack)
            free(e);
        return NULL;
    }

    /* normalised copies of the app's names; last Date/Server/CL counts */
    p = names;
    for (size_t i = 0; i < n; i++) {
        struct entry *x = &e[ne];

        memcpy(p, h[i].name, h[i].name_len);
        wd_response_capitalize(p, h[i].name_len);
        x->name = p;
        x->name_len = h[i].name_len;
        x->value = h[i].value;
        x->value_len = h[i].value_len;
        x->order = ne;
        p += h[i].name_len;
        if (WD_RESPONSE_NAME_IS(x->name, x->name_len, "content-length")) {
            if (!r->has_body)
                continue;
            cl_hdr = x;
        }
        if (x->name_len == 4 && memcmp(x->name, "Date", 4) == 0)
            date_hdr = x;
        if (x->name_len == 6 && memcmp(x->name, "Server", 6) == 0)
            server_hdr = x;
        ne++;
    }

    if (cl_hdr == NULL && r->has_cl && r->has_body) {
        int k = snprintf(clbuf, sizeof clbuf, "%" PRId64, r->cl);

        add_entry(e, &ne, "Content-Length", clbuf, (size_t)k);
        cl_hdr = &e[ne - 1];
    }

    /* L: a non-empty Content-Length value goes out (Python truthiness) */
    int has_len = cl_hdr != NULL && cl_hdr->value_len > 0;

    /* A close decided before the head (too few bytes, a stop) put its
     * header in first, as waitress's set_close_on_finish does; the
     * HTTP/1.0 keep-alive row below still adds Keep-Alive after it, so
     * both go out, in that order (SPEC.md 12.5 and waitress). */
    if (closed_early)
        add_entry(e, &ne, "Connection", "close", 5);
    if (!r->http11) {
        if (connection_is(r, "keep-alive") && has_len)
            add_entry(e, &ne, "Connection", "Keep-Alive", 10);
        else
            wd_response_set_close(r);
    } else {
        if (connection_is(r, "close"))
            wd_response_set_close(r);
        if (!has_len) {
            if (r->has_body) {
                add_entry(e, &ne, "Transfer-Encoding", "chunked", 7);
                r->chunked = 1;
            }
            wd_response_set_close(r);
        }
    }
    if (r->close_header && !closed_early)
        add_entry(e, &ne, "Connection", "close", 5);

    if (server_hdr == NULL || server_hdr->value_len == 0) {
        if (r->ident != NULL)
            add_entry(e, &ne, "Server", r->ident, strlen(r->ident));
    } else {
        add_entry(e, &ne, "Via", ident_or, strlen(ident_or));
    }
    if (date_hdr == NULL || date_hdr->value_len == 0) {
        cached_date(r->start, date);
        add_entry(e, &ne, "Date", date, WD_HTTP_DATE_LEN);
    }

    sort_entries(e, ne);

    total = 9 + status_len + 2 + 2; /* "HTTP/1.x " status CRLF ... CRLF */
    for (size_t i = 0; i < ne; i++)
        total += e[i].name_len + 2 + e[i].value_len + 2;
    if ((out = malloc(total + 1)) == NULL) {
        if (names != nstack)
            free(names);
        if (e != estack)
            free(e);
        return NULL;
    }
    p = out;
    memcpy(p, r->http11 ? "HTTP/1.1 " : "HTTP/1.0 ", 9);
    p += 9;
    memcpy(p, status, status_len);
    p += status_len;
    *p++ = '\r';
    *p++ = '\n';
    for (size_t i = 0; i < ne; i++) {
        memcpy(p, e[i].name, e[i].name_len);
        p += e[i].name_len;
        *p++ = ':';
        *p++ = ' ';
        memcpy(p, e[i].value, e[i].value_len);
        p += e[i].value_len;
        *p++ = '\r';
        *p++ = '\n';
    }
    *p++ = '\r';
    *p++ = '\n';
    *p = '\0';
    *len = total;
    r->wrote_header = 1;
    if (names != nstack)
        free(names);
    if (e != estack)
        free(e);
    return out;
}

void
wd_response_body(struct wd_response *r, size_t len, struct wd_body_plan *p)
{
    memset(p, 0, sizeof *p);
    if (!r->has_body) {
        /* counted as written so the length check stays quiet */
        r->written += len;
        if (!(r->warned & WD_RESP_WARN_NOBODY)) {
            r->warned |= WD_RESP_WARN_NOBODY;
            p->warn |= WD_RESP_WARN_NOBODY;
        }
        return;
    }
    if (r->chunked) {
        p->prefix_len = (size_t)snprintf(p->prefix, sizeof p->prefix,
                                         "%zX\r\n", len);
        p->send = len;
        p->suffix = 1;
    } else if (r->has_cl) {
        /* Python's data[:cl - written], negative bounds included */
        int64_t room = r->cl - (int64_t)r->written;
        size_t send;

        if (room >= 0)
            send = (uint64_t)room < len ? (size_t)room : len;
        else /* -room in unsigned arithmetic: room may be INT64_MIN */
            send = -(uint64_t)room < len ? len - (size_t)-(uint64_t)room : 0;
        p->send = send;
        r->written += send;
        if (send != len && !(r->warned & WD_RESP_WARN_EXCESS)) {
            r->warned |= WD_RESP_WARN_EXCESS;
            p->warn |= WD_RESP_WARN_EXCESS;
        }
    } else {
        p->send = len;
    }
    r->body_bytes += p->send;
}

int
wd_response_check_length(struct wd_response *r, int is_head)
{
    if (!r->has_cl || is_head)
        return 0;
    if (r->cl >= 0 && r->written == (uint64_t)r->cl)
        return 0;
    wd_response_set_close(r);
    return 1;
}

const char *
wd_response_trailer(const struct wd_response *r, size_t *len)
{
    *len = r->chunked ? 5 : 0;
    return r->chunked ? "0\r\n\r\n" : "";
}
