/* response.c - being written (see common/response.h). */
#include "response.h"
