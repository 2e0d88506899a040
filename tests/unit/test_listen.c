/*
 * test_listen.c - the names master/listen.c gives its sockets: the
 * "Serving on" line and the stats endpoint's `listen` field (SPEC.md 3.1).
 */
#include <arpa/inet.h>
#include <net/if.h>
#include <netinet/in.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>

#include <criterion/criterion.h>

#include "listen.h"

static void
name6(const char *addr, unsigned port, unsigned scope, const char *want)
{
    struct sockaddr_in6 sin6;
    char out[300];

    memset(&sin6, 0, sizeof sin6);
    sin6.sin6_family = AF_INET6;
    sin6.sin6_port = htons((unsigned short)port);
    sin6.sin6_scope_id = scope;
    cr_assert_eq(inet_pton(AF_INET6, addr, &sin6.sin6_addr), 1);
    wd_listen_format_name((struct sockaddr *)&sin6, out, sizeof out);
    cr_assert_str_eq(out, want);
}

Test(listen, ipv4_is_numeric_with_its_port)
{
    struct sockaddr_in sin;
    char out[300];

    memset(&sin, 0, sizeof sin);
    sin.sin_family = AF_INET;
    sin.sin_port = htons(8080);
    sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    wd_listen_format_name((struct sockaddr *)&sin, out, sizeof out);
    cr_assert_str_eq(out, "http://127.0.0.1:8080");
}

Test(listen, ipv6_is_bracketed)
{
    name6("::1", 80, 0, "http://[::1]:80");
    name6("::", 8080, 0, "http://[::]:8080");
    name6("2001:db8::1", 443, 0, "http://[2001:db8::1]:443");
}

Test(listen, a_link_local_address_keeps_its_zone)
{
    /* as waitress prints it: a listener on fe80::1%eth0 and one on
       fe80::1%eth1 are two sockets, and the line must tell them apart */
    unsigned lo = if_nametoindex("lo");

    cr_assert_neq(lo, 0u);
    name6("fe80::1", 8080, lo, "http://[fe80::1%lo]:8080");
    /* an interface index with no name is written as the number */
    name6("fe80::1", 8080, 999999, "http://[fe80::1%999999]:8080");
}

Test(listen, unix_is_its_path)
{
    struct sockaddr_un sun;
    char out[300];

    memset(&sun, 0, sizeof sun);
    sun.sun_family = AF_UNIX;
    strcpy(sun.sun_path, "/run/waitressd/app.sock");
    wd_listen_format_name((struct sockaddr *)&sun, out, sizeof out);
    cr_assert_str_eq(out, "http://unix:/run/waitressd/app.sock");
}
