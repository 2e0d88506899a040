/* scoreboard.c - being written (see common/scoreboard.h). */
#include "scoreboard.h"
