/* buf.c - being written (see common/buf.h). */
#include "buf.h"
