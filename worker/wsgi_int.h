/*
 * wsgi_int.h - internals shared by the WSGI bridge files (wsgi*.c).
 *
 * Everything declared here runs on a pool thread with the GIL held,
 * unless a comment says otherwise.  Not a contract for other modules:
 * the loop side only sees worker/wsgi.h and worker/task.h.
 */
#ifndef WD_WORKER_WSGI_INT_H
#define WD_WORKER_WSGI_INT_H

#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <stdint.h>

#include "response.h"

struct wd_buf;
struct wd_config;
struct wd_http_request;
struct wd_task;

/* Environ keys built once (interned) at boot. */
enum wd_wsgi_key {
    WK_REQUEST_METHOD,
    WK_SCRIPT_NAME,
    WK_PATH_INFO,
    WK_QUERY_STRING,
    WK_REQUEST_URI,
    WK_SERVER_NAME,
    WK_SERVER_PORT,
    WK_SERVER_PROTOCOL,
    WK_SERVER_SOFTWARE,
    WK_REMOTE_ADDR,
    WK_REMOTE_HOST,
    WK_REMOTE_PORT,
    WK_REMOTE_USER,
    WK_CONTENT_TYPE,
    WK_CONTENT_LENGTH,
    WK_HTTP_HOST,
    WK_WSGI_VERSION,
    WK_WSGI_URL_SCHEME,
    WK_WSGI_INPUT,
    WK_WSGI_INPUT_TERMINATED,
    WK_WSGI_ERRORS,
    WK_WSGI_MULTITHREAD,
    WK_WSGI_MULTIPROCESS,
    WK_WSGI_RUN_ONCE,
    WK_WSGI_FILE_WRAPPER,
    WK_CLIENT_DISCONNECTED,
    WK_COUNT
};

/* Process-wide state of the bridge, set up by wd_wsgi_init. */
struct wd_wsgi_state {
    const struct wd_config *cfg; /* borrowed */
    int multiprocess;
    PyObject *app;
    PyObject *keys[WK_COUNT];
    PyObject *version;         /* (1, 0) */
    PyObject *url_scheme;      /* cfg->url_scheme */
    PyObject *server_name;     /* cfg->server_name */
    PyObject *ident;           /* cfg->ident or None */
    PyObject *script_name;     /* cfg->url_prefix */
    PyObject *file_wrapper;    /* the wsgi.file_wrapper type */
    PyObject *disconnected;    /* ClientDisconnected exception type */
    PyObject *format_exception; /* traceback.format_exception */
};

extern struct wd_wsgi_state wd_wsgi;

/* One request being served. */
struct wd_wsgi_req {
    struct wd_task *t;                  /* borrowed */
    const struct wd_http_request *req;  /* borrowed (t->req) */
    struct wd_response resp;
    PyObject *environ;
    PyObject *input;   /* wsgi.input; detached at the end */
    PyObject *discon;  /* waitress.client_disconnected; detached */
    PyObject *sr;      /* start_response; detached */
    PyObject *status;  /* str given to start_response */
    PyObject *headers; /* list of validated (name, value) tuples */
    PyObject *cl_big;  /* str of a Content-Length past 64 bits (the log's) */
    int complete;      /* start_response has completed once */
    int is_head;
    int iter_closed;   /* the result's close() was called */
};

/* wsgi_env.c */
int wd_wsgi_env_init(void);
/*
 * Build RQ->environ (SPEC.md 10, proxy headers of 11).  0; 1 when a
 * proxy header is malformed (*BAD_HEADER names it, no environ); -1 with
 * a Python exception set.
 */
int wd_wsgi_environ(struct wd_wsgi_req *rq, const char **bad_header,
                    char **remote_addr);
/* Make the request's callables and input inert once the task is over. */
void wd_wsgi_env_detach(struct wd_wsgi_req *rq);

/* wsgi_io.c: wsgi.input over a request body (BUF may be NULL). */
int wd_wsgi_input_init(void);
PyObject *wd_wsgi_input_new(struct wd_buf *buf);
/* The task is over: a memory body's input reads as closed; a spilled
 * body's file is closed now unless HELD (others hold references too). */
void wd_wsgi_input_detach(PyObject *input, int held);

/* wsgi_file.c: the wsgi.file_wrapper type and its fast path. */
int wd_wsgi_file_init(void);
/* 1 when RESULT was sent by the fast path, 0 to iterate it, -1 error. */
int wd_wsgi_file_send(struct wd_wsgi_req *rq, PyObject *result);

/* wsgi.c: output helpers used by the fast path. */
/* Log the warnings of a wd_response_body plan (SPEC.md 12.3); GIL held. */
void wd_wsgi_log_body_warnings(struct wd_wsgi_req *rq, unsigned warn);
/* Append bytes to the connection; -1 with ClientDisconnected set. */
int wd_wsgi_out(struct wd_wsgi_req *rq, const void *data, size_t len);
/* The same for IOVCNT pieces in one write (empty pieces are fine). */
struct iovec;
int wd_wsgi_outv(struct wd_wsgi_req *rq, const struct iovec *iov,
                 int iovcnt);
/* The same; what the socket does not take of piece KEEP is not copied
 * but kept in OWNER (a bytes object, referenced until sent), if not NULL. */
int wd_wsgi_outv_keep(struct wd_wsgi_req *rq, const struct iovec *iov,
                      int iovcnt, int keep, PyObject *owner);
int wd_wsgi_out_file(struct wd_wsgi_req *rq, int fd, off_t off,
                     uint64_t len);
/* Encode and send the header block (SPEC.md 12.4).  0 or -1. */
int wd_wsgi_write_head(struct wd_wsgi_req *rq);

#endif
