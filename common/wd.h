/*
 * wd.h - constants and return conventions shared by every module.
 *
 * Parsers return the number of bytes consumed (>= 0), WD_AGAIN when they
 * need more input, or WD_ERROR with the reason in an out-field.  Functions
 * that behave like system calls return 0 or -1.
 */
#ifndef WD_COMMON_WD_H
#define WD_COMMON_WD_H

#include <stddef.h>

#define WD_ERROR (-1)
#define WD_AGAIN (-2)

/* waitress's buffers.py: block size for copies between buffers / files. */
#define WD_COPY_BYTES 262144
/* Bodies below this many bytes stay in a plain in-memory string. */
#define WD_STRBUF_LIMIT 8192

/* Worker exit statuses the master interprets (SPEC.md section 1). */
#define WD_EXIT_OK 0
#define WD_EXIT_FATAL 1
#define WD_EXIT_BOOT 3
#define WD_EXIT_APP 4

#define WD_ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))

/* Free and forget: the pointer is NULL afterwards (HAProxy ha_free). */
#define WD_FREE(p) \
    do { \
        free(p); \
        (p) = NULL; \
    } while (0)

#endif
