/*
 * proctitle.h - process titles as ps(1) shows them ("waitressd: master",
 * "waitressd: worker 2 (gen 3)").
 *
 * The title is written over the argv strings (and the environment
 * strings after them, which are first moved to the heap), as nginx does.
 * Call wd_proctitle_init once, early, with main's argv, after anything
 * that needs the original strings has copied them.  Master only; the
 * forked workers inherit the area and set their own title.
 */
#ifndef WD_MASTER_PROCTITLE_H
#define WD_MASTER_PROCTITLE_H

/* Claim the argv area.  0, or -1 (titles then only set the thread name). */
int wd_proctitle_init(int argc, char **argv);

/* Set the title (printf format); also the thread name (prctl). */
void wd_proctitle_set(const char *fmt, ...)
    __attribute__((format(printf, 1, 2)));

#endif
