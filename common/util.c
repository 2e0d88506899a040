/* util.c - being written (see common/util.h). */
#include "util.h"
