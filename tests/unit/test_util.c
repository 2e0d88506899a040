/* Unit tests for common/util.c - being written. */
#include <criterion/criterion.h>
