/*
 * cfgscan.h - a look over a configuration file before libconfig reads it.
 *
 * Debian's libconfig (1.5) mishandles two inputs, and neither can be
 * caught after the fact:
 *   - a directory, as the file or as an @include, makes its scanner fail
 *     on read(), and the scanner then calls exit(2): a HUP would kill the
 *     master instead of keeping the old configuration (SPEC.md 4.3);
 *   - an integer literal that does not fit in 32 bits is wrapped without
 *     a word (threads = 4294967297 reads as 1), where SPEC.md 2.4 wants
 *     the L suffix or a string.
 * This scanner follows libconfig's token rules far enough to find both:
 * strings, comments, names and numbers, and @include lines.
 */
#ifndef WD_CFGSCAN_H
#define WD_CFGSCAN_H

#include <stddef.h>

/* @include nesting libconfig accepts; deeper files are left to it. */
#define WD_CFGSCAN_MAX_DEPTH 10

/*
 * Read the whole configuration file PATH into *TEXT (NUL-terminated,
 * *LEN bytes; free() it).  0, or -1 with a one-line message in ERR: it
 * cannot be opened or read, or it is a directory.
 */
int wd_cfgscan_read(const char *path, char **text, size_t *len, char *err,
                    size_t errlen);

/*
 * Check LEN bytes of TEXT, read from the file NAME, and the files it
 * includes (relative to INCLUDE_DIR when not absolute; NULL: as given).
 * DEPTH: how deep in @include TEXT is (0: the configuration file).  0
 * when libconfig may read it; -1 with "NAME:LINE: ..." in ERR.  An
 * include that cannot be opened passes: libconfig says so clearly.
 */
int wd_cfgscan_text(const char *text, size_t len, const char *name,
                    const char *include_dir, int depth, char *err,
                    size_t errlen);

#endif
