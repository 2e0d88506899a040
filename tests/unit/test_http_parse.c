/* Unit tests for common/http_parse.c - being written. */
#include <criterion/criterion.h>
