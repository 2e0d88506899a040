/* wsgi.c - being written (see worker/wsgi.h). */
#include "wsgi.h"
