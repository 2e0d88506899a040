/* master.c - being written (see master/master.h). */
#include "master.h"
