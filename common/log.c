/* log.c - being written (see common/log.h). */
#include "log.h"
