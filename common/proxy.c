/* proxy.c - being written (see common/proxy.h). */
#include "proxy.h"
