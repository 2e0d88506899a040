/* httpdate.c - being written (see common/httpdate.h). */
#include "httpdate.h"
