/* Unit tests for common/log.c - being written. */
#include <criterion/criterion.h>
