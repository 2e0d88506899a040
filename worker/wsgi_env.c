/*
 * wsgi_env.c - the WSGI environ of one request (SPEC.md 10 and 11).
 *
 * Builds a plain dict with exactly the keys of SPEC.md 10.1 plus the
 * request's HTTP_* / CONTENT_* headers, after running the proxy-header
 * rules (common/proxy.c) on the values.  The constant keys are interned
 * once at boot and values are made straight from the parser's buffers
 * (latin-1).  Pool thread, GIL held.
 */
#include "wsgi_int.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "http_parse.h"
#include "proxy.h"
#include "task.h"

static const char *const key_names[WK_COUNT] = {
    [WK_REQUEST_METHOD] = "REQUEST_METHOD",
    [WK_SCRIPT_NAME] = "SCRIPT_NAME",
    [WK_PATH_INFO] = "PATH_INFO",
    [WK_QUERY_STRING] = "QUERY_STRING",
    [WK_REQUEST_URI] = "REQUEST_URI",
    [WK_SERVER_NAME] = "SERVER_NAME",
    [WK_SERVER_PORT] = "SERVER_PORT",
    [WK_SERVER_PROTOCOL] = "SERVER_PROTOCOL",
    [WK_SERVER_SOFTWARE] = "SERVER_SOFTWARE",
    [WK_REMOTE_ADDR] = "REMOTE_ADDR",
    [WK_REMOTE_HOST] = "REMOTE_HOST",
    [WK_REMOTE_PORT] = "REMOTE_PORT",
    [WK_REMOTE_USER] = "REMOTE_USER",
    [WK_CONTENT_TYPE] = "CONTENT_TYPE",
    [WK_CONTENT_LENGTH] = "CONTENT_LENGTH",
    [WK_HTTP_HOST] = "HTTP_HOST",
    [WK_WSGI_VERSION] = "wsgi.version",
    [WK_WSGI_URL_SCHEME] = "wsgi.url_scheme",
    [WK_WSGI_INPUT] = "wsgi.input",
    [WK_WSGI_INPUT_TERMINATED] = "wsgi.input_terminated",
    [WK_WSGI_ERRORS] = "wsgi.errors",
    [WK_WSGI_MULTITHREAD] = "wsgi.multithread",
    [WK_WSGI_MULTIPROCESS] = "wsgi.multiprocess",
    [WK_WSGI_RUN_ONCE] = "wsgi.run_once",
    [WK_WSGI_FILE_WRAPPER] = "wsgi.file_wrapper",
    [WK_CLIENT_DISCONNECTED] = "waitress.client_disconnected",
};

/* waitress.client_disconnected: a callable bound to the running task. */
struct discon {
    PyObject_HEAD
    struct wd_task *t; /* NULL once the task is over */
    struct wd_conn_gone *gone; /* then, when kept by the app */
};

static PyObject *
discon_call(PyObject *self, PyObject *args, PyObject *kw)
{
    struct discon *d = (struct discon *)self;

    if (!_PyArg_NoKeywords("client_disconnected", kw) ||
        !PyArg_ParseTuple(args, ":client_disconnected"))
        return NULL;
    if (d->t != NULL)
        return PyBool_FromLong(wd_task_client_disconnected(d->t));
    /* kept past its request: whether the connection has closed since */
    return PyBool_FromLong(d->gone != NULL &&
                           __atomic_load_n(&d->gone->gone, __ATOMIC_RELAXED));
}

static void
discon_dealloc(PyObject *self)
{
    wd_conn_gone_release(((struct discon *)self)->gone);
    PyObject_Free(self);
}

static PyTypeObject discon_type = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "waitressd.ClientDisconnectedCheck",
    .tp_basicsize = sizeof(struct discon),
    .tp_dealloc = discon_dealloc,
    .tp_call = discon_call,
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "True once the client is known to have disconnected",
};

/*
 * The environ's fixed keys, in their order, with the values that do not
 * change within a worker; the per-request ones (None at first) hold the
 * last request's values (tmpl_set).  Built on the first request, once
 * the bridge's state is complete.
 */
static PyObject *env_template;

static int
build_template(void)
{
    PyObject **k = wd_wsgi.keys, *t;
    struct {
        int key;
        PyObject *value;
    } fixed[] = {
        {WK_REQUEST_METHOD, Py_None},
        {WK_SCRIPT_NAME, wd_wsgi.script_name},
        {WK_PATH_INFO, Py_None},
        {WK_QUERY_STRING, Py_None},
        {WK_REQUEST_URI, Py_None},
        {WK_SERVER_NAME, Py_None},
        {WK_SERVER_PORT, Py_None},
        {WK_SERVER_PROTOCOL, Py_None},
        {WK_SERVER_SOFTWARE, wd_wsgi.ident},
        {WK_REMOTE_ADDR, Py_None},
        {WK_REMOTE_HOST, Py_None},
        {WK_REMOTE_PORT, Py_None},
        {WK_WSGI_URL_SCHEME, wd_wsgi.url_scheme},
        {WK_WSGI_VERSION, wd_wsgi.version},
        {WK_WSGI_INPUT, Py_None},
        {WK_WSGI_INPUT_TERMINATED, Py_True},
        {WK_WSGI_ERRORS, Py_None},
        {WK_WSGI_MULTITHREAD, Py_True},
        {WK_WSGI_MULTIPROCESS, wd_wsgi.multiprocess ? Py_True : Py_False},
        {WK_WSGI_RUN_ONCE, Py_False},
        {WK_WSGI_FILE_WRAPPER, wd_wsgi.file_wrapper},
        {WK_CLIENT_DISCONNECTED, Py_None},
    };

    /* Not _PyDict_NewPresized: it makes a table for keys of any type,
     * 24 bytes an entry, which put each copy past 1 KiB, a size glibc's
     * per-thread cache does not keep (every copy then merged free
     * chunks first).  Built key by key, the table is for str keys only,
     * 16 bytes an entry, and the 22 fixed keys grow it to 42 usable:
     * room for the usual request headers too. */
    if ((t = PyDict_New()) == NULL)
        return -1;
    for (size_t i = 0; i < sizeof fixed / sizeof fixed[0]; i++) {
        if (PyDict_SetItem(t, k[fixed[i].key],
                           fixed[i].value ? fixed[i].value : Py_None) < 0) {
            Py_DECREF(t);
            return -1;
        }
    }
    env_template = t;
    return 0;
}

static PyObject *sys_dict;   /* sys.__dict__, where PySys_GetObject looks */
static PyObject *str_stderr; /* "stderr", interned */

int
wd_wsgi_env_init(void)
{
    for (int i = 0; i < WK_COUNT; i++) {
        if ((wd_wsgi.keys[i] = PyUnicode_InternFromString(key_names[i])) ==
            NULL)
            return -1;
    }
    if (PyType_Ready(&discon_type) < 0)
        return -1;
    if ((str_stderr = PyUnicode_InternFromString("stderr")) == NULL)
        return -1;
    {
        PyObject *sys = PyImport_ImportModule("sys");

        if (sys == NULL)
            return -1;
        sys_dict = PyModule_GetDict(sys); /* borrowed; sys lives on */
        Py_INCREF(sys_dict);
        Py_DECREF(sys);
    }
    return 0;
}

static PyObject *
latin1(const char *s, size_t len)
{
    return PyUnicode_DecodeLatin1(s, (Py_ssize_t)len, NULL);
}

/*
 * The last str made for each environ slot: most values repeat from one
 * request to the next (method, protocol, server name and port, the peer
 * address, often the path, and a client's Host, User-Agent, Accept...),
 * and str is immutable, so the same object serves again.  Only touched
 * with the GIL held.
 */
enum { VC_METHOD, VC_PROTOCOL, VC_SERVER_NAME, VC_SERVER_PORT,
       VC_REMOTE_ADDR, VC_REMOTE_HOST, VC_REMOTE_PORT, VC_PATH, VC_QUERY,
       VC_URI, VC_COUNT, VC_MAX = 64 };
struct vslot {
    size_t len;
    char text[VC_MAX];
    PyObject *str;
};
static struct vslot vcache[VC_COUNT];

/* A new reference to the latin-1 str of S, from C if equal. */
static PyObject *
cached_latin1_in(struct vslot *c, const char *s, size_t len)
{
    PyObject *v;

    if (c->str != NULL && c->len == len && memcmp(c->text, s, len) == 0) {
        Py_INCREF(c->str);
        return c->str;
    }
    if ((v = latin1(s, len)) == NULL)
        return NULL;
    if (len <= VC_MAX) {
        Py_XSETREF(c->str, v);
        Py_INCREF(v);
        memcpy(c->text, s, len);
        c->len = len;
    }
    return v;
}

static PyObject *
cached_latin1(int slot, const char *s, size_t len)
{
    return cached_latin1_in(&vcache[slot], s, len);
}

/* cached_latin1 of the string S; None when S is NULL (its key is then
 * deleted from the copy). */
static PyObject *
cached_opt(int slot, const char *s)
{
    return s == NULL ? Py_NewRef(Py_None) : cached_latin1(slot, s, strlen(s));
}

/*
 * The value each fixed key has in the template (borrowed: the template
 * keeps it alive, so no other object can take its address meanwhile).
 * A request whose value is the last one's then costs no dict store.
 */
static PyObject *tmpl_val[WK_COUNT];

/* Put V (a new reference, consumed; NULL: an error is set) under KEY in
 * the template unless it is there already.  0 or -1. */
static int
tmpl_set(int key, PyObject *v)
{
    int rc = 0;

    if (v == NULL)
        return -1;
    if (tmpl_val[key] != v) {
        if ((rc = PyDict_SetItem(env_template, wd_wsgi.keys[key], v)) == 0)
            tmpl_val[key] = v;
    }
    Py_DECREF(v);
    return rc;
}

/* Set KEY to a latin-1 str of S (cache SLOT, or -1), None when S is NULL. */
static int
set_str_slot(PyObject *env, PyObject *key, int slot, const char *s,
             size_t len)
{
    PyObject *v;
    int rc;

    if (s == NULL)
        return PyDict_SetItem(env, key, Py_None);
    v = slot >= 0 ? cached_latin1(slot, s, len) : latin1(s, len);
    if (v == NULL)
        return -1;
    rc = PyDict_SetItem(env, key, v);
    Py_DECREF(v);
    return rc;
}

static int
set_str(PyObject *env, PyObject *key, const char *s, size_t len)
{
    return set_str_slot(env, key, -1, s, len);
}

/* Same, skipping the key when S is NULL (absent after proxy rules). */
static int
set_opt(PyObject *env, PyObject *key, const char *s)
{
    return s == NULL ? 0 : set_str(env, key, s, strlen(s));
}

/* Replace KEY's value with S (cache SLOT), or delete it when S is NULL
 * (absent after the proxy rules). */
static int
set_or_del(PyObject *env, PyObject *key, int slot, const char *s)
{
    if (s == NULL)
        return PyDict_DelItem(env, key);
    return set_str_slot(env, key, slot, s, strlen(s));
}

/*
 * Environ keys of request headers ("HTTP_USER_AGENT"...), interned once
 * per distinct name in a small direct-mapped table (GIL held).  Keys
 * longer than HK_MAX (the "HTTP_" prefix counts) are built each time.
 */
enum { HK_SLOTS = 128, HK_MAX = 48 };
static struct {
    size_t len;
    char name[HK_MAX];
    PyObject *key;
    struct vslot val; /* the last value of a header in this slot */
} hkcache[HK_SLOTS];

/* A new reference to the environ key for header NAME (LEN bytes), which
 * is "HTTP_" + NAME unless PLAIN (CONTENT_TYPE, CONTENT_LENGTH).  *VAL:
 * the value cache of its slot, or NULL when the key is not cached. */
static PyObject *
header_key(const char *name, size_t len, int plain, struct vslot **val)
{
    char stack[128], *kb = stack;
    unsigned h = 2166136261u;
    PyObject *key;
    size_t pre = plain ? 0 : 5, slot;

    for (size_t i = 0; i < len; i++)
        h = (h ^ (unsigned char)name[i]) * 16777619u;
    slot = (h ^ (unsigned)plain) % HK_SLOTS;
    if (len + pre <= HK_MAX && hkcache[slot].key != NULL &&
        hkcache[slot].len == len + pre &&
        memcmp(hkcache[slot].name + pre, name, len) == 0 &&
        (plain || memcmp(hkcache[slot].name, "HTTP_", 5) == 0)) {
        Py_INCREF(hkcache[slot].key);
        *val = &hkcache[slot].val;
        return hkcache[slot].key;
    }
    *val = NULL;
    if (len + pre > sizeof stack && (kb = malloc(len + pre)) == NULL)
        return PyErr_NoMemory();
    memcpy(kb, "HTTP_", pre);
    memcpy(kb + pre, name, len);
    key = PyUnicode_FromStringAndSize(kb, (Py_ssize_t)(len + pre));
    if (key != NULL && len + pre <= HK_MAX) {
        PyUnicode_InternInPlace(&key);
        Py_INCREF(key);
        Py_XSETREF(hkcache[slot].key, key);
        memcpy(hkcache[slot].name, kb, len + pre);
        hkcache[slot].len = len + pre;
        *val = &hkcache[slot].val;
    }
    if (kb != stack)
        free(kb);
    return key;
}

/* SPEC.md 10.2 on the decoded path bytes. */
static void
path_info(const char *prefix, const char *path, size_t len,
          const char **out, size_t *out_len)
{
    size_t plen = prefix ? strlen(prefix) : 0;

    if (len > 0 && path[0] == '/') {
        while (len > 1 && path[1] == '/') {
            path++;
            len--;
        }
    }
    if (plen > 0) {
        if (len == plen && memcmp(path, prefix, plen) == 0) {
            len = 0;
        } else if (len > plen && memcmp(path, prefix, plen) == 0 &&
                   path[plen] == '/') {
            path += plen;
            len -= plen;
        }
    }
    *out = path;
    *out_len = len;
}

static int
proxy_index(const struct wd_header *h)
{
    /* every proxy header is X_FORWARDED_* or FORWARDED */
    if (h->name_len == 0 || (h->name[0] != 'X' && h->name[0] != 'F'))
        return -1;
    for (int i = 0; i < WD_PH_COUNT; i++) {
        const char *key = wd_proxy_hdr_key((enum wd_proxy_hdr)i) + 5;

        if (strlen(key) == h->name_len &&
            memcmp(key, h->name, h->name_len) == 0)
            return i;
    }
    return -1;
}

static int
is_name(const struct wd_header *h, const char *name)
{
    return strlen(name) == h->name_len &&
           memcmp(h->name, name, h->name_len) == 0;
}

/* Add every request header as HTTP_NAME (or CONTENT_*), never replacing
 * a key already there. */
static int
add_headers(struct wd_wsgi_req *rq, PyObject *env, struct wd_proxy_env *pe)
{
    const struct wd_http_request *req = rq->req;
    int seen_host = 0;

    for (size_t i = 0; i < req->nheaders; i++) {
        const struct wd_header *h = &req->headers[i];
        const char *val = h->value;
        size_t vlen = h->value_len;
        PyObject *key, *v;
        struct vslot *vc;
        int pi, rc;

        if (is_name(h, "HOST")) {
            seen_host = 1;
            if ((val = pe->http_host) == NULL)
                continue;
            vlen = strlen(val);
        } else if ((pi = proxy_index(h)) >= 0) {
            if ((val = pe->hdr[pi]) == NULL)
                continue;
            vlen = strlen(val);
        } else if (req->chunked && is_name(h, "CONTENT_LENGTH")) {
            continue; /* the decoded length is set below */
        }

        key = header_key(h->name, h->name_len,
                         is_name(h, "CONTENT_TYPE") ||
                             is_name(h, "CONTENT_LENGTH"),
                         &vc);
        if (key == NULL)
            return -1;
        v = vc != NULL ? cached_latin1_in(vc, val, vlen) : latin1(val, vlen);
        if (v == NULL) {
            Py_DECREF(key);
            return -1;
        }
        rc = PyDict_SetDefault(env, key, v) == NULL ? -1 : 0;
        Py_DECREF(key);
        Py_DECREF(v);
        if (rc < 0)
            return -1;
    }
    /* X-Forwarded-Host / Forwarded host= may create HTTP_HOST */
    if (!seen_host && pe->http_host != NULL &&
        set_opt(env, wd_wsgi.keys[WK_HTTP_HOST], pe->http_host) < 0)
        return -1;
    if (req->chunked) {
        char n[24];
        int k = snprintf(n, sizeof n, "%" PRIu64, req->content_length);

        if (set_str(env, wd_wsgi.keys[WK_CONTENT_LENGTH], n, (size_t)k) < 0)
            return -1;
    }
    return 0;
}

/* The request's proxy-relevant values before SPEC.md 11 runs. */
static void
proxy_env_fill(struct wd_wsgi_req *rq, struct wd_proxy_env *pe)
{
    const struct wd_config *cfg = wd_wsgi.cfg;
    const struct wd_http_request *req = rq->req;
    struct wd_task *t = rq->t;

    memset(pe, 0, sizeof *pe);
    pe->remote_addr = t->remote_addr;
    pe->remote_host = t->remote_addr;
    pe->remote_port = t->remote_port;
    pe->server_name = cfg->server_name;
    pe->server_port = t->server_port;
    pe->url_scheme = cfg->url_scheme;
    for (size_t i = 0; i < req->nheaders; i++) {
        const struct wd_header *h = &req->headers[i];
        int pi;

        if (is_name(h, "HOST"))
            pe->http_host = h->value;
        else if ((pi = proxy_index(h)) >= 0)
            pe->hdr[pi] = h->value;
    }
}

int
wd_wsgi_environ(struct wd_wsgi_req *rq, const char **bad_header,
                char **remote_addr)
{
    const struct wd_config *cfg = wd_wsgi.cfg;
    const struct wd_http_request *req = rq->req;
    PyObject **k = wd_wsgi.keys, *env = NULL, *errors;
    struct wd_proxy_env pe;
    const char *path;
    size_t path_len;
    int rc = -1;

    proxy_env_fill(rq, &pe);
    if (cfg->trusted_proxy != NULL || cfg->clear_untrusted_proxy_headers) {
        int r = wd_proxy_apply(cfg, &pe, bad_header);

        if (r == WD_PROXY_MALFORMED) {
            rc = 1;
            goto finally;
        }
        if (r == WD_PROXY_CRASH) {
            /* waitress's middleware fails with IndexError on an empty
             * client address; the app is not called (SPEC.md 13) */
            PyErr_SetString(PyExc_IndexError,
                            "empty client address in a trusted proxy header");
            goto finally;
        }
        if (r != WD_PROXY_OK) {
            PyErr_NoMemory();
            goto finally;
        }
    }
    if (pe.remote_addr != NULL &&
        (*remote_addr = strdup(pe.remote_addr)) == NULL) {
        PyErr_NoMemory();
        goto finally;
    }

    if (env_template == NULL && build_template() < 0)
        goto finally;
    /* a prefix beyond latin-1 matches no path (a latin-1 str) */
    path_info(cfg->utf8_text & WD_UTF8_URL_PREFIX ? NULL : cfg->url_prefix,
              req->path, req->path_len, &path, &path_len);
    /* the values of the fixed keys go into the template, where only those
     * that differ from the last request's are set, then one copy.  Only
     * str values are replaced there (the value caches' and None), whose
     * release runs no Python code, so the GIL stays with this thread
     * from the first store to the copy. */
    if (tmpl_set(WK_REQUEST_METHOD,
                 cached_latin1(VC_METHOD, req->method, strlen(req->method))) ||
        tmpl_set(WK_PATH_INFO, cached_latin1(VC_PATH, path, path_len)) ||
        tmpl_set(WK_QUERY_STRING,
                 cached_latin1(VC_QUERY, req->query ? req->query : "",
                               req->query ? req->query_len : 0)) ||
        tmpl_set(WK_REQUEST_URI,
                 cached_latin1(VC_URI, req->target, req->target_len)) ||
        tmpl_set(WK_SERVER_NAME,
                 pe.server_name == cfg->server_name && pe.server_name != NULL
                     ? Py_NewRef(wd_wsgi.server_name)
                     : cached_opt(VC_SERVER_NAME, pe.server_name)) ||
        tmpl_set(WK_SERVER_PORT, cached_opt(VC_SERVER_PORT, pe.server_port)) ||
        tmpl_set(WK_SERVER_PROTOCOL,
                 cached_latin1(VC_PROTOCOL,
                               req->http11 ? "HTTP/1.1" : "HTTP/1.0", 8)) ||
        tmpl_set(WK_REMOTE_ADDR, cached_opt(VC_REMOTE_ADDR, pe.remote_addr)) ||
        tmpl_set(WK_REMOTE_HOST, cached_opt(VC_REMOTE_HOST, pe.remote_host)) ||
        tmpl_set(WK_REMOTE_PORT, cached_opt(VC_REMOTE_PORT, pe.remote_port)))
        goto finally;
    /* a copy of the template is one allocation and a memcpy */
    if ((env = PyDict_Copy(env_template)) == NULL)
        goto finally;
    /* absent after the proxy rules (SPEC.md 11) */
    if ((pe.server_name == NULL &&
         PyDict_DelItem(env, k[WK_SERVER_NAME]) < 0) ||
        (pe.server_port == NULL &&
         PyDict_DelItem(env, k[WK_SERVER_PORT]) < 0) ||
        (pe.remote_addr == NULL &&
         PyDict_DelItem(env, k[WK_REMOTE_ADDR]) < 0) ||
        (pe.remote_host == NULL &&
         PyDict_DelItem(env, k[WK_REMOTE_HOST]) < 0) ||
        (pe.remote_port == NULL &&
         PyDict_DelItem(env, k[WK_REMOTE_PORT]) < 0))
        goto finally;
    /* the template holds the configured scheme */
    if (pe.url_scheme != cfg->url_scheme &&
        set_or_del(env, k[WK_WSGI_URL_SCHEME], -1, pe.url_scheme))
        goto finally;

    if ((rq->input = wd_wsgi_input_new(req->body)) == NULL)
        goto finally;
    if ((rq->discon = (PyObject *)PyObject_New(struct discon, &discon_type)) ==
        NULL)
        goto finally;
    ((struct discon *)rq->discon)->t = rq->t;
    ((struct discon *)rq->discon)->gone = NULL;
    /* sys.stderr now (the app may replace it): PySys_GetObject without
     * making a str of the name each time.  Borrowed, so looked up right
     * before its store: opening a spilled body's file above lets go of
     * the GIL, and an app thread replacing sys.stderr meanwhile may free
     * what an earlier lookup found.  Into the copy, not the template:
     * replacing the template's would drop the last reference to a stderr
     * the app has replaced, and its finalizer could let another thread
     * change the template between this request's values and its copy. */
    errors = PyDict_GetItemWithError(sys_dict, str_stderr);
    if (errors == NULL && PyErr_Occurred())
        goto finally;
    if (PyDict_SetItem(env, k[WK_WSGI_INPUT], rq->input) ||
        PyDict_SetItem(env, k[WK_WSGI_ERRORS], errors ? errors : Py_None) ||
        PyDict_SetItem(env, k[WK_CLIENT_DISCONNECTED], rq->discon))
        goto finally;

    if (add_headers(rq, env, &pe) < 0)
        goto finally;
    rq->environ = env;
    env = NULL;
    rc = 0;

finally:
    Py_XDECREF(env);
    wd_proxy_env_cleanup(&pe);
    return rc;
}

/*
 * Whether the app holds OBJ (the bridge's environ value under KEY) past
 * the request: more references than the bridge's own and the environ's.
 */
static int
held_by_app(struct wd_wsgi_req *rq, PyObject *obj, int key)
{
    PyObject *in_env;

    if (Py_REFCNT(obj) == 1)
        return 0; /* only the bridge: no lookup */
    in_env = rq->environ == NULL
                 ? NULL
                 : PyDict_GetItemWithError(rq->environ, wd_wsgi.keys[key]);
    PyErr_Clear();
    return Py_REFCNT(obj) > 1 + (in_env == obj);
}

void
wd_wsgi_env_detach(struct wd_wsgi_req *rq)
{
    if (rq->discon != NULL) {
        struct discon *d = (struct discon *)rq->discon;

        /* kept: it will want to know when the connection closes */
        if (held_by_app(rq, rq->discon, WK_CLIENT_DISCONNECTED))
            d->gone = wd_task_conn_gone(rq->t);
        d->t = NULL;
    }
    if (rq->input != NULL)
        wd_wsgi_input_detach(rq->input,
                             held_by_app(rq, rq->input, WK_WSGI_INPUT));
}
