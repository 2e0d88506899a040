/*
 * mailbox.c - the pool -> loop wake-up channel (see mailbox.h).
 *
 * One eventfd per worker, watched by the loop.  The list lock is held only
 * to link or unlink nodes; callbacks run without it, from a snapshot taken
 * by the loop, so a callback may post again or free an unrelated node.
 */
#include "autoconfig.h"

#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <event2/event.h>

#include "log.h"
#include "mailbox.h"

struct mb_item {
    struct wd_mb_node *node;
    unsigned flags;
};

struct wd_mailbox {
    pthread_mutex_t lock;
    struct wd_mb_node *head; /* under lock */
    struct wd_mb_node *tail; /* under lock */
    int efd;
    struct event *ev;
    wd_mailbox_fn fn;
    void *arg;
    struct mb_item *snap; /* loop only */
    size_t snap_cap;
};

static void
drain_cb(evutil_socket_t fd, short what, void *arg)
{
    struct wd_mailbox *mb = arg;
    struct wd_mb_node *n;
    uint64_t v;
    size_t count = 0;

    if (read(fd, &v, sizeof v) < 0 && errno != EAGAIN)
        wd_log(WD_LOG_ERROR, WD_CAT_SERVER, "mailbox read: %s",
               strerror(errno));

    pthread_mutex_lock(&mb->lock);
    for (n = mb->head; n != NULL; n = n->next)
        count++;
    if (count > mb->snap_cap) {
        struct mb_item *p = realloc(mb->snap, count * 2 * sizeof *p);

        if (p == NULL) {
            /* keep the list; try again on the next wake-up */
            pthread_mutex_unlock(&mb->lock);
            v = 1;
            if (write(mb->efd, &v, sizeof v) < 0)
                wd_log(WD_LOG_ERROR, WD_CAT_SERVER, "mailbox: %s",
                       strerror(errno));
            return;
        }
        mb->snap = p;
        mb->snap_cap = count * 2;
    }
    count = 0;
    for (n = mb->head; n != NULL; n = n->next) {
        mb->snap[count].node = n;
        mb->snap[count].flags = n->flags;
        count++;
    }
    /* unlink only after the walk: clearing next while walking breaks it */
    for (size_t i = 0; i < count; i++) {
        n = mb->snap[i].node;
        n->next = NULL;
        n->flags = 0;
        n->queued = 0;
    }
    mb->head = mb->tail = NULL;
    pthread_mutex_unlock(&mb->lock);

    for (size_t i = 0; i < count; i++)
        mb->fn(mb->snap[i].node, mb->snap[i].flags, mb->arg);
}

struct wd_mailbox *
wd_mailbox_new(struct event_base *base, wd_mailbox_fn fn, void *arg)
{
    struct wd_mailbox *mb;

    if ((mb = calloc(1, sizeof *mb)) == NULL)
        return NULL;
    if (pthread_mutex_init(&mb->lock, NULL) != 0)
        goto free_mb;
    mb->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (mb->efd < 0)
        goto destroy_lock;
    mb->ev = event_new(base, mb->efd, EV_READ | EV_PERSIST, drain_cb, mb);
    if (mb->ev == NULL || event_add(mb->ev, NULL) != 0)
        goto close_fd;
    mb->fn = fn;
    mb->arg = arg;
    return mb;

close_fd:
    if (mb->ev != NULL)
        event_free(mb->ev);
    close(mb->efd);
destroy_lock:
    pthread_mutex_destroy(&mb->lock);
free_mb:
    free(mb);
    return NULL;
}

void
wd_mailbox_free(struct wd_mailbox *mb)
{
    if (mb == NULL)
        return;
    event_free(mb->ev);
    close(mb->efd);
    pthread_mutex_destroy(&mb->lock);
    free(mb->snap);
    free(mb);
}

void
wd_mailbox_post(struct wd_mailbox *mb, struct wd_mb_node *node,
                unsigned flags)
{
    int wake = 0;
    uint64_t one = 1;

    pthread_mutex_lock(&mb->lock);
    node->flags |= flags;
    if (!node->queued) {
        node->queued = 1;
        node->next = NULL;
        wake = mb->head == NULL;
        if (mb->tail != NULL)
            mb->tail->next = node;
        else
            mb->head = node;
        mb->tail = node;
    }
    pthread_mutex_unlock(&mb->lock);
    /* EAGAIN means the counter is saturated: the loop is awake anyway */
    if (wake && write(mb->efd, &one, sizeof one) < 0 && errno != EAGAIN)
        wd_log(WD_LOG_ERROR, WD_CAT_SERVER, "mailbox write: %s",
               strerror(errno));
}

int
wd_mailbox_merge(struct wd_mailbox *mb, struct wd_mb_node *node,
                 unsigned flags)
{
    int queued;

    pthread_mutex_lock(&mb->lock);
    queued = node->queued;
    if (queued)
        node->flags |= flags;
    pthread_mutex_unlock(&mb->lock);
    return queued;
}
