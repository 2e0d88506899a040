/* config.c - being written (see common/config.h). */
#include "config.h"
