/*
 * wsgi_file.c - wsgi.file_wrapper (SPEC.md 12.8).
 *
 * The wrapper type itself is a few lines of Python run at boot: it only
 * forwards to the file object, and apps may subclass or introspect it
 * like waitress's ReadOnlyFileBasedBuffer.  The fast path is C: when the
 * app returns a wrapper over a seekable file, the bridge sends the bytes
 * from the current position, with sendfile(2) (wd_task_write_file) for a
 * regular file with a working fileno(), else by reading blocks with the
 * GIL held.  Pool thread, GIL held.
 */
#include "wsgi_int.h"

#include <sys/stat.h>

#include "task.h"
#include "wd.h"

static const char wrapper_src[] =
    "class FileWrapper:\n"
    "    \"\"\"wsgi.file_wrapper: iterate FILE in BLOCK_SIZE reads.\"\"\"\n"
    "\n"
    "    def __init__(self, file, block_size=32768):\n"
    "        self.file = file\n"
    "        self.block_size = block_size\n"
    "        if _is_seekable(file):\n"
    "            if hasattr(file, 'seekable'):\n"
    "                self.seekable = file.seekable\n"
    "            self.seek = file.seek\n"
    "            self.tell = file.tell\n"
    "\n"
    "    def _prepare(self, size=None):\n"
    "        if not _is_seekable(self.file):\n"
    "            return 0\n"
    "        start = self.file.tell()\n"
    "        self.file.seek(0, 2)\n"
    "        end = self.file.tell()\n"
    "        self.file.seek(start)\n"
    "        if size is None:\n"
    "            return end - start\n"
    "        return min(end - start, size)\n"
    "\n"
    "    def __iter__(self):\n"
    "        return self\n"
    "\n"
    "    def __next__(self):\n"
    "        data = self.file.read(self.block_size)\n"
    "        if not data:\n"
    "            raise StopIteration\n"
    "        return data\n"
    "\n"
    "    def close(self):\n"
    "        if hasattr(self.file, 'close'):\n"
    "            self.file.close()\n"
    "\n"
    "\n"
    "def _is_seekable(fp):\n"
    "    if hasattr(fp, 'seekable'):\n"
    "        return fp.seekable()\n"
    "    return hasattr(fp, 'seek') and hasattr(fp, 'tell')\n"
    "\n"
    "\n"
    "class ClientDisconnected(Exception):\n"
    "    \"\"\"The client went away while the response was being sent.\"\"\"\n";

/* io's own binary file classes, looked up once (wd_wsgi_file_init) */
static PyObject *real_classes[3];

static int
load_real_classes(void)
{
    static const char *const names[] = {"FileIO", "BufferedReader",
                                        "BufferedRandom"};
    PyObject *io = PyImport_ImportModule("io");
    int rc = 0;

    if (io == NULL)
        return -1;
    for (size_t i = 0; i < sizeof names / sizeof names[0] && rc == 0; i++)
        if ((real_classes[i] = PyObject_GetAttrString(io, names[i])) == NULL)
            rc = -1;
    Py_DECREF(io);
    return rc;
}

int
wd_wsgi_file_init(void)
{
    PyObject *mod, *dict, *res, *modules;
    int rc = -1;

    if ((mod = PyModule_New("waitressd")) == NULL)
        return -1;
    dict = PyModule_GetDict(mod); /* borrowed */
    if (PyDict_SetItemString(dict, "__builtins__", PyEval_GetBuiltins()) < 0)
        goto finally;
    res = PyRun_String(wrapper_src, Py_file_input, dict, dict);
    if (res == NULL)
        goto finally;
    Py_DECREF(res);
    wd_wsgi.file_wrapper = PyDict_GetItemString(dict, "FileWrapper");
    wd_wsgi.disconnected = PyDict_GetItemString(dict, "ClientDisconnected");
    if (wd_wsgi.file_wrapper == NULL || wd_wsgi.disconnected == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "waitressd module incomplete");
        goto finally;
    }
    Py_INCREF(wd_wsgi.file_wrapper);
    Py_INCREF(wd_wsgi.disconnected);
    if (load_real_classes() < 0)
        goto finally;
    modules = PyImport_GetModuleDict(); /* borrowed */
    if (PyDict_SetItemString(modules, "waitressd", mod) < 0)
        goto finally;
    rc = 0;

finally:
    Py_DECREF(mod);
    return rc;
}

/*
 * The descriptor of FILE when it is a real, regular file we may sendfile
 * from, else -1 (no exception left set).  Real means one of io's own
 * binary file classes, not a subclass: one that overrides read() makes
 * the body what read() returns (SPEC.md 12.8), not the descriptor's bytes.
 */
static int
real_fd(PyObject *file)
{
    PyObject *r = NULL;
    struct stat st;
    int fd = -1, real = 0;

    for (size_t i = 0; i < sizeof real_classes / sizeof real_classes[0]; i++)
        real |= (PyObject *)Py_TYPE(file) == real_classes[i];
    if (!real || (r = PyObject_CallMethod(file, "fileno", NULL)) == NULL)
        goto finally;
    fd = PyLong_AsLong(r);
    if (fd < 0 || fstat(fd, &st) < 0 || !S_ISREG(st.st_mode))
        fd = -1;

finally:
    PyErr_Clear();
    Py_XDECREF(r);
    return fd;
}

/* Send SIZE bytes of FILE from its position by reading BLOCK at a time. */
static int
send_blocks(struct wd_wsgi_req *rq, PyObject *file, long long size)
{
    while (size > 0) {
        long long want = size < WD_COPY_BYTES ? size : WD_COPY_BYTES;
        PyObject *data = PyObject_CallMethod(file, "read", "L", want);
        char *p;
        Py_ssize_t n;

        if (data == NULL)
            return -1;
        /* a bytearray is sent too, as a copy: it may change while we
           wait for room */
        if (PyByteArray_Check(data))
            Py_SETREF(data, PyBytes_FromObject(data));
        if (data == NULL || PyBytes_AsStringAndSize(data, &p, &n) < 0) {
            Py_XDECREF(data);
            return -1;
        }
        if (n == 0) {
            Py_DECREF(data);
            break;
        }
        if (n > size)
            n = (Py_ssize_t)size;
        if (wd_wsgi_out(rq, p, (size_t)n) < 0) {
            Py_DECREF(data);
            /* the client left: the file is the server's to send (in
               waitress the loop reads it), so it ends here quietly, as a
               sendfile'd one does; SPEC.md 5.3's line is for the app's
               own writes */
            if (!PyErr_ExceptionMatches(wd_wsgi.disconnected))
                return -1;
            PyErr_Clear();
            wd_response_set_close(&rq->resp);
            return 0;
        }
        rq->resp.body_bytes += (uint64_t)n;
        size -= n;
        Py_DECREF(data);
    }
    if (size > 0) /* the file shrank: the body is short, so close */
        wd_response_set_close(&rq->resp);
    return 0;
}

/*
 * Drop the app's Content-Length headers (the file size replaces them),
 * matched as waitress does, by name.lower() == "content-length".  The
 * app's lower() may do anything, start_response(exc_info) included: the
 * list is walked by index with its own references.
 */
static int
remove_content_length(struct wd_wsgi_req *rq)
{
    static PyObject *cl_name;
    PyObject *kept, *old = rq->headers;

    if (cl_name == NULL &&
        (cl_name = PyUnicode_InternFromString("content-length")) == NULL)
        return -1;
    if ((kept = PyList_New(0)) == NULL)
        return -1;
    Py_INCREF(old);
    for (Py_ssize_t i = 0; i < PyList_GET_SIZE(old); i++) {
        PyObject *pair = PyList_GET_ITEM(old, i), *lower;
        int is_cl;

        Py_INCREF(pair);
        lower = PyObject_CallMethod(PyTuple_GET_ITEM(pair, 0), "lower", NULL);
        is_cl = lower == NULL
                    ? -1
                    : PyObject_RichCompareBool(lower, cl_name, Py_EQ);
        Py_XDECREF(lower);
        if (is_cl < 0 || (!is_cl && PyList_Append(kept, pair) < 0)) {
            Py_DECREF(pair);
            Py_DECREF(old);
            Py_DECREF(kept);
            return -1;
        }
        Py_DECREF(pair);
    }
    Py_DECREF(old);
    Py_SETREF(rq->headers, kept);
    return 0;
}

int
wd_wsgi_file_send(struct wd_wsgi_req *rq, PyObject *result)
{
    PyObject *r = NULL, *file = NULL;
    long long size;
    int fd, rc = -1;

    switch (PyObject_IsInstance(result, wd_wsgi.file_wrapper)) {
    case 0:
        return 0;
    case 1:
        break;
    default:
        return -1;
    }
    /* write() already sent the head: the file is only the rest of the
       body, framed as any other (waitress would send its bytes raw,
       which breaks a chunked body) */
    if (rq->resp.wrote_header)
        return 0;
    if (rq->resp.has_cl)
        r = PyObject_CallMethod(result, "_prepare", "L",
                                (long long)rq->resp.cl);
    else
        r = PyObject_CallMethod(result, "_prepare", NULL);
    if (r == NULL)
        return -1;
    size = PyLong_AsLongLong(r);
    Py_DECREF(r);
    if (size == -1 && PyErr_Occurred())
        return -1;
    if (size <= 0)
        return 0; /* not seekable or nothing left: plain iteration */
    /* _prepare ran the file's own methods, which may have written */
    if (rq->resp.wrote_header)
        return 0;

    if (!rq->complete) {
        PyErr_SetString(PyExc_RuntimeError,
                        "start_response was not called before body written");
        return -1;
    }
    if (!rq->resp.has_cl || rq->resp.cl != size) {
        if (rq->resp.has_cl && remove_content_length(rq) < 0)
            return -1;
        if (rq->resp.wrote_header) /* a name's lower() wrote */
            return 0;
        rq->resp.has_cl = 1;
        rq->resp.cl = size;
    }
    /* the file is the whole body: a write() meanwhile (another thread,
       the file's own read) finds the length used up */
    rq->resp.written = (uint64_t)size;
    if (wd_wsgi_write_head(rq) < 0)
        return -1;
    if (!rq->resp.has_body) {
        struct wd_body_plan plan;

        /* dropped, with emit's warning (SPEC.md 12.6) */
        wd_response_body(&rq->resp, (size_t)size, &plan);
        wd_wsgi_log_body_warnings(rq, plan.warn);
        rc = 1;
        goto close;
    }
    if ((file = PyObject_GetAttrString(result, "file")) == NULL)
        return -1;
    fd = real_fd(file);
    if (fd >= 0) {
        PyObject *pos = PyObject_CallMethod(file, "tell", NULL);
        long long off;

        if (pos == NULL)
            goto finally;
        off = PyLong_AsLongLong(pos);
        Py_DECREF(pos);
        if (off == -1 && PyErr_Occurred())
            goto finally;
        if (wd_wsgi_out_file(rq, fd, (off_t)off, (uint64_t)size) < 0)
            goto finally;
        rq->resp.body_bytes += (uint64_t)size;
    } else if (send_blocks(rq, file, size) < 0) {
        goto finally;
    }
    rc = 1;

close:
    /* the loop holds its own dup of the descriptor: close the app's now */
    rq->iter_closed = 1;
    r = PyObject_CallMethod(result, "close", NULL);
    if (r == NULL)
        rc = -1;
    Py_XDECREF(r);

finally:
    Py_XDECREF(file);
    return rc;
}
