/*
 * wsgi.c - the embedded CPython and the WSGI call (SPEC.md 1, 4.1, 12, 13).
 *
 * Boot (worker main thread, after fork): start CPython without signal
 * handlers, set sys.path, resolve the app, logging.basicConfig(), then
 * release the GIL, taking it again only for the Python signal handlers
 * and pending calls that are the main thread's (wd_wsgi_main_wait).  The
 * home thread and each pool thread register one thread state for their
 * whole life (STYLE.md 5) and re-attach it per task.
 *
 * Per task (pool or home thread): build the environ (wsgi_env.c), call the app
 * with our start_response, consume the result (file-wrapper fast path in
 * wsgi_file.c, else iteration), frame the output with common/response.c
 * and append it to the connection with wd_task_write.  The GIL is dropped
 * only while waiting for the loop to drain the output.  Application
 * errors become the 500 of SPEC.md 14 or a cut connection (SPEC.md 13);
 * the worker itself never dies of them.
 */
#include "wsgi_int.h"

#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/uio.h>
#include <unistd.h>

#include "config.h"
#include "errors.h"
#include "http_parse.h"
#include "log.h"
#include "proxy.h"
#include "task.h"
#include "wd.h"
#include "wsgi.h"

struct wd_wsgi_state wd_wsgi;

static PyThreadState *main_ts;          /* main thread, GIL released */
static __thread PyThreadState *thread_ts; /* pool thread, between tasks */
static __thread PyGILState_STATE thread_gil;
static __thread int thread_entered; /* GIL held by wd_wsgi_enter */

static const char generic_500[] =
    "The server encountered an unexpected internal server error";

/* ---------------------------------------------------------------------
 * Small helpers
 */

/* PATH for log lines, whole (malloc'ed; NULL without memory). */
static char *
path_for_log(const struct wd_http_request *req)
{
    return wd_log_text(req->path, req->path ? req->path_len : 0);
}

/* Leading digits of a status ("200 OK" -> 200), at most three. */
static int
status_code(PyObject *status)
{
    const char *s;
    int code = 0;

    if (status == NULL || !PyUnicode_Check(status) ||
        (s = PyUnicode_AsUTF8(status)) == NULL) {
        PyErr_Clear();
        return 0;
    }
    for (int i = 0; i < 3 && s[i] >= '0' && s[i] <= '9'; i++)
        code = code * 10 + (s[i] - '0');
    return code;
}

/*
 * Text of the pending exception, as traceback.format_exc() gives it
 * (malloc'ed UTF-8, NUL-terminated, *LEN bytes: it may hold a NUL of its
 * own), and whether it is ClientDisconnected.  Clears it.
 */
static char *
take_exception(int *disconnected, size_t *len)
{
    PyObject *type, *value, *tb, *lines = NULL, *text = NULL, *empty = NULL;
    char *out = NULL, *s;
    Py_ssize_t n;

    PyErr_Fetch(&type, &value, &tb);
    PyErr_NormalizeException(&type, &value, &tb);
    if (tb != NULL && value != NULL)
        PyException_SetTraceback(value, tb);
    switch (value != NULL ? PyObject_IsInstance(value, wd_wsgi.disconnected)
                          : 0) {
    case 1:
        *disconnected = 1;
        goto finally;
    case -1: /* the app's __class__ raised: not ours, then */
        PyErr_Clear();
        break;
    }
    *disconnected = 0;
    lines = PyObject_CallFunctionObjArgs(wd_wsgi.format_exception,
                                         type ? type : Py_None,
                                         value ? value : Py_None,
                                         tb ? tb : Py_None, NULL);
    if (lines != NULL && (empty = PyUnicode_FromString("")) != NULL)
        text = PyUnicode_Join(empty, lines);
    if (text != NULL) {
        PyObject *b = PyUnicode_AsEncodedString(text, "utf-8",
                                                "backslashreplace");

        if (b != NULL && PyBytes_AsStringAndSize(b, &s, &n) == 0 &&
            (out = malloc((size_t)n + 1)) != NULL) {
            memcpy(out, s, (size_t)n + 1);
            *len = (size_t)n;
        }
        Py_XDECREF(b);
    }

finally:
    PyErr_Clear();
    if (out == NULL && !*disconnected &&
        (out = strdup("(traceback unavailable)\n")) != NULL)
        *len = strlen(out);
    Py_XDECREF(type);
    Py_XDECREF(value);
    Py_XDECREF(tb);
    Py_XDECREF(lines);
    Py_XDECREF(text);
    Py_XDECREF(empty);
    return out;
}

/* ---------------------------------------------------------------------
 * Output
 */

/*
 * Past this many bytes a write gives the GIL up while it sends: sending
 * a large body straight from the app's buffer takes long enough for the
 * other threads to run Python meanwhile.
 */
#define WD_OUT_NOGIL_BYTES 65536

/*
 * A body the socket did not take at once is not copied: the channel keeps
 * a reference to the app's bytes object until it has sent them
 * (wd_task_writev_borrow).  It lets go of it on the loop thread, without
 * the GIL, so the reference goes on this stack and the next thread that
 * holds the GIL drops it (wd_wsgi_drop_released): a request's bridge, or the
 * loop thread right after the iteration that released it (inline.c's
 * chores), so that a worker that goes idle does not keep what it sent.
 */
struct kept_ref {
    struct kept_ref *next;
    PyObject *obj;
};

static struct kept_ref *released_refs; /* atomic: pushed without the GIL */

static void
release_kept_ref(void *arg)
{
    struct kept_ref *k = arg;

    k->next = __atomic_load_n(&released_refs, __ATOMIC_RELAXED);
    while (!__atomic_compare_exchange_n(&released_refs, &k->next, k, 1,
                                        __ATOMIC_RELEASE, __ATOMIC_RELAXED))
        ;
}

int
wd_wsgi_released_pending(void)
{
    return __atomic_load_n(&released_refs, __ATOMIC_RELAXED) != NULL;
}

void
wd_wsgi_drop_released(void)
{
    struct kept_ref *k, *next;

    if (__atomic_load_n(&released_refs, __ATOMIC_RELAXED) == NULL)
        return;
    k = __atomic_exchange_n(&released_refs, NULL, __ATOMIC_ACQUIRE);
    for (; k != NULL; k = next) {
        next = k->next;
        Py_DECREF(k->obj);
        free(k);
    }
}

/* One attempt; OWNER (or NULL) holds the bytes of piece KEEP. */
static int
write_once(struct wd_wsgi_req *rq, const struct iovec *iov, int iovcnt,
           size_t total, int keep, PyObject *owner)
{
    struct kept_ref *k = NULL;
    int rc, kept = 0;

    if (owner != NULL && (k = malloc(sizeof *k)) != NULL) {
        Py_INCREF(owner);
        k->obj = owner;
    }
    if (total >= WD_OUT_NOGIL_BYTES) {
        Py_BEGIN_ALLOW_THREADS
        rc = wd_task_writev_borrow(rq->t, iov, iovcnt, k ? keep : -1,
                                   release_kept_ref, k, &kept);
        Py_END_ALLOW_THREADS
    } else {
        rc = wd_task_writev_borrow(rq->t, iov, iovcnt, k ? keep : -1,
                                   release_kept_ref, k, &kept);
    }
    if (k != NULL && !kept) {
        Py_DECREF(owner);
        free(k);
    }
    return rc;
}

int
wd_wsgi_outv(struct wd_wsgi_req *rq, const struct iovec *iov, int iovcnt)
{
    return wd_wsgi_outv_keep(rq, iov, iovcnt, -1, NULL);
}

int
wd_wsgi_outv_keep(struct wd_wsgi_req *rq, const struct iovec *iov,
                  int iovcnt, int keep, PyObject *owner)
{
    size_t total = 0;
    int rc;

    for (int i = 0; i < iovcnt; i++)
        total += iov[i].iov_len;
    for (;;) {
        rc = write_once(rq, iov, iovcnt, total, keep, owner);
        if (rc == 0)
            return 0;
        if (rc != WD_AGAIN)
            break;
        Py_BEGIN_ALLOW_THREADS
        rc = wd_task_wait_writable(rq->t);
        Py_END_ALLOW_THREADS
        if (rc < 0)
            break;
    }
    PyErr_SetString(wd_wsgi.disconnected, "client disconnected");
    return -1;
}

int
wd_wsgi_out(struct wd_wsgi_req *rq, const void *data, size_t len)
{
    struct iovec iov = {(void *)data, len};

    return wd_wsgi_outv(rq, &iov, 1);
}

int
wd_wsgi_out_file(struct wd_wsgi_req *rq, int fd, off_t off, uint64_t len)
{
    int rc;

    for (;;) {
        rc = wd_task_write_file(rq->t, fd, off, len);
        if (rc == 0)
            return 0;
        if (rc != WD_AGAIN)
            break;
        Py_BEGIN_ALLOW_THREADS
        rc = wd_task_wait_writable(rq->t);
        Py_END_ALLOW_THREADS
        if (rc < 0)
            break;
    }
    PyErr_SetString(wd_wsgi.disconnected, "client disconnected");
    return -1;
}

/* Python's "-".join(p.capitalize() for p in name.split("-")), latin-1. */
static PyObject *
normalised_name(PyObject *name)
{
    PyObject *dash, *parts = NULL, *joined = NULL, *out = NULL;

    if (PyUnicode_IS_ASCII(name)) /* response.c capitalises ASCII */
        return PyUnicode_AsLatin1String(name);
    if ((dash = PyUnicode_FromString("-")) == NULL)
        return NULL;
    if ((parts = PyUnicode_Split(name, dash, -1)) == NULL)
        goto finally;
    for (Py_ssize_t i = 0; i < PyList_GET_SIZE(parts); i++) {
        PyObject *cap = PyObject_CallMethod(PyList_GET_ITEM(parts, i),
                                            "capitalize", NULL);

        if (cap == NULL)
            goto finally;
        PyList_SetItem(parts, i, cap);
    }
    if ((joined = PyUnicode_Join(dash, parts)) != NULL)
        out = PyUnicode_AsLatin1String(joined);

finally:
    Py_DECREF(dash);
    Py_XDECREF(parts);
    Py_XDECREF(joined);
    return out;
}

/*
 * Latin-1 bytes of a str without a copy when CPython already stores it
 * as one byte per character (every ASCII or latin-1 str); else an encoded
 * copy in *TMP (which raises UnicodeEncodeError as before).  NULL on error.
 */
static const char *
latin1_view(PyObject *s, Py_ssize_t *len, PyObject **tmp)
{
    *tmp = NULL;
    if (PyUnicode_KIND(s) == PyUnicode_1BYTE_KIND) {
        *len = PyUnicode_GET_LENGTH(s);
        return (const char *)PyUnicode_DATA(s);
    }
    if ((*tmp = PyUnicode_AsLatin1String(s)) == NULL)
        return NULL;
    *len = PyBytes_GET_SIZE(*tmp);
    return PyBytes_AS_STRING(*tmp);
}

/* Headers up to this count are encoded without a heap allocation. */
#define HEAD_STACK_HEADERS 24

/*
 * The header block for the app's status and headers (malloc'ed; caller
 * frees), wrote_header set.  NULL with a Python exception set.  Names
 * and values are viewed in place when they are one-byte strings, so a
 * typical response encodes without creating Python objects.
 */
static char *
build_head(struct wd_wsgi_req *rq, size_t *len)
{
    /* own references: building may allocate, so a finalizer (or another
       thread, given the GIL) may run start_response(exc_info), which
       puts a new list and status in place of these */
    PyObject *headers = rq->headers, *status = rq->status;
    Py_ssize_t n = PyList_GET_SIZE(headers), slen;
    struct wd_resp_header hstack[HEAD_STACK_HEADERS], *h = hstack;
    PyObject *stmp, *encstack[2 * HEAD_STACK_HEADERS], **enc = encstack;
    const char *st;
    char *head = NULL;
    int no_body;

    Py_INCREF(headers);
    Py_INCREF(status);
    /* encoding errors (non-latin-1) happen before anything is sent */
    if ((st = latin1_view(status, &slen, &stmp)) == NULL) {
        Py_DECREF(headers);
        Py_DECREF(status);
        return NULL;
    }
    no_body = !wd_response_status_has_body(st, (size_t)slen);
    /* a TERM may have arrived while the app ran (SPEC.md 4.4 c) */
    if (wd_task_stopping(rq->t))
        wd_response_set_close(&rq->resp);
    if (n > HEAD_STACK_HEADERS &&
        ((h = calloc((size_t)n, sizeof *h)) == NULL ||
         (enc = calloc(2 * (size_t)n, sizeof *enc)) == NULL)) {
        PyErr_NoMemory();
        if (enc == encstack)
            enc = NULL; /* nothing in it to release */
        goto finally;
    }
    memset(enc, 0, 2 * (size_t)n * sizeof *enc);
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *pair = PyList_GET_ITEM(headers, i);
        PyObject *name = PyTuple_GET_ITEM(pair, 0);
        Py_ssize_t nl, vl;
        const char *np, *vp;

        if (PyUnicode_IS_ASCII(name)) { /* response.c capitalises ASCII */
            np = (const char *)PyUnicode_DATA(name);
            nl = PyUnicode_GET_LENGTH(name);
        } else {
            if ((enc[2 * i] = normalised_name(name)) == NULL)
                goto finally;
            np = PyBytes_AS_STRING(enc[2 * i]);
            nl = PyBytes_GET_SIZE(enc[2 * i]);
        }
        if (no_body && nl == 14 && strncasecmp(np, "content-length", 14) == 0) {
            /* dropped from the block unseen (SPEC.md 12.4 step 2), so a
               value int() took but latin-1 cannot hold is no error */
            vp = "";
            vl = 0;
        } else if ((vp = latin1_view(PyTuple_GET_ITEM(pair, 1), &vl,
                                     &enc[2 * i + 1])) == NULL) {
            goto finally;
        }
        h[i].name = np;
        h[i].name_len = (size_t)nl;
        h[i].value = vp;
        h[i].value_len = (size_t)vl;
    }
    head = wd_response_head(&rq->resp, st, (size_t)slen, h, (size_t)n, len);
    if (head == NULL)
        PyErr_NoMemory();
    else
        rq->t->status = status_code(status);

finally:
    for (Py_ssize_t i = 0; enc != NULL && i < 2 * n; i++)
        Py_XDECREF(enc[i]);
    if (enc != encstack)
        free(enc);
    if (h != hstack)
        free(h);
    Py_XDECREF(stmp);
    Py_DECREF(headers);
    Py_DECREF(status);
    return head;
}

int
wd_wsgi_write_head(struct wd_wsgi_req *rq)
{
    size_t len;
    char *head = build_head(rq, &len);
    int rc;

    if (head == NULL)
        return -1;
    rc = wd_wsgi_out(rq, head, len);
    free(head);
    return rc;
}

/*
 * Send one planned emission: the pending response head (HEAD, may be
 * NULL), chunk line, data, CRLF -- copied into one piece when it all fits
 * in 16 KiB, else as one gathered write straight from the app's buffer;
 * what the socket does not take of DATA stays in OWNER's buffer (a bytes
 * object, or NULL: then it is copied) until the loop has sent it.
 */
static int
send_planned(struct wd_wsgi_req *rq, const char *head, size_t head_len,
             const struct wd_body_plan *p, const char *data, PyObject *owner)
{
    char small[16384], *q = small;
    size_t total = head_len + p->prefix_len + p->send + (p->suffix ? 2 : 0);

    if (total == 0)
        return 0;
    if (total <= sizeof small) {
        if (head_len) {
            memcpy(q, head, head_len);
            q += head_len;
        }
        memcpy(q, p->prefix, p->prefix_len);
        q += p->prefix_len;
        memcpy(q, data, p->send);
        q += p->send;
        if (p->suffix)
            memcpy(q, "\r\n", 2);
        return wd_wsgi_out(rq, small, total);
    }
    {
        /* larger: no copy here; one sendmsg from the app's own buffer */
        struct iovec iov[4] = {
            {(void *)head, head_len},
            {(void *)p->prefix, p->prefix_len},
            {(void *)data, p->send},
            {(void *)"\r\n", p->suffix ? 2 : 0},
        };

        return wd_wsgi_outv_keep(rq, iov, 4, 2, owner);
    }
}

/* The remembered Content-Length as the app gave it (Python's int(), no
 * bound), for a warning; BUF holds a 64-bit one. */
static const char *
cl_text(struct wd_wsgi_req *rq, char *buf, size_t len)
{
    const char *s;

    if (rq->cl_big != NULL && (s = PyUnicode_AsUTF8(rq->cl_big)) != NULL)
        return s;
    PyErr_Clear();
    snprintf(buf, len, "%" PRId64, rq->resp.cl);
    return buf;
}

void
wd_wsgi_log_body_warnings(struct wd_wsgi_req *rq, unsigned warn)
{
    char buf[24];

    if (warn & WD_RESP_WARN_EXCESS)
        wd_log(WD_LOG_WARNING, WD_CAT_SERVER,
               "application-written content exceeded the number of bytes "
               "specified by Content-Length header (%s)",
               cl_text(rq, buf, sizeof buf));
    if (warn & WD_RESP_WARN_NOBODY) {
        const char *s = PyUnicode_AsUTF8(rq->status);

        if (s == NULL)
            PyErr_Clear();
        wd_log(WD_LOG_WARNING, WD_CAT_SERVER,
               "application-written content was ignored due to HTTP "
               "response that may not contain a message-body: (%s)",
               s ? s : "?");
    }
}

/*
 * waitress's Task.write (SPEC.md 12.3): headers first, then the data,
 * framed.  Only bytes and bytearray can go out, and that is checked after
 * the headers were sent [QUIRK].
 */
static int
emit(struct wd_wsgi_req *rq, PyObject *data)
{
    struct wd_body_plan plan;
    PyObject *copy = NULL;
    char *head = NULL;
    size_t head_len = 0;
    const char *p;
    Py_ssize_t n;
    int rc;

    if (!rq->complete) {
        PyErr_SetString(PyExc_RuntimeError,
                        "start_response was not called before body written");
        return -1;
    }
    /* the head is built now but sent with the first data (one write) */
    if (!rq->resp.wrote_header && (head = build_head(rq, &head_len)) == NULL)
        return -1;
    if (head != NULL && !PyBytes_CheckExact(data) &&
        !PyByteArray_CheckExact(data)) {
        /* testing other data runs app code, which may write() too: the
           head goes out first, as waitress queues it before the test */
        rc = wd_wsgi_out(rq, head, head_len);
        free(head);
        head = NULL;
        head_len = 0;
        if (rc < 0)
            return -1;
    }
    if ((rc = PyObject_IsTrue(data)) <= 0)
        goto out;
    if (!rq->resp.has_body) {
        if ((n = PyObject_Size(data)) < 0) {
            rc = -1;
            goto out;
        }
        wd_response_body(&rq->resp, (size_t)n, &plan);
        wd_wsgi_log_body_warnings(rq, plan.warn);
        rc = 0;
        goto out;
    }
    if (PyBytes_Check(data)) {
        p = PyBytes_AS_STRING(data);
        n = PyBytes_GET_SIZE(data);
    } else if (PyByteArray_Check(data)) {
        /* a copy: the bytearray could change while we wait for the loop */
        if ((copy = PyBytes_FromObject(data)) == NULL) {
            rc = -1;
            goto out;
        }
        p = PyBytes_AS_STRING(copy);
        n = PyBytes_GET_SIZE(copy);
    } else {
        PyErr_Format(PyExc_TypeError,
                     "response body items must be bytes or bytearray, not %s",
                     Py_TYPE(data)->tp_name);
        rc = -1;
        goto out;
    }
    wd_response_body(&rq->resp, (size_t)n, &plan);
    wd_wsgi_log_body_warnings(rq, plan.warn);
    /* a borrow holds the whole object: when only part of it goes out
       (cut to the Content-Length), what waits is copied instead */
    rc = send_planned(rq, head, head_len, &plan, p,
                      plan.send == (size_t)n ? (copy ? copy : data) : NULL);
    free(head);
    Py_XDECREF(copy);
    return rc;

out:
    /* no data went with it: the head still goes out first [QUIRK: a
     * wrong item type is reported after the headers were sent] */
    if (head != NULL) {
        PyObject *type, *value, *tb;

        PyErr_Fetch(&type, &value, &tb);
        if (wd_wsgi_out(rq, head, head_len) < 0) {
            /* ClientDisconnected wins, as when the head went first */
            Py_XDECREF(type);
            Py_XDECREF(value);
            Py_XDECREF(tb);
            rc = -1;
        } else {
            PyErr_Restore(type, value, tb);
        }
        free(head);
    }
    return rc;
}

/* ---------------------------------------------------------------------
 * start_response and write
 */

struct start_response {
    PyObject_HEAD
    struct wd_wsgi_req *rq; /* NULL once the response is over */
    int busy; /* calls of it or its write() under way (GIL held) */
};

static PyTypeObject sr_type;

static PyObject *
sr_write(PyObject *self, PyObject *data)
{
    struct start_response *sr = (struct start_response *)self;
    int rc;

    if (sr->rq == NULL) {
        PyErr_SetString(PyExc_RuntimeError,
                        "write() called after the response ended");
        return NULL;
    }
    /* emit may let other threads run (app code, waiting for room): the
       request stays until it returns (retire_sr) */
    sr->busy++;
    rc = emit(sr->rq, data);
    sr->busy--;
    if (rc < 0)
        return NULL;
    Py_RETURN_NONE;
}

/*
 * The app has returned: later calls of start_response or write() raise,
 * and calls under way in other threads (or waiting for room) finish
 * first, since they use the request and its task.  GIL held; released
 * while waiting.
 */
static void
retire_sr(struct wd_wsgi_req *rq)
{
    struct start_response *sr = (struct start_response *)rq->sr;

    if (sr == NULL)
        return;
    sr->rq = NULL;
    while (sr->busy > 0) {
        Py_BEGIN_ALLOW_THREADS
        usleep(1000);
        Py_END_ALLOW_THREADS
    }
}

static PyMethodDef write_def = {"write", sr_write, METH_O,
                                "Write response body data."};

/* "raise exc_info[1]" */
static PyObject *
reraise(PyObject *exc_info)
{
    PyObject *v = PySequence_GetItem(exc_info, 1);

    if (v == NULL)
        return NULL;
    if (PyExceptionInstance_Check(v)) {
        PyObject *tb = PyException_GetTraceback(v);

        Py_INCREF(PyExceptionInstance_Class(v));
        PyErr_Restore(PyExceptionInstance_Class(v), v, tb);
        return NULL;
    }
    if (PyExceptionClass_Check(v))
        PyErr_SetNone(v);
    else
        PyErr_SetString(PyExc_TypeError,
                        "exceptions must derive from BaseException");
    Py_DECREF(v);
    return NULL;
}

/* "k, v = item" with Python's messages. */
static int
unpack_pair(PyObject *item, PyObject **k, PyObject **v)
{
    PyObject *it, *extra;

    if (PyTuple_Check(item) && PyTuple_GET_SIZE(item) == 2) {
        *k = PyTuple_GET_ITEM(item, 0);
        *v = PyTuple_GET_ITEM(item, 1);
        Py_INCREF(*k);
        Py_INCREF(*v);
        return 0;
    }
    if ((it = PyObject_GetIter(item)) == NULL) {
        if (PyErr_ExceptionMatches(PyExc_TypeError)) {
            PyErr_Clear();
            PyErr_Format(PyExc_TypeError,
                         "cannot unpack non-iterable %s object",
                         Py_TYPE(item)->tp_name);
        }
        return -1;
    }
    *k = PyIter_Next(it);
    *v = *k ? PyIter_Next(it) : NULL;
    if (*v == NULL) {
        if (!PyErr_Occurred())
            PyErr_Format(PyExc_ValueError,
                         "not enough values to unpack (expected 2, got %d)",
                         *k ? 1 : 0);
        goto fail;
    }
    if ((extra = PyIter_Next(it)) != NULL) {
        Py_DECREF(extra);
        PyErr_SetString(PyExc_ValueError,
                        "too many values to unpack (expected 2)");
        goto fail;
    }
    if (PyErr_Occurred())
        goto fail;
    Py_DECREF(it);
    return 0;

fail:
    Py_XDECREF(*k);
    Py_XDECREF(*v);
    Py_DECREF(it);
    return -1;
}

static int
has_crlf(PyObject *s)
{
    Py_ssize_t n = PyUnicode_GET_LENGTH(s);

    if (PyUnicode_KIND(s) == PyUnicode_1BYTE_KIND) {
        const unsigned char *p = PyUnicode_1BYTE_DATA(s);

        /* a byte loop cost five times as much on a hello's strings */
        return memchr(p, '\r', (size_t)n) != NULL ||
               memchr(p, '\n', (size_t)n) != NULL;
    }
    return PyUnicode_FindChar(s, '\r', 0, n, 1) >= 0 ||
           PyUnicode_FindChar(s, '\n', 0, n, 1) >= 0;
}

/*
 * int(V) for the usual Content-Length value, 1 to 18 ASCII digits,
 * without creating an int; 0 when V needs Python's int() (spaces, signs,
 * underscores, other digits, too long).
 */
static int
small_decimal(PyObject *v, long long *out)
{
    Py_ssize_t n = PyUnicode_GET_LENGTH(v);
    const unsigned char *p;
    long long x = 0;

    if (!PyUnicode_IS_ASCII(v) || n < 1 || n > 18)
        return 0;
    p = PyUnicode_1BYTE_DATA(v);
    for (Py_ssize_t i = 0; i < n; i++) {
        if (p[i] < '0' || p[i] > '9')
            return 0;
        x = x * 10 + (p[i] - '0');
    }
    *out = x;
    return 1;
}

/* name.lower() as UTF-8 into BUF (ASCII names without calling Python). */
static const char *
lower_name(PyObject *k, PyObject **tmp, Py_ssize_t *len)
{
    *tmp = NULL;
    if (PyUnicode_IS_ASCII(k))
        return PyUnicode_AsUTF8AndSize(k, len);
    if ((*tmp = PyObject_CallMethod(k, "lower", NULL)) == NULL)
        return NULL;
    return PyUnicode_AsUTF8AndSize(*tmp, len);
}

/* The checks of one header, SPEC.md 12.1 step 4, in their order. */
static int
check_header(struct wd_wsgi_req *rq, PyObject *k, PyObject *v)
{
    PyObject *tmp, *num;
    const char *low;
    Py_ssize_t len;
    int rc = -1;

    if (!PyUnicode_Check(k)) {
        PyErr_Format(PyExc_AssertionError,
                     "Header name %R is not a string in (%R, %R)", k, k, v);
        return -1;
    }
    if (!PyUnicode_Check(v)) {
        PyErr_Format(PyExc_AssertionError,
                     "Header value %R is not a string in (%R, %R)", v, k, v);
        return -1;
    }
    if (has_crlf(v)) {
        PyErr_SetString(PyExc_ValueError, "carriage return/line feed "
                                          "character present in header value");
        return -1;
    }
    if (has_crlf(k)) {
        PyErr_SetString(PyExc_ValueError, "carriage return/line feed "
                                          "character present in header name");
        return -1;
    }
    if ((low = lower_name(k, &tmp, &len)) == NULL)
        return -1;
    if (WD_RESPONSE_NAME_IS(low, (size_t)len, "content-length")) {
        long long cl;
        int overflow;

        if (small_decimal(v, &cl)) {
            Py_CLEAR(rq->cl_big);
            rq->resp.has_cl = 1;
            rq->resp.cl = cl;
            rc = 0;
            goto finally;
        }
        if ((num = PyNumber_Long(v)) == NULL)
            goto finally;
        cl = PyLong_AsLongLongAndOverflow(num, &overflow);
        if (cl == -1 && PyErr_Occurred()) {
            Py_DECREF(num);
            goto finally;
        }
        /* beyond 64 bits nothing can be sent anyway: clamp, and keep
           the number as the app gave it for the warnings */
        if (overflow) {
            cl = overflow > 0 ? INT64_MAX : INT64_MIN;
            /* NULL (past int's 4300-digit str limit, or no memory): the
               log shows the clamped number instead */
            Py_XSETREF(rq->cl_big, PyObject_Str(num));
            if (rq->cl_big == NULL)
                PyErr_Clear();
        } else {
            Py_CLEAR(rq->cl_big);
        }
        Py_DECREF(num);
        rq->resp.has_cl = 1;
        rq->resp.cl = cl;
    } else if (wd_response_is_hop_by_hop(low, (size_t)len)) {
        PyErr_Format(PyExc_AssertionError,
                     "%U is a \"hop-by-hop\" header; it cannot be used by a "
                     "WSGI application (see PEP 3333)",
                     k);
        goto finally;
    }
    rc = 0;

finally:
    Py_XDECREF(tmp);
    return rc;
}

static PyObject *sr_call_busy(struct wd_wsgi_req *rq, PyObject *self,
                              PyObject *args, PyObject *kw);

static PyObject *
sr_call(PyObject *self, PyObject *args, PyObject *kw)
{
    struct start_response *sr = (struct start_response *)self;
    PyObject *r;

    if (sr->rq == NULL) {
        PyErr_SetString(PyExc_RuntimeError,
                        "start_response called after the response ended");
        return NULL;
    }
    sr->busy++; /* as in sr_write */
    r = sr_call_busy(sr->rq, self, args, kw);
    sr->busy--;
    return r;
}

static PyObject *
sr_call_busy(struct wd_wsgi_req *rq, PyObject *self, PyObject *args,
             PyObject *kw)
{
    static char *kwlist[] = {"status", "headers", "exc_info", NULL};
    PyObject *status, *headers, *exc_info = Py_None;
    PyObject *it = NULL, *item, *add = NULL;
    int has_exc;

    Py_ssize_t nargs = PyTuple_GET_SIZE(args);

    /* the usual call, two or three positional arguments, without the
       format parser (a sixtieth of a hello request's instructions) */
    if ((kw == NULL || PyDict_GET_SIZE(kw) == 0) && nargs >= 2 &&
        nargs <= 3) {
        status = PyTuple_GET_ITEM(args, 0);
        headers = PyTuple_GET_ITEM(args, 1);
        if (nargs == 3)
            exc_info = PyTuple_GET_ITEM(args, 2);
    } else if (!PyArg_ParseTupleAndKeywords(args, kw, "OO|O:start_response",
                                            kwlist, &status, &headers,
                                            &exc_info)) {
        return NULL;
    }
    if ((has_exc = PyObject_IsTrue(exc_info)) < 0)
        return NULL;
    if (rq->complete && !has_exc) {
        PyErr_SetString(PyExc_AssertionError,
                        "start_response called a second time without "
                        "providing exc_info.");
        return NULL;
    }
    if (has_exc) {
        if (rq->resp.wrote_header)
            return reraise(exc_info);
        /* new headers replace the old; the remembered length stays
         * [QUIRK, SPEC.md 12.1 step 2].  A new list, as waitress's
         * "response_headers = []": a walk of the old one (the
         * file_wrapper's Content-Length removal) may be under way. */
        PyObject *fresh = PyList_New(0);

        if (fresh == NULL)
            return NULL;
        Py_SETREF(rq->headers, fresh);
    }
    rq->complete = 1;

    if (!PyUnicode_Check(status)) {
        PyErr_Format(PyExc_AssertionError, "status %S is not a string",
                     status);
        goto bad_status;
    }
    if (has_crlf(status)) {
        PyErr_SetString(PyExc_ValueError,
                        "carriage return/line feed character present in "
                        "status");
        goto bad_status;
    }
    Py_INCREF(status);
    Py_XSETREF(rq->status, status);

    if ((add = PyList_New(0)) == NULL ||
        (it = PyObject_GetIter(headers)) == NULL)
        goto fail;
    while ((item = PyIter_Next(it)) != NULL) {
        PyObject *k, *v, *pair;
        int rc;

        rc = unpack_pair(item, &k, &v);
        if (rc < 0) {
            Py_DECREF(item);
            goto fail;
        }
        if (check_header(rq, k, v) < 0) {
            Py_DECREF(item);
            Py_DECREF(k);
            Py_DECREF(v);
            goto fail;
        }
        /* an exact (name, value) tuple is immutable: keep it */
        if (PyTuple_CheckExact(item) && PyTuple_GET_SIZE(item) == 2) {
            Py_INCREF(item);
            pair = item;
        } else {
            pair = PyTuple_Pack(2, k, v);
        }
        Py_DECREF(item);
        Py_DECREF(k);
        Py_DECREF(v);
        if (pair == NULL || PyList_Append(add, pair) < 0) {
            Py_XDECREF(pair);
            goto fail;
        }
        Py_DECREF(pair);
    }
    if (PyErr_Occurred())
        goto fail;
    if (PyList_SetSlice(rq->headers, PyList_GET_SIZE(rq->headers),
                        PyList_GET_SIZE(rq->headers), add) < 0)
        goto fail;
    Py_DECREF(it);
    Py_DECREF(add);
    return PyCFunction_New(&write_def, self);

fail:
    Py_XDECREF(it);
    Py_XDECREF(add);
    return NULL;

bad_status:
    /* the response now counts as started; an app that catches the error
     * and returns a body gets waitress's default status */
    if (rq->status == NULL) {
        PyObject *type, *value, *tb;

        PyErr_Fetch(&type, &value, &tb);
        if ((rq->status = PyUnicode_InternFromString("200 OK")) == NULL) {
            rq->complete = 0; /* out of memory: no head without a status */
            Py_XDECREF(type);
            Py_XDECREF(value);
            Py_XDECREF(tb);
        } else {
            PyErr_Restore(type, value, tb);
        }
    }
    return NULL;
}

static void
sr_dealloc(PyObject *self)
{
    PyObject_Free(self);
}

static PyTypeObject sr_type = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "waitressd.StartResponse",
    .tp_basicsize = sizeof(struct start_response),
    .tp_dealloc = sr_dealloc,
    .tp_call = sr_call,
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "start_response(status, headers, exc_info=None)",
};

/* ---------------------------------------------------------------------
 * One request
 */

static PyObject *str_len, *str_close; /* interned on first use */

/*
 * hasattr(OBJ, NAME) with the name interned once (*CACHE).  Lists and
 * tuples, the usual results, are answered without a lookup: they have
 * __len__ and no close.
 */
static int
has_attr(PyObject *obj, PyObject **cache, const char *name)
{
    if (PyList_CheckExact(obj) || PyTuple_CheckExact(obj))
        return cache == &str_len;
    if (*cache == NULL && (*cache = PyUnicode_InternFromString(name)) == NULL) {
        PyErr_Clear();
        return PyObject_HasAttrString(obj, name);
    }
    return PyObject_HasAttr(obj, *cache);
}

/* Iterate the result (SPEC.md 12.2 steps 1-3 and 5). */
static int
consume(struct wd_wsgi_req *rq, PyObject *result)
{
    PyObject *it = NULL, *item, *r;
    int first = 1, rc = -1, sent;

    if ((sent = wd_wsgi_file_send(rq, result)) != 0) {
        if (sent > 0)
            return 0;
        goto finally;
    }
    if ((it = PyObject_GetIter(result)) == NULL)
        goto finally;
    while ((item = PyIter_Next(it)) != NULL) {
        int truth;

        if (first) {
            Py_ssize_t n = PyObject_Size(item);

            first = 0;
            if (n < 0)
                goto drop_item;
            /* a one-item iterable gets its length computed */
            if (!rq->resp.has_cl && has_attr(result, &str_len, "__len__")) {
                Py_ssize_t count = PyObject_Size(result);

                if (count < 0)
                    goto drop_item;
                if (count == 1) {
                    rq->resp.has_cl = 1;
                    rq->resp.cl = n;
                }
            }
        }
        /* empty items are skipped: headers wait for real data */
        if ((truth = PyObject_IsTrue(item)) < 0 ||
            (truth && emit(rq, item) < 0))
            goto drop_item;
        Py_DECREF(item);
        continue;

    drop_item:
        Py_DECREF(item);
        goto finally;
    }
    if (PyErr_Occurred())
        goto finally;
    if (wd_response_check_length(&rq->resp, rq->is_head)) {
        char buf[24];

        wd_log(WD_LOG_WARNING, WD_CAT_SERVER,
               "application returned too few bytes (%" PRIu64 ") for "
               "specified Content-Length (%s) via app_iter",
               rq->resp.written, cl_text(rq, buf, sizeof buf));
    }
    rc = 0;

finally:
    Py_XDECREF(it);
    /* close() always, even after an error (its own error then wins) */
    if (!rq->iter_closed) {
        PyObject *type, *value, *tb;

        rq->iter_closed = 1;
        PyErr_Fetch(&type, &value, &tb);
        if (has_attr(result, &str_close, "close")) {
            PyObject *handled = NULL;

            /* close() runs as in waitress's try/finally: an error of the
             * iteration is the one being handled, so an error of close()
             * gets it as __context__ and the traceback shows both */
            if (type != NULL) {
                PyErr_NormalizeException(&type, &value, &tb);
                if (tb != NULL)
                    PyException_SetTraceback(value, tb);
                handled = PyErr_GetHandledException();
                PyErr_SetHandledException(value);
            }
            r = PyObject_CallMethod(result, "close", NULL);
            if (type != NULL) {
                PyErr_SetHandledException(handled);
                Py_XDECREF(handled);
            }
            if (r == NULL) {
                Py_XDECREF(type);
                Py_XDECREF(value);
                Py_XDECREF(tb);
                return -1;
            }
            Py_DECREF(r);
        }
        PyErr_Restore(type, value, tb);
    }
    return rc;
}

/* SPEC.md 12.2 step 4: headers if still unsent, then the terminator. */
static int
finish(struct wd_wsgi_req *rq)
{
    const char *end;
    size_t len;

    if (!rq->resp.wrote_header) {
        PyObject *empty = PyBytes_FromStringAndSize("", 0);
        int rc;

        if (empty == NULL)
            return -1;
        rc = emit(rq, empty);
        Py_DECREF(empty);
        if (rc < 0)
            return -1;
    }
    end = wd_response_trailer(&rq->resp, &len);
    return len ? wd_wsgi_out(rq, end, len) : 0;
}

/* The 400 of SPEC.md 11: a generator-like response, no app call. */
static int
proxy_400(struct wd_wsgi_req *rq, const char *bad)
{
    static const struct wd_resp_header ct = {
        "Content-Type", 12, "text/plain; charset=utf-8", 25};
    char body[512], *head;
    struct wd_body_plan plan;
    size_t len, blen;
    const char *end;

    if (wd_proxy_error_body(bad, body, sizeof body) < 0) {
        PyErr_NoMemory();
        return -1;
    }
    blen = strlen(body);
    if ((rq->status = PyUnicode_FromString("400 Bad Request")) == NULL)
        return -1;
    if (wd_task_stopping(rq->t))
        wd_response_set_close(&rq->resp);
    if ((head = wd_response_head(&rq->resp, "400 Bad Request", 15, &ct, 1,
                                 &len)) == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    rq->t->status = 400;
    if (wd_wsgi_out(rq, head, len) < 0) {
        free(head);
        return -1;
    }
    free(head);
    wd_response_body(&rq->resp, blen, &plan);
    if (send_planned(rq, NULL, 0, &plan, body, NULL) < 0)
        return -1;
    end = wd_response_trailer(&rq->resp, &len);
    return len ? wd_wsgi_out(rq, end, len) : 0;
}

/* SPEC.md 13: log, then a 500 if nothing was sent, else cut the body. */
static void
handle_exception(struct wd_wsgi_req *rq)
{
    const struct wd_config *cfg = wd_wsgi.cfg;
    struct wd_task *t = rq->t;
    char *path, *tb, *resp;
    const char *shown;
    size_t len, body_len, tb_len = 0;
    int disconnected;

    tb = take_exception(&disconnected, &tb_len);
    path = path_for_log(rq->req);
    shown = path != NULL ? path : "?";
    t->close_after = 1;
    if (disconnected) {
        wd_log(WD_LOG_INFO, WD_CAT_SERVER,
               "Client disconnected while serving %s", shown);
        free(path);
        return;
    }
    if (tb != NULL) {
        /* the traceback by its length: a NUL in the exception's message
           is logged too, as Python's logging would write it */
        size_t n = tb_len && tb[tb_len - 1] == '\n' ? tb_len - 1 : tb_len;
        size_t cap = sizeof "Exception while serving \n" + strlen(shown) + n;
        char *msg = malloc(cap);

        t->app_exception = 1;

        /* format with the GIL (done), write without it */
        Py_BEGIN_ALLOW_THREADS
        if (msg != NULL) {
            int k = snprintf(msg, cap, "Exception while serving %s\n", shown);

            memcpy(msg + k, tb, n);
            wd_log_bytes(WD_LOG_ERROR, WD_CAT_SERVER, msg, (size_t)k + n);
            free(msg);
        } else {
            wd_log(WD_LOG_ERROR, WD_CAT_SERVER,
                   "Exception while serving %s\n%.*s", shown, (int)n, tb);
        }
        Py_END_ALLOW_THREADS
    }
    free(path);
    if (!rq->resp.wrote_header) {
        int expose = cfg->expose_tracebacks && tb != NULL;

        resp = wd_error_response_n(500, expose ? tb : generic_500,
                                   expose ? tb_len : strlen(generic_500),
                                   cfg->ident, rq->req->http11, t->start,
                                   &len, &body_len);
        t->status = 500;
        if (resp != NULL) {
            rq->resp.wrote_header = 1;
            if (wd_wsgi_out(rq, resp, len) == 0)
                rq->resp.body_bytes = body_len;
            PyErr_Clear();
            free(resp);
        }
    }
    free(tb);
}

/* REMOTE_USER after the app, as latin-1 bytes when it fits. */
static char *
remote_user(PyObject *environ, size_t *len)
{
    PyObject *v, *b;
    char *out = NULL;

    if (environ == NULL)
        return NULL;
    v = PyDict_GetItemWithError(environ, wd_wsgi.keys[WK_REMOTE_USER]);
    if (v == NULL || !PyUnicode_Check(v)) {
        PyErr_Clear();
        return NULL;
    }
    if ((b = PyUnicode_AsLatin1String(v)) == NULL) {
        PyErr_Clear();
        b = PyUnicode_AsEncodedString(v, "utf-8", "backslashreplace");
    }
    if (b != NULL) {
        /* bytes and length: a NUL in it is logged as \x00 */
        *len = (size_t)PyBytes_GET_SIZE(b);
        if ((out = malloc(*len + 1)) != NULL)
            memcpy(out, PyBytes_AS_STRING(b), *len + 1);
        Py_DECREF(b);
    }
    PyErr_Clear();
    return out;
}

static void
serve(struct wd_wsgi_req *rq)
{
    struct wd_task *t = rq->t;
    const struct wd_http_request *req = rq->req;
    PyObject *result;
    const char *bad = NULL;
    int r;

    wd_response_init(&rq->resp, req->http11, req->connection,
                     req->connection ? strlen(req->connection) : 0,
                     wd_wsgi.cfg->ident, t->start);
    if (wd_task_stopping(t) || req->close_after) /* atomic: loop writes */
        wd_response_set_close(&rq->resp);
    rq->is_head = strcmp(req->method, "HEAD") == 0;
    if ((rq->headers = PyList_New(0)) == NULL)
        goto error;

    r = wd_wsgi_environ(rq, &bad, &t->log_remote_addr);
    if (r == 1) {
        if (proxy_400(rq, bad) < 0)
            goto error;
        return;
    }
    if (r < 0)
        goto error;
    if ((rq->sr = (PyObject *)PyObject_New(struct start_response, &sr_type)) ==
        NULL)
        goto error;
    ((struct start_response *)rq->sr)->rq = rq;
    ((struct start_response *)rq->sr)->busy = 0;

    result = PyObject_CallFunctionObjArgs(wd_wsgi.app, rq->environ, rq->sr,
                                          NULL);
    if (result == NULL)
        goto error;
    r = consume(rq, result);
    Py_DECREF(result);
    retire_sr(rq);
    if (r < 0 || finish(rq) < 0)
        goto error;
    return;

error:
    retire_sr(rq);
    handle_exception(rq);
}

void
wd_wsgi_run(struct wd_task *t)
{
    struct wd_wsgi_req rq;
    PyGILState_STATE g = PyGILState_UNLOCKED;
    int own = thread_ts == NULL && !thread_entered;

    /* a thread that skipped wd_wsgi_thread_start still works, slower */
    if (own)
        g = PyGILState_Ensure();
    else if (!thread_entered)
        PyEval_RestoreThread(thread_ts);

    wd_wsgi_drop_released(); /* bytes the loop has finished sending */
    memset(&rq, 0, sizeof rq);
    rq.t = t;
    rq.req = t->req;
    if (wd_task_client_disconnected(t)) {
        /* SPEC.md 5.2: a gone client's queued request is not served */
        t->close_after = 1;
    } else {
        serve(&rq);
        t->remote_user = remote_user(rq.environ, &t->remote_user_len);
        if (rq.resp.close)
            t->close_after = 1;
        t->body_bytes = rq.resp.body_bytes;
        if (t->status == 0)
            t->status = status_code(rq.status);
    }

    retire_sr(&rq); /* already, unless serve() stopped before the app */
    wd_wsgi_env_detach(&rq);
    Py_XDECREF(rq.sr);
    Py_XDECREF(rq.environ);
    Py_XDECREF(rq.input);
    Py_XDECREF(rq.discon);
    Py_XDECREF(rq.status);
    Py_XDECREF(rq.headers);
    Py_XDECREF(rq.cl_big);
    PyErr_Clear();

    if (own)
        PyGILState_Release(g);
    else if (!thread_entered)
        thread_ts = PyEval_SaveThread();
}

void
wd_wsgi_enter(void)
{
    if (thread_ts == NULL || thread_entered)
        return;
    PyEval_RestoreThread(thread_ts);
    thread_entered = 1;
}

void
wd_wsgi_leave(void)
{
    if (!thread_entered)
        return;
    thread_entered = 0;
    thread_ts = PyEval_SaveThread();
}

/* ---------------------------------------------------------------------
 * Boot
 */

/*
 * Print the pending exception with its traceback to sys.stderr and clear
 * it.  Not PyErr_Print: that would exit the process on SystemExit.
 */
static void
print_python_error(void)
{
    PyObject *type, *value, *tb, *mod, *r = NULL, *serr;

    if (!PyErr_Occurred())
        return;
    PyErr_Fetch(&type, &value, &tb);
    PyErr_NormalizeException(&type, &value, &tb);
    if ((mod = PyImport_ImportModule("traceback")) != NULL) {
        r = PyObject_CallMethod(mod, "print_exception", "OOO", type,
                                value ? value : Py_None, tb ? tb : Py_None);
        Py_DECREF(mod);
    }
    Py_XDECREF(r);
    if ((serr = PySys_GetObject("stderr")) != NULL && serr != Py_None) {
        r = PyObject_CallMethod(serr, "flush", NULL);
        Py_XDECREF(r);
    }
    PyErr_Clear();
    Py_XDECREF(type);
    Py_XDECREF(value);
    Py_XDECREF(tb);
    fflush(stderr);
}

void
wd_wsgi_main_wait(int done_fd)
{
    struct pollfd pfd = {.fd = done_fd, .events = POLLIN};

    /* Woken by the signals the process gets (the kernel's first choice
       is this thread), and once a second for the calls C extensions
       queue with Py_AddPendingCall: both run on the main thread only. */
    while (poll(&pfd, 1, 1000) <= 0) {
        PyEval_RestoreThread(main_ts);
        if (Py_MakePendingCalls() < 0)
            print_python_error(); /* a handler raised: logged, as a
                                     thread's uncaught exception is */
        main_ts = PyEval_SaveThread();
    }
}

/*
 * sys.executable of an embedded interpreter is "" (or waitressd itself,
 * found on PATH): multiprocessing's spawn and forkserver, and
 * subprocess.run([sys.executable, ...]), then fail or start waitressd.
 * Point it at the interpreter of the same installation, as an app run
 * by waitress-serve sees it, when that file exists.
 */
static void
set_executable(void)
{
    static const char code[] =
        "import os, sys\n"
        "p = os.path.join(sys.exec_prefix, 'bin',\n"
        "                 'python%d.%d' % sys.version_info[:2])\n"
        "if os.access(p, os.X_OK):\n"
        "    sys.executable = sys._base_executable = p\n";
    PyObject *g = PyDict_New(), *r = NULL;

    if (g != NULL &&
        PyDict_SetItemString(g, "__builtins__", PyEval_GetBuiltins()) == 0)
        r = PyRun_String(code, Py_file_input, g, g);
    if (r == NULL)
        PyErr_Clear(); /* left as it was */
    Py_XDECREF(r);
    Py_XDECREF(g);
}

static int
start_python(const struct wd_config *cfg)
{
    PyConfig pc;
    PyStatus st;
    PyObject *path, *item;
    char *argv[] = {"waitressd", NULL};
    char cwd[4096];

    if (Py_IsInitialized())
        return 0;
    PyConfig_InitPythonConfig(&pc);
    pc.install_signal_handlers = 0; /* the worker's loop owns signals */
    pc.parse_argv = 0;
    st = PyConfig_SetBytesArgv(&pc, 1, argv);
    if (!PyStatus_Exception(st))
        st = Py_InitializeFromConfig(&pc);
    PyConfig_Clear(&pc);
    if (PyStatus_Exception(st)) {
        fprintf(stderr, "waitressd: cannot start Python: %s%s%s\n",
                st.func ? st.func : "", st.func ? ": " : "",
                st.err_msg ? st.err_msg : "unknown error");
        return -1;
    }

    if ((path = PySys_GetObject("path")) == NULL || !PyList_Check(path)) {
        fprintf(stderr, "waitressd: sys.path is missing\n");
        return -1;
    }
    set_executable();
    for (size_t i = 0; i < cfg->pythonpath.len; i++) {
        if ((item = PyUnicode_DecodeFSDefault(cfg->pythonpath.items[i])) ==
                NULL ||
            PyList_Insert(path, (Py_ssize_t)i, item) < 0) {
            Py_XDECREF(item);
            print_python_error();
            return -1;
        }
        Py_DECREF(item);
    }
    if (getcwd(cwd, sizeof cwd) != NULL) {
        if ((item = PyUnicode_DecodeFSDefault(cwd)) == NULL ||
            PyList_Append(path, item) < 0) {
            Py_XDECREF(item);
            print_python_error();
            return -1;
        }
        Py_DECREF(item);
    }
    return 0;
}

/*
 * pkgutil.resolve_name(NAME), called when CALL.  NULL on failure with
 * "Cannot import WSGI application 'NAME': REASON" in ERR; with PRINT the
 * traceback and "Error: ..." go to stderr.
 */
static PyObject *
resolve_app(const char *name, int call, int print, char *err, size_t errlen)
{
    PyObject *pkgutil, *uname, *app = NULL, *type, *value, *tb, *str;
    const char *reason = NULL;

    /* as Python decodes a command line: an undecodable byte becomes a
       lone surrogate, and resolve_name says "invalid format" (not a
       codec error) */
    if ((pkgutil = PyImport_ImportModule("pkgutil")) != NULL &&
        (uname = PyUnicode_DecodeUTF8(name, (Py_ssize_t)strlen(name),
                                      "surrogateescape")) != NULL) {
        app = PyObject_CallMethod(pkgutil, "resolve_name", "O", uname);
        Py_DECREF(uname);
    }
    Py_XDECREF(pkgutil);
    if (app != NULL && call)
        Py_SETREF(app, PyObject_CallNoArgs(app));
    if (app != NULL)
        return app;

    PyErr_Fetch(&type, &value, &tb);
    PyErr_NormalizeException(&type, &value, &tb);
    str = value ? PyObject_Str(value) : NULL;
    /* as print() to stderr writes it: a lone surrogate (an undecodable
       file name) as \udcff */
    if (str != NULL)
        Py_SETREF(str, PyUnicode_AsEncodedString(str, "utf-8",
                                                 "backslashreplace"));
    if (str != NULL)
        reason = PyBytes_AS_STRING(str);
    if (reason == NULL) {
        PyErr_Clear();
        reason = "unknown error";
    }
    snprintf(err, errlen, "Cannot import WSGI application '%s': %s", name,
             reason);
    if (print) {
        PyErr_Restore(type, value, tb);
        type = value = tb = NULL;
        print_python_error();
        fprintf(stderr, "Error: %s\n", err);
        fflush(stderr);
    }
    Py_XDECREF(str);
    Py_XDECREF(type);
    Py_XDECREF(value);
    Py_XDECREF(tb);
    return NULL;
}

static PyObject *
str_or_none(const char *s)
{
    if (s == NULL)
        Py_RETURN_NONE;
    return PyUnicode_DecodeLatin1(s, (Py_ssize_t)strlen(s), NULL);
}

/* An option's str: latin-1 bytes, or UTF-8 text beyond latin-1 (as
 * Python decodes a command line: undecodable bytes surrogate-escaped). */
static PyObject *
text_or_none(const char *s, unsigned utf8)
{
    if (s == NULL || !utf8)
        return str_or_none(s);
    return PyUnicode_DecodeUTF8(s, (Py_ssize_t)strlen(s), "surrogateescape");
}

static int
setup_state(const struct wd_config *cfg, int nworkers)
{
    PyObject *tbmod;

    wd_wsgi.cfg = cfg;
    wd_wsgi.multiprocess = nworkers > 1;
    if (wd_wsgi_env_init() < 0 || wd_wsgi_input_init() < 0 ||
        wd_wsgi_file_init() < 0 || PyType_Ready(&sr_type) < 0)
        return -1;
    if ((wd_wsgi.version = Py_BuildValue("(ii)", 1, 0)) == NULL ||
        (wd_wsgi.url_scheme = text_or_none(
             cfg->url_scheme, cfg->utf8_text & WD_UTF8_URL_SCHEME)) == NULL ||
        (wd_wsgi.server_name = text_or_none(
             cfg->server_name, cfg->utf8_text & WD_UTF8_SERVER_NAME)) == NULL ||
        (wd_wsgi.ident = str_or_none(cfg->ident)) == NULL ||
        (wd_wsgi.script_name = text_or_none(
             cfg->url_prefix ? cfg->url_prefix : "",
             cfg->utf8_text & WD_UTF8_URL_PREFIX)) == NULL)
        return -1;
    if ((tbmod = PyImport_ImportModule("traceback")) == NULL)
        return -1;
    wd_wsgi.format_exception = PyObject_GetAttrString(tbmod,
                                                      "format_exception");
    Py_DECREF(tbmod);
    return wd_wsgi.format_exception ? 0 : -1;
}

int
wd_wsgi_init(const struct wd_config *cfg, int nworkers)
{
    PyObject *logging, *r = NULL;
    char err[1024];

    if (start_python(cfg) < 0)
        return WD_EXIT_BOOT;
    if (setup_state(cfg, nworkers) < 0) {
        print_python_error();
        return WD_EXIT_BOOT;
    }
    if (cfg->app == NULL) {
        fprintf(stderr, "Error: Specify an application\n");
        return WD_EXIT_APP;
    }
    if ((wd_wsgi.app = resolve_app(cfg->app, cfg->call, 1, err,
                                   sizeof err)) == NULL)
        return WD_EXIT_APP;

    /* after the import, so an app that set up logging keeps its own */
    if ((logging = PyImport_ImportModule("logging")) != NULL) {
        r = PyObject_CallMethod(logging, "basicConfig", NULL);
        Py_DECREF(logging);
    }
    if (r == NULL) {
        print_python_error();
        return WD_EXIT_BOOT;
    }
    Py_DECREF(r);

    main_ts = PyEval_SaveThread();
    return 0;
}

void
wd_wsgi_thread_start(void)
{
    thread_gil = PyGILState_Ensure();
    thread_ts = PyEval_SaveThread();
}

void
wd_wsgi_thread_stop(void)
{
    if (thread_ts == NULL)
        return;
    PyEval_RestoreThread(thread_ts);
    thread_ts = NULL;
    PyGILState_Release(thread_gil);
}

void
wd_wsgi_shutdown(void)
{
    PyGILState_STATE g;
    const char *streams[] = {"stdout", "stderr"};

    if (!Py_IsInitialized())
        return;
    g = PyGILState_Ensure();
    for (size_t i = 0; i < WD_ARRAY_LEN(streams); i++) {
        PyObject *f = PySys_GetObject(streams[i]), *r;

        if (f != NULL && f != Py_None) {
            r = PyObject_CallMethod(f, "flush", NULL);
            Py_XDECREF(r);
        }
    }
    PyErr_Clear();
    PyGILState_Release(g);
}

/* CPython's own dumper, the one faulthandler calls from its signal
   handlers: it walks the thread states without a lock and writes with
   write(2) only.  Exported, but declared in an internal header. */
extern const char *_Py_DumpTracebackThreads(int fd, PyInterpreterState *interp,
                                            PyThreadState *current_tstate);

void
wd_wsgi_dump_stacks(int fd)
{
    static const char head[] = "Python threads of this worker:\n";
    const char *err;
    ssize_t rc;

    if (!Py_IsInitialized())
        return;
    rc = write(fd, head, sizeof head - 1);
    err = _Py_DumpTracebackThreads(fd, NULL, NULL);
    if (err != NULL) {
        rc = write(fd, err, strlen(err));
        rc = write(fd, "\n", 1);
    }
    (void)rc;
}

int
wd_wsgi_check_app(const struct wd_config *cfg, char *err, size_t errlen)
{
    PyObject *app;

    if (cfg->app == NULL)
        return 0;
    if (start_python(cfg) < 0) {
        snprintf(err, errlen, "cannot start the Python interpreter");
        return -1;
    }
    /* resolve only: a factory (call) is not run by a configuration test.
       It would run as whoever runs -t (root, where workers run it as
       `user`: files it makes would be root's), and a thread it starts
       would keep Py_FinalizeEx waiting forever. */
    app = resolve_app(cfg->app, 0, 0, err, errlen);
    Py_XDECREF(app);
    /* throw-away interpreter: give its memory back (leak checkers) */
    Py_FinalizeEx();
    return app != NULL ? 0 : -1;
}
