/* Unit tests for common/errors.c - being written. */
#include <criterion/criterion.h>
