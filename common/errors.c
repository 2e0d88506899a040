/* errors.c - being written (see common/errors.h). */
#include "errors.h"
