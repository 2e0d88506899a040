/* Unit tests for common/response.c - being written. */
#include <criterion/criterion.h>
