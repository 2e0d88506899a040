/*
 * wsgi_io.c - the wsgi.input object (SPEC.md 10.1).
 *
 * A read-only, seekable binary file over the request body, which the
 * parser has fully buffered in a wd_buf (memory or an unlinked temp
 * file).  Reads use wd_buf_pread with our own cursor and never consume
 * the buffer, so seek(0) and re-reading work.  Pool thread, GIL held.
 * A body in a temp file is handed over as a real file object instead
 * (spilled_file), as SPEC.md 10.1 says; this object is its fallback.
 *
 * The body belongs to the task; when the task ends the bridge detaches
 * the object (buf = NULL; the real file is closed) so an app that kept a
 * reference gets "closed file" errors instead of reading freed memory.
 */
#include "wsgi_int.h"

#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <sys/stat.h>
#include <unistd.h>

#include "buf.h"

struct input {
    PyObject_HEAD
    struct wd_buf *buf; /* borrowed from the request; NULL: empty */
    uint64_t len;
    uint64_t pos;
    int closed;
};

static PyTypeObject input_type;

/*
 * A body that spilled to its temp file is handed over as a real file
 * (SPEC.md 10.1: "a file object for spilled bodies"; waitress gives its
 * temp file), opened anew through /proc so that it has its own offset and
 * may outlive the task.  NULL, no exception set, when that cannot be
 * done: the input object below serves instead.
 */
static PyObject *
spilled_file(const struct wd_buf *buf)
{
    uint64_t head = 0, tail = 0;
    int fd = wd_buf_file(buf, &head, &tail), nfd;
    char path[40];
    struct stat st;
    PyObject *f;

    if (fd < 0 || head != 0)
        return NULL;
    snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
    if ((nfd = open(path, O_RDONLY | O_CLOEXEC)) < 0)
        return NULL;
    if (fstat(nfd, &st) < 0 || (uint64_t)st.st_size != tail) {
        close(nfd); /* more in the file than the body: not this way */
        return NULL;
    }
    /* (on failure io may or may not have taken NFD: leave it, rather than
       close a number another thread may have been given meanwhile) */
    if ((f = PyFile_FromFd(nfd, NULL, "rb", -1, NULL, NULL, NULL, 1)) == NULL)
        PyErr_Clear();
    return f;
}

PyObject *
wd_wsgi_input_new(struct wd_buf *buf)
{
    struct input *in;
    PyObject *f;

    if (buf != NULL && (f = spilled_file(buf)) != NULL)
        return f;
    if ((in = PyObject_New(struct input, &input_type)) == NULL)
        return NULL;
    in->buf = buf;
    in->len = buf ? wd_buf_len(buf) : 0;
    in->pos = 0;
    in->closed = 0;
    return (PyObject *)in;
}

void
wd_wsgi_input_detach(PyObject *obj, int held)
{
    struct input *in = (struct input *)obj;

    if (in == NULL)
        return;
    if (Py_TYPE(obj) != &input_type) { /* a spilled body's file */
        PyObject *r;

        /* held by the app too (kept, or being read in another thread:
           io's readline is not safe against a close from here): it
           closes when the last reference goes */
        if (held)
            return;
        r = PyObject_CallMethod(obj, "close", NULL);

        Py_XDECREF(r);
        PyErr_Clear();
        return;
    }
    in->buf = NULL;
    in->len = 0;
    in->closed = 1;
}

static int
check_open(struct input *in)
{
    if (in->closed) {
        PyErr_SetString(PyExc_ValueError, "I/O operation on closed file.");
        return -1;
    }
    return 0;
}

/* Python's "size" argument: None or negative means "all". */
static int
size_arg(PyObject *arg, Py_ssize_t *size)
{
    if (arg == NULL || arg == Py_None) {
        *size = -1;
        return 0;
    }
    *size = PyNumber_AsSsize_t(arg, PyExc_OverflowError);
    if (*size == -1 && PyErr_Occurred())
        return -1;
    return 0;
}

/* Read N bytes (already clamped to what is left) at the cursor. */
static PyObject *
read_n(struct input *in, uint64_t n)
{
    PyObject *out;
    char *p;
    uint64_t done = 0;

    if (n > PY_SSIZE_T_MAX)
        return PyErr_NoMemory();
    if ((out = PyBytes_FromStringAndSize(NULL, (Py_ssize_t)n)) == NULL)
        return NULL;
    p = PyBytes_AS_STRING(out);
    while (done < n) {
        ssize_t k = wd_buf_pread(in->buf, p + done, n - done, in->pos + done);

        if (k < 0) {
            Py_DECREF(out);
            return PyErr_SetFromErrno(PyExc_OSError);
        }
        if (k == 0)
            break;
        done += (uint64_t)k;
    }
    in->pos += done;
    if (done < n && _PyBytes_Resize(&out, (Py_ssize_t)done) < 0)
        return NULL;
    return out;
}

static uint64_t
left(const struct input *in)
{
    return in->pos < in->len ? in->len - in->pos : 0;
}

static PyObject *
input_read(struct input *in, PyObject *const *args, Py_ssize_t nargs)
{
    Py_ssize_t size;
    uint64_t n;

    if (!_PyArg_CheckPositional("read", nargs, 0, 1) ||
        size_arg(nargs ? args[0] : NULL, &size) < 0 || check_open(in) < 0)
        return NULL;
    n = left(in);
    if (size >= 0 && (uint64_t)size < n)
        n = (uint64_t)size;
    return read_n(in, n);
}

static PyObject *
readline_size(struct input *in, Py_ssize_t size)
{
    size_t limit;
    ssize_t n;

    if (left(in) == 0 || size == 0)
        return PyBytes_FromStringAndSize("", 0);
    limit = size < 0 ? SIZE_MAX : (size_t)size;
    if ((n = wd_buf_line_len(in->buf, in->pos, limit)) < 0)
        return PyErr_SetFromErrno(PyExc_OSError);
    return read_n(in, (uint64_t)n);
}

static PyObject *
input_readline(struct input *in, PyObject *const *args, Py_ssize_t nargs)
{
    Py_ssize_t size;

    if (!_PyArg_CheckPositional("readline", nargs, 0, 1) ||
        size_arg(nargs ? args[0] : NULL, &size) < 0 || check_open(in) < 0)
        return NULL;
    return readline_size(in, size);
}

static PyObject *
input_readlines(struct input *in, PyObject *const *args, Py_ssize_t nargs)
{
    Py_ssize_t hint;
    PyObject *list, *line;
    uint64_t total = 0;

    if (!_PyArg_CheckPositional("readlines", nargs, 0, 1) ||
        size_arg(nargs ? args[0] : NULL, &hint) < 0 || check_open(in) < 0)
        return NULL;
    if ((list = PyList_New(0)) == NULL)
        return NULL;
    while (left(in) > 0) {
        if ((line = readline_size(in, -1)) == NULL)
            goto fail;
        if (PyList_Append(list, line) < 0) {
            Py_DECREF(line);
            goto fail;
        }
        total += (uint64_t)PyBytes_GET_SIZE(line);
        Py_DECREF(line);
        /* waitress hands a spilled body over as a real file, whose
           readlines goes on while the total is not past the hint;
           BytesIO's stops once it reaches it */
        if (hint > 0 && (in->buf != NULL && wd_buf_is_file(in->buf)
                             ? total > (uint64_t)hint
                             : total >= (uint64_t)hint))
            break;
    }
    return list;

fail:
    Py_DECREF(list);
    return NULL;
}

static PyObject *
input_readinto(struct input *in, PyObject *arg)
{
    Py_buffer view;
    uint64_t n;
    ssize_t k;
    size_t done = 0;

    if (check_open(in) < 0)
        return NULL;
    if (PyObject_GetBuffer(arg, &view, PyBUF_WRITABLE) < 0)
        return NULL;
    n = left(in);
    if ((uint64_t)view.len < n)
        n = (uint64_t)view.len;
    while (done < n) {
        k = wd_buf_pread(in->buf, (char *)view.buf + done, n - done,
                         in->pos + done);
        if (k < 0) {
            PyBuffer_Release(&view);
            return PyErr_SetFromErrno(PyExc_OSError);
        }
        if (k == 0)
            break;
        done += (size_t)k;
    }
    in->pos += done;
    PyBuffer_Release(&view);
    return PyLong_FromSize_t(done);
}

static PyObject *
input_seek(struct input *in, PyObject *const *args, Py_ssize_t nargs)
{
    long long off, base;
    int whence = 0;

    if (!_PyArg_CheckPositional("seek", nargs, 1, 2))
        return NULL;
    off = PyLong_AsLongLong(args[0]);
    if (off == -1 && PyErr_Occurred())
        return NULL;
    if (nargs > 1) {
        /* a C int, as BytesIO reads it */
        whence = _PyLong_AsInt(args[1]);
        if (whence == -1 && PyErr_Occurred())
            return NULL;
    }
    if (check_open(in) < 0)
        return NULL;
    switch (whence) {
    case 0:
        base = 0;
        break;
    case 1:
        base = (long long)in->pos;
        break;
    case 2:
        base = (long long)in->len;
        break;
    default:
        return PyErr_Format(PyExc_ValueError,
                            "invalid whence (%d, should be 0, 1 or 2)",
                            whence);
    }
    if (whence == 0 && off < 0)
        return PyErr_Format(PyExc_ValueError, "negative seek value %lld",
                            off);
    if (off > 0 && base > LLONG_MAX - off)
        return PyErr_Format(PyExc_OverflowError, "new position too large");
    off += base;
    in->pos = off < 0 ? 0 : (uint64_t)off;
    return PyLong_FromUnsignedLongLong(in->pos);
}

static PyObject *
input_tell(struct input *in, PyObject *unused)
{
    if (check_open(in) < 0)
        return NULL;
    return PyLong_FromUnsignedLongLong(in->pos);
}

static PyObject *
input_true(struct input *in, PyObject *unused)
{
    if (check_open(in) < 0)
        return NULL;
    Py_RETURN_TRUE;
}

static PyObject *
input_false(struct input *in, PyObject *unused)
{
    if (check_open(in) < 0)
        return NULL;
    Py_RETURN_FALSE;
}

static PyObject *
input_close(struct input *in, PyObject *unused)
{
    in->closed = 1;
    Py_RETURN_NONE;
}

static PyObject *
input_enter(struct input *in, PyObject *unused)
{
    if (check_open(in) < 0)
        return NULL;
    Py_INCREF(in);
    return (PyObject *)in;
}

static PyObject *
input_exit(struct input *in, PyObject *args)
{
    in->closed = 1;
    Py_RETURN_NONE;
}

static PyObject *
input_iter(PyObject *self)
{
    if (check_open((struct input *)self) < 0)
        return NULL;
    Py_INCREF(self);
    return self;
}

static PyObject *
input_next(PyObject *self)
{
    struct input *in = (struct input *)self;
    PyObject *line;

    if (check_open(in) < 0)
        return NULL;
    if ((line = readline_size(in, -1)) == NULL)
        return NULL;
    if (PyBytes_GET_SIZE(line) == 0) {
        Py_DECREF(line);
        return NULL; /* StopIteration */
    }
    return line;
}

static PyObject *
input_get_closed(struct input *in, void *unused)
{
    return PyBool_FromLong(in->closed);
}

static void
input_dealloc(PyObject *self)
{
    PyObject_Free(self);
}

static PyMethodDef input_methods[] = {
    {"read", (PyCFunction)(void (*)(void))input_read, METH_FASTCALL, NULL},
    {"readline", (PyCFunction)(void (*)(void))input_readline, METH_FASTCALL,
     NULL},
    {"readlines", (PyCFunction)(void (*)(void))input_readlines,
     METH_FASTCALL, NULL},
    {"readinto", (PyCFunction)input_readinto, METH_O, NULL},
    {"seek", (PyCFunction)(void (*)(void))input_seek, METH_FASTCALL, NULL},
    {"tell", (PyCFunction)input_tell, METH_NOARGS, NULL},
    {"readable", (PyCFunction)input_true, METH_NOARGS, NULL},
    {"seekable", (PyCFunction)input_true, METH_NOARGS, NULL},
    {"writable", (PyCFunction)input_false, METH_NOARGS, NULL},
    {"isatty", (PyCFunction)input_false, METH_NOARGS, NULL},
    {"close", (PyCFunction)input_close, METH_NOARGS, NULL},
    {"__enter__", (PyCFunction)input_enter, METH_NOARGS, NULL},
    {"__exit__", (PyCFunction)input_exit, METH_VARARGS, NULL},
    {NULL, NULL, 0, NULL},
};

static PyGetSetDef input_getset[] = {
    {"closed", (getter)input_get_closed, NULL, NULL, NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

static PyTypeObject input_type = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "waitressd.Input",
    .tp_basicsize = sizeof(struct input),
    .tp_dealloc = input_dealloc,
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "wsgi.input: the request body as a read-only binary file",
    .tp_iter = input_iter,
    .tp_iternext = input_next,
    .tp_methods = input_methods,
    .tp_getset = input_getset,
};

int
wd_wsgi_input_init(void)
{
    return PyType_Ready(&input_type);
}
