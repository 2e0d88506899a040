/* worker.c - being written (see worker/worker.h). */
#include "worker.h"
