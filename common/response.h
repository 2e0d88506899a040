/* response.h - placeholder until its issue lands. */
#ifndef WD_COMMON_RESPONSE_H
#define WD_COMMON_RESPONSE_H
#endif
