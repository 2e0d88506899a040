/* Unit tests for common/scoreboard.c - being written. */
#include <criterion/criterion.h>
