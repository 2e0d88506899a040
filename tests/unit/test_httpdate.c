/* Unit tests for common/httpdate.c - being written. */
#include <criterion/criterion.h>
