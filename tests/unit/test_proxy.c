/* Unit tests for common/proxy.c - being written. */
#include <criterion/criterion.h>
