/* Unit tests for common/config.c - being written. */
#include <criterion/criterion.h>
