/* http_parse.c - being written (see common/http_parse.h). */
#include "http_parse.h"
