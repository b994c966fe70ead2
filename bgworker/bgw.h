/*-------------------------------------------------------------------------
 *
 * bgw.h
 *	  What every background worker of the extension does the same way:
 *	  its registration, and the short transactions it runs its SQL in.
 *
 *-------------------------------------------------------------------------
 */
#ifndef PAAS_BGW_H
#define PAAS_BGW_H

#include "postgres.h"

/*
 * Registers a static background worker of the library "paas" connected to
 * the database: "function" is its entry point, "name" its name and type
 * (as pg_stat_activity shows it), restarted "restart_secs" after it exits.
 */
extern void paas_bgw_register(const char *function, const char *name, int restart_secs);

/*
 * A transaction with SPI connected and a snapshot pushed; "activity" is
 * what pg_stat_activity shows meanwhile.  paas_bgw_end_tx() commits it,
 * makes the memory context that was current at the start current again (a
 * commit leaves TopMemoryContext current), reports statistics and shows
 * the worker idle.
 */
extern void paas_bgw_begin_tx(const char *activity);
extern void paas_bgw_end_tx(void);

#endif							/* PAAS_BGW_H */
