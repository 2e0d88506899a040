/* Unit tests for common/buf.c - being written. */
#include <criterion/criterion.h>
