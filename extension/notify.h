/*-------------------------------------------------------------------------
 *
 * notify.h
 *	  Declarations of the notifications area shared by the SQL-callable
 *	  helpers (extension/notify.c) and the mailer (bgworker/mailer.c).
 *
 *-------------------------------------------------------------------------
 */
#ifndef PAAS_NOTIFY_H
#define PAAS_NOTIFY_H

#include "postgres.h"
#include "datatype/timestamp.h"
#include "storage/latch.h"
#include "storage/spin.h"

/*
 * State the mailer publishes (paas.mailer_state()) and the latch
 * paas.mail_wake() sets after a commit that queued mail.  Written by the
 * mailer; readers take the spinlock.
 */
typedef struct PaasMailerShared
{
	slock_t		mutex;
	int			pid;			/* 0 while no mailer runs */
	Latch	   *latch;			/* the mailer's process latch */
	TimestampTz started_at;
	TimestampTz last_pass;
	uint64		sent;
	uint64		retried;
	uint64		failed;
	char		last_error[256];
} PaasMailerShared;

extern PaasMailerShared *paas_mailer_shared;

/* GUCs (bgworker/mailer.c) read by notify.c */
extern char *paas_invoice_seller_name;
extern char *paas_invoice_seller_address;
extern char *paas_invoice_seller_tax_id;

/* bgworker/mailer.c: GUCs, the worker, its shared memory; one call in _PG_init */
extern void paas_mailer_init(void);

/* extension/notify.c */
extern char *paas_mail_encode_word(const char *s);
extern char *paas_mail_encode_address(const char *name, const char *addr);
extern void paas_mail_wake_init(void);

#endif							/* PAAS_NOTIFY_H */
