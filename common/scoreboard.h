/* scoreboard.h - placeholder until its issue lands. */
#ifndef WD_COMMON_SCOREBOARD_H
#define WD_COMMON_SCOREBOARD_H
#endif
