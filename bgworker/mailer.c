/*-------------------------------------------------------------------------
 *
 * mailer.c
 *	  The paas mailer: a background worker that sends the mails of
 *	  paas.notification_outbox (sql/parts/75_notifications.sql) over SMTP
 *	  with libcurl.
 *
 * Structure follows src/test/modules/worker_spi: standard signal handlers,
 * WaitLatch with WL_EXIT_ON_PM_DEATH, configuration reload on SIGHUP, one
 * transaction per unit of work.  Each pass
 *	  1. claims due mails in one short transaction (paas.notify_claim: FOR
 *		 UPDATE SKIP LOCKED, marked SENDING with a lease and rendered),
 *	  2. sends them with NO transaction open over paas.smtp_connections kept
 *		 connections, one mail per connection at a time (a "slot": an easy
 *		 handle in one curl multi handle), then
 *	  3. records the outcomes (paas.notify_record) as the transfers end: what
 *		 ended in one round of the transfer loop in one transaction, before
 *		 any further mail is started,
 * so a crash repeats at most the mails in flight -- one per connection --
 * and then with the same Message-ID (fixed at the first claim); a mail
 * that was recorded never goes again.
 *
 * No synchronous commit per record, and still durable before the next mail
 * can be accepted.  The mailer's transactions commit without waiting for
 * their WAL flush (synchronous_commit = off for its session); the flush
 * (XLogFlush of the last commit) runs right after each step of the
 * transfers is sent, while the server works on it, and libcurl's read of a
 * message's last part makes sure it is done before it hands out the last
 * bytes (after which libcurl sends the end-of-data dot): at any moment at
 * most one accepted mail per connection is unrecorded.  Before the mailer
 * sleeps, it flushes what is left.
 *
 * Rules a reader must know:
 *	  - SMTP: paas.smtp_url (smtp://host:587 or smtps://host:465).
 *		paas.smtp_tls = starttls (default) requires STARTTLS
 *		(CURLUSESSL_ALL), tls uses implicit TLS (smtps), none is for tests
 *		only and is refused for anything but a loopback host.
 *		paas.smtp_ca_file is the CA bundle the server is checked against.
 *		AUTH with paas.smtp_user and the first line of
 *		paas.smtp_password_file, read when the connection is set up and
 *		never logged.
 *	  - The slots' CURL handles (duplicates of one configured handle) and
 *		the multi handle that holds their connections are kept across mails
 *		and passes, so each SMTP connection (and its TLS session and AUTH)
 *		is reused; they are closed (QUIT) after MAILER_IDLE_CLOSE_MS without
 *		mail and rebuilt when the settings change.  A reused connection that
 *		turns out dead is tried once more on a fresh one.
 *	  - The message is built with libcurl's MIME API (never by hand):
 *		multipart/mixed of a multipart/alternative (text/plain and
 *		text/html, UTF-8, quoted-printable) and the invoice PDF (base64)
 *		when there is one.  Header values are RFC 2047 encoded-words when
 *		they are not ASCII (extension/notify.c).
 *	  - Outcomes: 2xx sent; 5xx to RCPT or DATA permanent; 4xx and errors
 *		without an answer temporary (paas.notify_record backs off per row).
 *		The reply kept is the first 4xx / 5xx line (libcurl closes the
 *		connection after a refusal; the answer to QUIT is not the news).
 *		A failure of the server itself (connect, TLS, AUTH, a refused
 *		sender) is recorded as "unavailable": the attempt is not counted,
 *		no further mail is started (those in flight end and are recorded),
 *		the rest of the batch is given back unattempted, and the mailer
 *		waits before its next pass (1 s, doubling up to MAILER_PAUSE_MAX_MS;
 *		new mail waits too).  Settings that cannot work claim nothing.
 *	  - The mailer sleeps until the next mail is due (at most
 *		MAILER_POLL_MS) and is woken by paas.mail_wake() when a transaction
 *		that queued mail commits.  Nothing runs while paas.smtp_url is empty
 *		or the extension is not installed.
 *	  - Its SQL runs as superuser with search_path = pg_catalog, pg_temp, as
 *		the other workers' (bgworker/worker.c).
 *	  - Everything not palloc'd (MIME structures, lists) is freed in
 *		PG_FINALLY; the CURL handles live in statics and are
 *		cleaned up on exit.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <ctype.h>
#include <sys/stat.h>
#include <time.h>

#include <curl/curl.h>

#include "access/xact.h"
#include "access/xlog.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "lib/stringinfo.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "postmaster/bgworker.h"
#include "postmaster/interrupt.h"
#include "storage/ipc.h"
#include "storage/latch.h"
#include "storage/proc.h"
#include "storage/shmem.h"
#include "tcop/tcopprot.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/memutils.h"
#include "utils/snapmgr.h"
#include "utils/timestamp.h"
#include "utils/wait_event.h"

#include "bgw.h"
#include "notify.h"
#include "paas.h"

PGDLLEXPORT void paas_mailer_main(Datum main_arg) pg_attribute_noreturn();

#define MAILER_POLL_MS			10000	/* longest sleep when nothing is due */
#define MAILER_IDLE_CLOSE_MS	30000	/* QUIT after this long without mail */
#define MAILER_PAUSE_MIN_MS		1000	/* after a failure of the server itself */
#define MAILER_PAUSE_MAX_MS		60000
#define MAILER_REPLY_MAX		500
#define MAILER_MAX_CONNECTIONS	16

/* GUCs */
static char *smtp_url = NULL;
static int	smtp_tls = 0;
static char *smtp_user = NULL;
static char *smtp_password_file = NULL;
static char *smtp_ca_file = NULL;
static char *mail_from = NULL;
static char *public_url = NULL;
static int	mail_batch = 50;
static int	smtp_connections = 4;
static int	mail_lease_s = 120;
static int	mail_retry_base_s = 30;
static int	mail_retry_max_s = 3600;
static int	mail_max_attempts = 25;
static int	mail_per_recipient = 20;
static int	mail_default_locale = 0;
static char *mail_timezone = NULL;
static char *mail_admin_to = NULL;
static int	mail_reminder_days = 3;
static bool require_verified_email = false;
char	   *paas_invoice_seller_name = NULL;
char	   *paas_invoice_seller_address = NULL;
char	   *paas_invoice_seller_tax_id = NULL;

enum
{
	TLS_STARTTLS,
	TLS_IMPLICIT,
	TLS_NONE
};

static const struct config_enum_entry tls_options[] = {
	{"starttls", TLS_STARTTLS, false},
	{"tls", TLS_IMPLICIT, false},
	{"none", TLS_NONE, false},
	{NULL, 0, false}
};

static const struct config_enum_entry locale_options[] = {
	{"id", 0, false},
	{"en", 1, false},
	{NULL, 0, false}
};

PaasMailerShared *paas_mailer_shared = NULL;

static shmem_request_hook_type prev_shmem_request_hook = NULL;
static shmem_startup_hook_type prev_shmem_startup_hook = NULL;

static void
mailer_shmem_request(void)
{
	if (prev_shmem_request_hook)
		prev_shmem_request_hook();
	RequestAddinShmemSpace(MAXALIGN(sizeof(PaasMailerShared)));
}

static void
mailer_shmem_startup(void)
{
	bool		found;

	if (prev_shmem_startup_hook)
		prev_shmem_startup_hook();
	LWLockAcquire(AddinShmemInitLock, LW_EXCLUSIVE);
	paas_mailer_shared = ShmemInitStruct("paas mailer", sizeof(PaasMailerShared), &found);
	if (!found)
	{
		memset(paas_mailer_shared, 0, sizeof(PaasMailerShared));
		SpinLockInit(&paas_mailer_shared->mutex);
	}
	LWLockRelease(AddinShmemInitLock);
}

static void
define_gucs(void)
{
	DefineCustomStringVariable("paas.smtp_url",
							   "SMTP server of the mailer: smtp://host:587 or smtps://host:465.",
							   "Empty: no mail is sent (it waits in the outbox).",
							   &smtp_url, "", PGC_SIGHUP, 0, NULL, NULL, NULL);
	DefineCustomEnumVariable("paas.smtp_tls",
							 "TLS of the SMTP connection: starttls, tls (smtps) or none (tests, loopback only).",
							 NULL,
							 &smtp_tls, TLS_STARTTLS, tls_options, PGC_SIGHUP, 0, NULL, NULL, NULL);
	DefineCustomStringVariable("paas.smtp_user", "SMTP AUTH user name (empty: no AUTH).", NULL,
							   &smtp_user, "", PGC_SIGHUP, 0, NULL, NULL, NULL);
	DefineCustomStringVariable("paas.smtp_password_file",
							   "File whose first line is the SMTP AUTH password.",
							   "Read by the mailer when it connects; the password is never logged.",
							   &smtp_password_file, "", PGC_SIGHUP, GUC_SUPERUSER_ONLY, NULL, NULL, NULL);
	DefineCustomStringVariable("paas.smtp_ca_file",
							   "CA bundle the SMTP server's certificate is checked against (empty: the system's).",
							   NULL, &smtp_ca_file, "", PGC_SIGHUP, 0, NULL, NULL, NULL);
	DefineCustomStringVariable("paas.mail_from", "Sender of the mails: \"Name <address>\" or an address.",
							   NULL, &mail_from, "paas <no-reply@localhost>", PGC_SUSET, 0, NULL, NULL, NULL);
	DefineCustomStringVariable("paas.public_url",
							   "Origin users reach: the links of mails (pages, and the API under /api/v1).",
							   NULL, &public_url, "http://localhost:8080", PGC_SUSET, 0, NULL, NULL, NULL);
	DefineCustomIntVariable("paas.mail_batch", "Mails the mailer claims at a time.", NULL,
							&mail_batch, 50, 1, 1000, PGC_SIGHUP, 0, NULL, NULL, NULL);
	DefineCustomIntVariable("paas.smtp_connections", "SMTP connections the mailer sends over at once.",
							"Each carries one mail at a time; a crash of the mailer can repeat at most "
							"one mail per connection (with its Message-ID).",
							&smtp_connections, 4, 1, MAILER_MAX_CONNECTIONS, PGC_SIGHUP, 0, NULL, NULL, NULL);
	DefineCustomIntVariable("paas.mail_lease", "How long a claimed mail is the mailer's before it is claimed again.",
							"Longer than one SMTP call can take (60 s).",
							&mail_lease_s, 120, 2, 86400, PGC_SIGHUP, GUC_UNIT_S, NULL, NULL, NULL);
	DefineCustomIntVariable("paas.mail_retry_base", "Delay before the second attempt of a mail; doubles after.",
							NULL, &mail_retry_base_s, 30, 1, 86400, PGC_SUSET, GUC_UNIT_S, NULL, NULL, NULL);
	DefineCustomIntVariable("paas.mail_retry_max", "Longest delay between two attempts of a mail.", NULL,
							&mail_retry_max_s, 3600, 1, 7 * 86400, PGC_SUSET, GUC_UNIT_S, NULL, NULL, NULL);
	DefineCustomIntVariable("paas.mail_max_attempts", "Attempts of a mail before it fails for good.", NULL,
							&mail_max_attempts, 25, 1, 1000, PGC_SUSET, 0, NULL, NULL, NULL);
	DefineCustomIntVariable("paas.mail_per_recipient_per_hour", "Mails sent to one address an hour at most.",
							"The next one waits; none is dropped.",
							&mail_per_recipient, 20, 1, 100000, PGC_SUSET, 0, NULL, NULL, NULL);
	DefineCustomEnumVariable("paas.mail_default_locale", "Locale of mails for users without a preference.",
							 NULL, &mail_default_locale, 0, locale_options, PGC_SUSET, 0, NULL, NULL, NULL);
	DefineCustomStringVariable("paas.mail_timezone", "Time zone dates and times of mails are shown in.", NULL,
							   &mail_timezone, "Asia/Jakarta", PGC_SUSET, 0, NULL, NULL, NULL);
	DefineCustomStringVariable("paas.mail_admin_to",
							   "Addresses of admin mails, comma separated (empty: every active administrator).",
							   NULL, &mail_admin_to, "", PGC_SUSET, 0, NULL, NULL, NULL);
	DefineCustomIntVariable("paas.mail_reminder_days", "Days before a renewal its reminder is mailed.", NULL,
							&mail_reminder_days, 3, 1, 60, PGC_SUSET, 0, NULL, NULL, NULL);
	DefineCustomBoolVariable("paas.require_verified_email",
							 "Refuse top-ups of accounts whose e-mail address is not verified.", NULL,
							 &require_verified_email, false, PGC_SUSET, 0, NULL, NULL, NULL);
	DefineCustomStringVariable("paas.invoice_seller_name", "Seller name on invoice PDFs made in the database.",
							   "Set it like httpd's PAAS_SELLER_NAME.",
							   &paas_invoice_seller_name, "", PGC_SIGHUP, 0, NULL, NULL, NULL);
	DefineCustomStringVariable("paas.invoice_seller_address",
							   "Seller address on invoice PDFs made in the database (lines separated by |).",
							   NULL, &paas_invoice_seller_address, "", PGC_SIGHUP, 0, NULL, NULL, NULL);
	DefineCustomStringVariable("paas.invoice_seller_tax_id", "Seller tax id on invoice PDFs made in the database.",
							   NULL, &paas_invoice_seller_tax_id, "", PGC_SIGHUP, 0, NULL, NULL, NULL);
}

/*
 * Called once from _PG_init: the settings, the transaction callback of
 * paas.mail_wake() (every process), and -- when preloaded -- the shared
 * memory and the worker.
 */
void
paas_mailer_init(void)
{
	define_gucs();
	paas_mail_wake_init();
	if (!process_shared_preload_libraries_in_progress)
		return;

	prev_shmem_request_hook = shmem_request_hook;
	shmem_request_hook = mailer_shmem_request;
	prev_shmem_startup_hook = shmem_startup_hook;
	shmem_startup_hook = mailer_shmem_startup;

	paas_bgw_register("paas_mailer_main", "paas mailer", 1);
}

/* ---- published state --------------------------------------------------- */

static void
publish_error(const char *fmt,...) pg_attribute_printf(1, 2);

static void
publish_error(const char *fmt,...)
{
	char		buf[256];
	va_list		ap;

	va_start(ap, fmt);
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	if (paas_mailer_shared == NULL)
		return;
	SpinLockAcquire(&paas_mailer_shared->mutex);
	strlcpy(paas_mailer_shared->last_error, buf, sizeof(paas_mailer_shared->last_error));
	SpinLockRelease(&paas_mailer_shared->mutex);
}

static void
publish_counts(int sent, int retried, int failed)
{
	if (paas_mailer_shared == NULL)
		return;
	SpinLockAcquire(&paas_mailer_shared->mutex);
	paas_mailer_shared->last_pass = GetCurrentTimestamp();
	paas_mailer_shared->sent += sent;
	paas_mailer_shared->retried += retried;
	paas_mailer_shared->failed += failed;
	SpinLockRelease(&paas_mailer_shared->mutex);
}

static CURL *handle = NULL;		/* the kept SMTP handle (slot 0's) */
static CURLM *multi = NULL;		/* ... driven by this, which keeps the connections */

static void smtp_close(void);

static void
mailer_exit(int code, Datum arg)
{
	smtp_close();				/* closes the connections: QUIT */
	if (paas_mailer_shared == NULL)
		return;
	SpinLockAcquire(&paas_mailer_shared->mutex);
	paas_mailer_shared->pid = 0;
	paas_mailer_shared->latch = NULL;
	SpinLockRelease(&paas_mailer_shared->mutex);
}

/* ---- transactions ------------------------------------------------------ */

/* The end of the last commit whose WAL may not be flushed yet (see above). */
static XLogRecPtr unflushed = InvalidXLogRecPtr;

static void
flush_records(void)
{
	if (!XLogRecPtrIsInvalid(unflushed))
	{
		XLogFlush(unflushed);
		unflushed = InvalidXLogRecPtr;
	}
}

/*
 * Commits a transaction of bgw.c's paas_bgw_begin_tx() and notes where its
 * commit record ends, for flush_records().
 */
static void
end_tx(void)
{
	paas_bgw_end_tx();
	if (!XLogRecPtrIsInvalid(XactLastCommitEnd) && XactLastCommitEnd > unflushed)
		unflushed = XactLastCommitEnd;
}

/* One claimed mail, copied out of the claim transaction. */
typedef struct Mail
{
	int64		id;
	int			attempt;
	char	   *message_id;
	char	   *recipient;
	char	   *recipient_name;
	char	   *subject;
	char	   *body_text;
	char	   *body_html;
	char	   *list_unsubscribe;
	char	   *attachment;
	size_t		attachment_len;
	char	   *attachment_name;
} Mail;

static char *
col_text(HeapTuple tup, TupleDesc desc, int col, MemoryContext cxt)
{
	char	   *v = SPI_getvalue(tup, desc, col);

	return v ? MemoryContextStrdup(cxt, v) : NULL;
}

/*
 * Claims due mails (allocated in cxt); *next_due_ms is how long until the
 * next queued mail is due (-1: none).  An empty list while the extension
 * (at a version with notifications) is not installed.
 */
static List *
claim(MemoryContext cxt, long *next_due_ms)
{
	List	   *mails = NIL;
	Oid			argtypes[2] = {INT4OID, INT4OID};
	Datum		args[2];
	int			ret;

	*next_due_ms = -1;
	paas_bgw_begin_tx("paas mailer: claiming mail");
	ret = SPI_execute("SELECT 1 WHERE pg_catalog.to_regprocedure("
					  "'paas.notify_claim(integer, interval)') IS NOT NULL", true, 1);
	if (ret != SPI_OK_SELECT)
		elog(ERROR, "looking up paas.notify_claim failed: %d", ret);
	if (SPI_processed == 0)
	{
		end_tx();
		*next_due_ms = MAILER_POLL_MS;
		return NIL;
	}
	args[0] = Int32GetDatum(mail_batch);
	args[1] = Int32GetDatum(mail_lease_s);
	ret = SPI_execute_with_args("SELECT id, attempt, message_id, recipient, recipient_name, subject, "
								"body_text, body_html, list_unsubscribe, attachment, attachment_name "
								"FROM paas.notify_claim($1, make_interval(secs => $2))",
								2, argtypes, args, NULL, false, 0);
	if (ret != SPI_OK_SELECT)
		elog(ERROR, "paas.notify_claim failed: %d", ret);
	for (uint64 i = 0; i < SPI_processed; i++)
	{
		HeapTuple	tup = SPI_tuptable->vals[i];
		TupleDesc	desc = SPI_tuptable->tupdesc;
		Mail	   *m = MemoryContextAllocZero(cxt, sizeof(Mail));
		bool		isnull;
		Datum		d;

		m->id = DatumGetInt64(SPI_getbinval(tup, desc, 1, &isnull));
		m->attempt = DatumGetInt32(SPI_getbinval(tup, desc, 2, &isnull));
		m->message_id = col_text(tup, desc, 3, cxt);
		m->recipient = col_text(tup, desc, 4, cxt);
		m->recipient_name = col_text(tup, desc, 5, cxt);
		m->subject = col_text(tup, desc, 6, cxt);
		m->body_text = col_text(tup, desc, 7, cxt);
		m->body_html = col_text(tup, desc, 8, cxt);
		m->list_unsubscribe = col_text(tup, desc, 9, cxt);
		d = SPI_getbinval(tup, desc, 10, &isnull);
		if (!isnull)
		{
			bytea	   *b = DatumGetByteaPP(d);

			m->attachment_len = VARSIZE_ANY_EXHDR(b);
			m->attachment = MemoryContextAlloc(cxt, m->attachment_len + 1);
			memcpy(m->attachment, VARDATA_ANY(b), m->attachment_len);
		}
		m->attachment_name = col_text(tup, desc, 11, cxt);
		{
			MemoryContext spi = MemoryContextSwitchTo(cxt);

			mails = lappend(mails, m);
			MemoryContextSwitchTo(spi);
		}
	}
	ret = SPI_execute("SELECT (extract(epoch FROM paas.notify_next_due() - clock_timestamp()) * 1000)::bigint",
					  true, 1);
	if (ret == SPI_OK_SELECT && SPI_processed == 1)
	{
		bool		isnull;
		Datum		d = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull);

		if (!isnull)
			*next_due_ms = (long) Max(DatumGetInt64(d), 0);
	}
	end_tx();
	return mails;
}

static const char *const outcome_names[] = {"sent", "temporary", "permanent", "unavailable"};

enum
{
	OUT_SENT,
	OUT_TEMPORARY,
	OUT_PERMANENT,
	OUT_UNAVAILABLE				/* the server itself failed: the attempt is not counted */
};

/* The outcome of one attempt, to be recorded. */
typedef struct Outcome
{
	const Mail *m;
	int			outcome;		/* OUT_* */
	int			code;			/* the server's reply code, 0 without one */
	char		reply[MAILER_REPLY_MAX + 1];
} Outcome;

/*
 * Records outcomes (paas.notify_record), all in one transaction; returns
 * how long until the first of them is due again (-1: none will be).
 */
static long
record(const Outcome *outs, int n)
{
	long		due_ms = -1;
	Oid			argtypes[5] = {INT8OID, INT4OID, TEXTOID, INT4OID, TEXTOID};

	if (n == 0)
		return -1;
	paas_bgw_begin_tx("paas mailer: recording outcomes");
	for (int i = 0; i < n; i++)
	{
		const Outcome *o = &outs[i];
		Datum		args[5];
		char		nulls[5] = {' ', ' ', ' ', ' ', ' '};
		int			ret;

		args[0] = Int64GetDatum(o->m->id);
		args[1] = Int32GetDatum(o->m->attempt);
		args[2] = CStringGetTextDatum(outcome_names[o->outcome]);
		args[3] = Int32GetDatum(o->code);
		if (o->code == 0)
			nulls[3] = 'n';
		args[4] = CStringGetTextDatum(o->reply);
		ret = SPI_execute_with_args("SELECT (extract(epoch FROM x.due_at - clock_timestamp()) * 1000)::bigint "
									"FROM paas.notify_record($1, $2, $3, $4, $5) st "
									"JOIN paas.notification_outbox x ON x.id = $1 "
									"WHERE st IN ('PENDING', 'SENDING')",
									5, argtypes, args, nulls, false, 1);
		if (ret != SPI_OK_SELECT)
			elog(ERROR, "paas.notify_record failed: %d", ret);
		if (SPI_processed == 1)
		{
			bool		isnull;
			Datum		d = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull);

			if (!isnull && (due_ms < 0 || DatumGetInt64(d) < due_ms))
				due_ms = (long) Max(DatumGetInt64(d), 0);
		}
	}
	end_tx();
	return due_ms;
}

static void
release(List *ids, int delay_ms)
{
	Oid			argtypes[2] = {INT8ARRAYOID, INT4OID};
	Datum		args[2];
	Datum	   *elems;
	int			n = list_length(ids);
	int			i = 0;
	ListCell   *lc;
	int			ret;

	if (n == 0)
		return;
	elems = palloc(sizeof(Datum) * n);
	foreach(lc, ids)
		elems[i++] = Int64GetDatum(((const Mail *) lfirst(lc))->id);
	paas_bgw_begin_tx("paas mailer: giving mail back");
	args[0] = PointerGetDatum(construct_array(elems, n, INT8OID, sizeof(int64), FLOAT8PASSBYVAL, TYPALIGN_DOUBLE));
	args[1] = Int32GetDatum(delay_ms);
	ret = SPI_execute_with_args("SELECT paas.notify_release($1, make_interval(secs => $2 / 1000.0))",
								2, argtypes, args, NULL, false, 1);
	if (ret != SPI_OK_SELECT)
		elog(ERROR, "paas.notify_release failed: %d", ret);
	end_tx();
}

/* ---- SMTP ---------------------------------------------------------------- */

/*
 * The SMTP replies of one call: the last line, and the first 4xx / 5xx line
 * (after a refusal libcurl closes the connection, and the server's answer to
 * QUIT would otherwise hide the refusal).
 */
typedef struct Replies
{
	int			lines;
	char		last[MAILER_REPLY_MAX + 1];
	char		refusal[MAILER_REPLY_MAX + 1];
} Replies;

/*
 * The last part of a message, read by libcurl through a callback: before
 * its last bytes are handed out (libcurl then closes the MIME body and sends
 * the end-of-data dot), the records committed so far are flushed.
 */
typedef struct Tail
{
	const char *data;
	size_t		len;
	size_t		pos;
	bool		flushed;
} Tail;

/*
 * One SMTP connection's worth of sending: an easy handle (which the multi
 * handle gives a connection of its pool) and the mail it carries, if any,
 * with what libcurl reads of it.
 */
typedef struct Slot
{
	CURL	   *h;
	const Mail *m;				/* the mail in flight; NULL: idle */
	curl_mime  *mime;
	struct curl_slist *headers;
	struct curl_slist *rcpt;
	Tail		tail;
	Replies		r;
	char		errbuf[CURL_ERROR_SIZE];
	bool		retried;		/* sent again on a fresh connection */
} Slot;

static Slot slots[MAILER_MAX_CONNECTIONS];
static int	nslots = 0;			/* slots with a handle: paas.smtp_connections */

static size_t
on_reply_line(char *data, size_t size, size_t nitems, void *userdata)
{
	Replies    *r = (Replies *) userdata;
	size_t		n = size * nitems;
	size_t		k = n;

	while (k > 0 && (data[k - 1] == '\r' || data[k - 1] == '\n'))
		k--;
	if (k > MAILER_REPLY_MAX)
		k = MAILER_REPLY_MAX;
	if (k > 0)
	{
		memcpy(r->last, data, k);
		r->last[k] = '\0';
		r->lines++;
		if (r->refusal[0] == '\0' && k >= 3 && (data[0] == '4' || data[0] == '5') &&
			isdigit((unsigned char) data[1]) && isdigit((unsigned char) data[2]))
			memcpy(r->refusal, r->last, k + 1);
	}
	return n;
}

/* The address part of paas.mail_from ("Name <a@b>" or "a@b"), palloc'd. */
static char *
from_address(void)
{
	const char *lt = strrchr(mail_from, '<');
	const char *gt = lt ? strchr(lt, '>') : NULL;

	if (lt && gt)
		return pnstrdup(lt + 1, gt - lt - 1);
	return pstrdup(mail_from);
}

/* The display name of paas.mail_from, palloc'd; NULL without one. */
static char *
from_name(void)
{
	const char *lt = strrchr(mail_from, '<');
	char	   *name;
	int			n;

	if (lt == NULL)
		return NULL;
	name = pnstrdup(mail_from, lt - mail_from);
	n = strlen(name);
	while (n > 0 && (name[n - 1] == ' ' || name[n - 1] == '\t'))
		name[--n] = '\0';
	if (n >= 2 && name[0] == '"' && name[n - 1] == '"')
	{
		name[n - 1] = '\0';
		name++;
	}
	return *name ? name : NULL;
}

/* Whether the host of the SMTP URL is a loopback address. */
static bool
loopback_url(const char *url)
{
	CURLU	   *u = curl_url();
	char	   *host = NULL;
	bool		yes = false;

	if (u == NULL)
		return false;
	if (curl_url_set(u, CURLUPART_URL, url, 0) == CURLUE_OK &&
		curl_url_get(u, CURLUPART_HOST, &host, 0) == CURLUE_OK)
		yes = strcmp(host, "localhost") == 0 || strncmp(host, "127.", 4) == 0 ||
			strcmp(host, "[::1]") == 0 || strcmp(host, "::1") == 0;
	curl_free(host);
	curl_url_cleanup(u);
	return yes;
}

/*
 * The first line of the password file (palloc'd), NULL when there is no
 * file or it cannot be read (logged, without the password).
 */
static char *
read_password(void)
{
	FILE	   *f;
	char		buf[1024];
	struct stat st;
	char	   *pw = NULL;

	if (smtp_password_file == NULL || smtp_password_file[0] == '\0')
		return NULL;
	f = fopen(smtp_password_file, "r");
	if (f == NULL)
	{
		publish_error("cannot open paas.smtp_password_file: %m");
		ereport(WARNING, (errcode_for_file_access(),
						  errmsg("paas mailer: could not open password file \"%s\": %m", smtp_password_file)));
		return NULL;
	}
	if (fstat(fileno(f), &st) == 0 && (st.st_mode & (S_IRWXG | S_IRWXO)) != 0)
		ereport(WARNING,
				(errmsg("paas mailer: password file \"%s\" is readable by others", smtp_password_file),
				 errhint("chmod 600 it.")));
	if (fgets(buf, sizeof(buf), f) != NULL)
	{
		size_t		n = strcspn(buf, "\r\n");

		buf[n] = '\0';
		pw = pstrdup(buf);
	}
	explicit_bzero(buf, sizeof(buf));
	fclose(f);
	return pw;
}

/*
 * The kept handle, made with the current settings; NULL (and last_error
 * published) when the settings cannot work.
 */
static CURL *
smtp_handle(void)
{
	char	   *pw;
	char	   *url;

	if (handle != NULL)
		return handle;
	if (smtp_tls == TLS_NONE && !loopback_url(smtp_url))
	{
		publish_error("paas.smtp_tls = none is only allowed for a loopback SMTP server");
		ereport(WARNING,
				(errmsg("paas mailer: paas.smtp_tls = none is refused for a server that is not on loopback"),
				 errhint("Use starttls or tls.")));
		return NULL;
	}
	url = pstrdup(smtp_url);
	if (smtp_tls == TLS_IMPLICIT && strncmp(url, "smtp://", 7) == 0)
		url = psprintf("smtps://%s", smtp_url + 7);
	handle = curl_easy_init();
	if (handle == NULL)
	{
		publish_error("curl_easy_init failed");
		return NULL;
	}
	curl_easy_setopt(handle, CURLOPT_URL, url);
	curl_easy_setopt(handle, CURLOPT_PROTOCOLS_STR, "smtp,smtps");
	curl_easy_setopt(handle, CURLOPT_USE_SSL, (long) (smtp_tls == TLS_NONE ? CURLUSESSL_NONE : CURLUSESSL_ALL));
	if (smtp_ca_file && smtp_ca_file[0])
		curl_easy_setopt(handle, CURLOPT_CAINFO, smtp_ca_file);
	if (smtp_user && smtp_user[0])
	{
		curl_easy_setopt(handle, CURLOPT_USERNAME, smtp_user);
		pw = read_password();
		curl_easy_setopt(handle, CURLOPT_PASSWORD, pw ? pw : "");	/* libcurl copies it */
		if (pw)
		{
			explicit_bzero(pw, strlen(pw));
			pfree(pw);
		}
	}
	curl_easy_setopt(handle, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(handle, CURLOPT_CONNECTTIMEOUT_MS, 10000L);
	curl_easy_setopt(handle, CURLOPT_TIMEOUT_MS, 60000L);
	curl_easy_setopt(handle, CURLOPT_MAXAGE_CONN, 60L);
	curl_easy_setopt(handle, CURLOPT_HEADERFUNCTION, on_reply_line);
	pfree(url);

	/* the multi handle keeps the connections; each slot carries one */
	multi = curl_multi_init();
	if (multi == NULL)
	{
		publish_error("curl_multi_init failed");
		curl_easy_cleanup(handle);
		handle = NULL;
		return NULL;
	}
	curl_multi_setopt(multi, CURLMOPT_MAXCONNECTS, (long) smtp_connections);
	memset(slots, 0, sizeof(slots));
	slots[0].h = handle;
	for (nslots = 1; nslots < smtp_connections; nslots++)
	{
		slots[nslots].h = curl_easy_duphandle(handle);
		if (slots[nslots].h == NULL)
			break;				/* fewer connections then */
	}
	for (int i = 0; i < nslots; i++)
		curl_easy_setopt(slots[i].h, CURLOPT_PRIVATE, (void *) &slots[i]);
	return handle;
}

/*
 * Closes the connections (QUIT) and frees the handles; the next mail
 * connects anew.  A slot with a mail in flight is taken out of the multi
 * handle first (its MIME structures are the pass's to free).
 */
static void
smtp_close(void)
{
	for (int i = 0; i < nslots; i++)
	{
		if (slots[i].h == NULL)
			continue;
		if (slots[i].m != NULL && multi != NULL)
			curl_multi_remove_handle(multi, slots[i].h);
		curl_easy_cleanup(slots[i].h);
		slots[i].h = NULL;
	}
	nslots = 0;
	if (multi != NULL)
		curl_multi_cleanup(multi);	/* QUIT */
	handle = NULL;
	multi = NULL;
}

/*
 * libcurl's read of the last part of a message: the records committed so
 * far are flushed before its last bytes are handed out.
 */
static size_t
tail_read(char *buf, size_t size, size_t nitems, void *arg)
{
	Tail	   *t = (Tail *) arg;
	size_t		n = size * nitems;
	size_t		left = t->len - t->pos;

	if (n > left)
		n = left;
	/*
	 * Before the last bytes are handed out (libcurl knows the size and may
	 * never ask again): nothing of this message's end, nor the dot, has been
	 * sent yet.
	 */
	if (n == left && !t->flushed)
	{
		flush_records();		/* a PANIC on fsync failure ends the process */
		t->flushed = true;
	}
	memcpy(buf, t->data + t->pos, n);
	t->pos += n;
	return n;
}

static int
tail_seek(void *arg, curl_off_t offset, int origin)
{
	Tail	   *t = (Tail *) arg;

	if (origin != SEEK_SET || offset < 0 || (size_t) offset > t->len)
		return CURL_SEEKFUNC_CANTSEEK;
	t->pos = (size_t) offset;
	return CURL_SEEKFUNC_OK;
}

/* The result of one SMTP call. */
typedef struct Sent
{
	int			outcome;		/* OUT_* */
	bool		server_down;	/* the server itself failed: connect, TLS, AUTH */
	int			code;			/* the last reply code, 0 without one */
	char		reply[MAILER_REPLY_MAX + 1];
} Sent;

/* s with every line ending CRLF (palloc'd), the canonical form of text parts. */
static char *
to_crlf(const char *s)
{
	StringInfoData out;

	initStringInfo(&out);
	for (; *s; s++)
	{
		if (*s == '\n' && (out.len == 0 || out.data[out.len - 1] != '\r'))
			appendStringInfoChar(&out, '\r');
		appendStringInfoChar(&out, *s);
	}
	return out.data;
}

static void
rfc5322_date(char *buf, size_t len)
{
	time_t		now = time(NULL);
	struct tm	tm;

	gmtime_r(&now, &tm);
	strftime(buf, len, "%a, %d %b %Y %H:%M:%S +0000", &tm);
}

/*
 * Starts the transfer of one mail on an idle slot: the message -- headers
 * (Date, From, To, Subject, Message-ID, Auto-Submitted, and
 * List-Unsubscribe + List-Unsubscribe-Post for reminders) and a MIME body
 * built by libcurl -- and the envelope are set on the slot's handle, which
 * is added to the multi handle.  What it allocates outside palloc is the
 * slot's until slot_clear().
 */
static void
slot_start(Slot *s, const Mail *m)
{
	CURL	   *h = s->h;
	char		date[64];
	char	   *fname = from_name();
	char	   *faddr = from_address();
	curl_mime  *alt;
	curl_mimepart *part;
	struct curl_slist *alt_headers;

	Assert(s->m == NULL);
	s->m = m;
	s->retried = false;
	memset(&s->tail, 0, sizeof(s->tail));
	memset(&s->r, 0, sizeof(s->r));
	s->errbuf[0] = '\0';

	rfc5322_date(date, sizeof(date));
	s->headers = curl_slist_append(s->headers, psprintf("Date: %s", date));
	s->headers = curl_slist_append(s->headers, psprintf("From: %s", paas_mail_encode_address(fname, faddr)));
	s->headers = curl_slist_append(s->headers, psprintf("To: %s",
														paas_mail_encode_address(m->recipient_name, m->recipient)));
	s->headers = curl_slist_append(s->headers, psprintf("Subject: %s", paas_mail_encode_word(m->subject)));
	s->headers = curl_slist_append(s->headers, psprintf("Message-ID: %s", m->message_id));
	s->headers = curl_slist_append(s->headers, "Auto-Submitted: auto-generated");
	if (m->list_unsubscribe)
	{
		s->headers = curl_slist_append(s->headers, psprintf("List-Unsubscribe: %s", m->list_unsubscribe));
		s->headers = curl_slist_append(s->headers, "List-Unsubscribe-Post: List-Unsubscribe=One-Click");
	}
	s->rcpt = curl_slist_append(s->rcpt, psprintf("<%s>", m->recipient));

	s->mime = curl_mime_init(h);
	alt = curl_mime_init(h);
	part = curl_mime_addpart(alt);
	curl_mime_data(part, to_crlf(m->body_text), CURL_ZERO_TERMINATED);
	curl_mime_type(part, "text/plain; charset=UTF-8");
	curl_mime_encoder(part, "quoted-printable");
	part = curl_mime_addpart(alt);
	if (m->attachment)
		curl_mime_data(part, to_crlf(m->body_html), CURL_ZERO_TERMINATED);
	else
	{
		s->tail.data = to_crlf(m->body_html);
		s->tail.len = strlen(s->tail.data);
		curl_mime_data_cb(part, (curl_off_t) s->tail.len, tail_read, tail_seek, NULL, &s->tail);
	}
	curl_mime_type(part, "text/html; charset=UTF-8");
	curl_mime_encoder(part, "quoted-printable");
	part = curl_mime_addpart(s->mime);
	curl_mime_subparts(part, alt);	/* the message owns alt from here */
	curl_mime_type(part, "multipart/alternative");
	alt_headers = curl_slist_append(NULL, "Content-Disposition: inline");
	curl_mime_headers(part, alt_headers, 1);	/* the part owns the list */
	if (m->attachment)
	{
		part = curl_mime_addpart(s->mime);
		s->tail.data = m->attachment;
		s->tail.len = m->attachment_len;
		curl_mime_data_cb(part, (curl_off_t) s->tail.len, tail_read, tail_seek, NULL, &s->tail);
		curl_mime_type(part, "application/pdf");
		curl_mime_filename(part, m->attachment_name ? m->attachment_name : "invoice.pdf");
		curl_mime_encoder(part, "base64");
	}

	curl_easy_setopt(h, CURLOPT_MAIL_FROM, psprintf("<%s>", faddr));
	curl_easy_setopt(h, CURLOPT_MAIL_RCPT, s->rcpt);
	curl_easy_setopt(h, CURLOPT_HTTPHEADER, s->headers);
	curl_easy_setopt(h, CURLOPT_MIMEPOST, s->mime);
	curl_easy_setopt(h, CURLOPT_FRESH_CONNECT, 0L);
	curl_easy_setopt(h, CURLOPT_HEADERDATA, (void *) &s->r);
	curl_easy_setopt(h, CURLOPT_ERRORBUFFER, s->errbuf);
	if (curl_multi_add_handle(multi, h) != CURLM_OK)
		elog(ERROR, "curl_multi_add_handle failed");
}

/*
 * Runs the slot's mail once more on a fresh connection (the kept one had
 * been closed by the server): the message is read again from its start.
 */
static void
slot_retry(Slot *s)
{
	s->retried = true;
	s->tail.pos = 0;
	s->tail.flushed = false;
	memset(&s->r, 0, sizeof(s->r));
	s->errbuf[0] = '\0';
	curl_easy_setopt(s->h, CURLOPT_FRESH_CONNECT, 1L);
	if (curl_multi_add_handle(multi, s->h) != CURLM_OK)
		elog(ERROR, "curl_multi_add_handle failed");
}

/* Frees what slot_start() set up; the slot's handle must be out of the multi handle. */
static void
slot_clear(Slot *s)
{
	curl_easy_setopt(s->h, CURLOPT_MIMEPOST, NULL);
	curl_easy_setopt(s->h, CURLOPT_HTTPHEADER, NULL);
	curl_easy_setopt(s->h, CURLOPT_MAIL_RCPT, NULL);
	curl_easy_setopt(s->h, CURLOPT_HEADERDATA, NULL);
	curl_easy_setopt(s->h, CURLOPT_ERRORBUFFER, NULL);
	curl_easy_setopt(s->h, CURLOPT_FRESH_CONNECT, 0L);
	curl_mime_free(s->mime);
	curl_slist_free_all(s->headers);
	curl_slist_free_all(s->rcpt);
	s->mime = NULL;
	s->headers = NULL;
	s->rcpt = NULL;
	s->m = NULL;
}

/* The outcome of a finished transfer of a slot (libcurl's result rc). */
static void
slot_outcome(Slot *s, CURLcode rc, Sent *out)
{
	const Replies *r = &s->r;
	const char *errbuf = s->errbuf;

	memset(out, 0, sizeof(*out));
	if (rc == CURLE_OK)
	{
		const char *l = r->last;

		if (strlen(l) >= 3 && isdigit((unsigned char) l[0]))
			out->code = (l[0] - '0') * 100 + (l[1] - '0') * 10 + (l[2] - '0');
		out->outcome = OUT_SENT;
		strlcpy(out->reply, l, sizeof(out->reply));
		return;
	}
	if (r->refusal[0] != '\0')
		out->code = (r->refusal[0] - '0') * 100 + (r->refusal[1] - '0') * 10 + (r->refusal[2] - '0');
	snprintf(out->reply, sizeof(out->reply), "%s%s%s", errbuf[0] ? errbuf : curl_easy_strerror(rc),
			 r->lines > 0 ? " -- " : "", r->refusal[0] ? r->refusal : r->last);
	switch (rc)
	{
		case CURLE_LOGIN_DENIED:
		case CURLE_USE_SSL_FAILED:
		case CURLE_COULDNT_RESOLVE_HOST:
		case CURLE_COULDNT_CONNECT:
		case CURLE_SSL_CONNECT_ERROR:
		case CURLE_PEER_FAILED_VERIFICATION:
		case CURLE_SSL_CACERT_BADFILE:
		case CURLE_OPERATION_TIMEDOUT:
			out->server_down = true;
			out->outcome = OUT_TEMPORARY;
			return;
		default:
			break;
	}
	out->server_down = (r->lines == 0);
	out->outcome = (out->code >= 500 && out->code < 600) ? OUT_PERMANENT : OUT_TEMPORARY;
	if (strncmp(errbuf, "MAIL failed", 11) == 0)
	{
		/* the sender was refused (settings, AUTH): not this mail's fault */
		out->outcome = OUT_TEMPORARY;
		out->server_down = true;
	}
}

/* ---- the worker ---------------------------------------------------------- */

/*
 * One pass: claim, send and record, in cxt.  The claimed mails go out over
 * the slots' connections, one mail per connection at a time; each outcome
 * is recorded in its own transaction as soon as its transfer ends, while
 * the other connections' transfers wait on the server.  Returns how long to
 * wait before the next pass (0: at once, a full batch was claimed);
 * *handled is the number of mails it tried.
 */
static long
mailer_pass(MemoryContext cxt, long *pause_ms, int *handled)
{
	long		next_due_ms;
	List	   *mails;
	int			n;
	int			next = 0;
	int			busy = 0;
	int			sent = 0,
				retried = 0,
				failed = 0;
	bool		down = false;
	char		down_reply[MAILER_REPLY_MAX + 1] = "";
	Outcome    *outs = palloc(sizeof(Outcome) * MAILER_MAX_CONNECTIONS);

	*handled = 0;
	if (smtp_handle() == NULL)
	{
		/* settings that cannot work (logged): mail waits, nothing is attempted */
		*pause_ms = MAILER_PAUSE_MAX_MS;
		return *pause_ms;
	}
	mails = claim(cxt, &next_due_ms);
	n = list_length(mails);
	PG_TRY();
	{
		for (;;)
		{
			CURLMsg    *msg;
			CURLMcode	mc;
			int			queued;
			int			running = 0;
			int			nout;
			long		due;

			CHECK_FOR_INTERRUPTS();
			/* every idle connection takes the next mail */
			for (int i = 0; i < nslots && !down && next < n; i++)
			{
				if (slots[i].m != NULL)
					continue;
				slot_start(&slots[i], (const Mail *) list_nth(mails, next++));
				busy++;
			}
			if (busy == 0)
				break;
			pgstat_report_activity(STATE_RUNNING, "paas mailer: SMTP");
			mc = curl_multi_perform(multi, &running);
			if (mc != CURLM_OK)
				elog(ERROR, "curl_multi_perform failed: %s", curl_multi_strerror(mc));
			/*
			 * The records committed so far are flushed while the server works
			 * on what was just sent (tail_read() makes sure it is done before
			 * any further end-of-data dot).
			 */
			flush_records();
			nout = 0;
			while ((msg = curl_multi_info_read(multi, &queued)) != NULL)
			{
				Slot	   *s = NULL;
				Sent		o;
				long		conns = 0;
				Outcome    *out;

				if (msg->msg != CURLMSG_DONE)
					continue;
				curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, (char **) &s);
				Assert(s != NULL && s->m != NULL);
				slot_outcome(s, msg->data.result, &o);
				curl_multi_remove_handle(multi, s->h);
				curl_easy_getinfo(s->h, CURLINFO_NUM_CONNECTS, &conns);	/* 0: reused */
				if (o.server_down && conns == 0 && o.code == 0 && !s->retried && !down)
				{
					/* a kept connection the server had closed: once more, fresh */
					slot_retry(s);
					continue;
				}
				out = &outs[nout++];
				out->m = s->m;
				out->outcome = o.server_down ? OUT_UNAVAILABLE : o.outcome;
				out->code = o.code;
				strlcpy(out->reply, o.reply, sizeof(out->reply));
				slot_clear(s);
				busy--;
				(*handled)++;
				if (o.outcome == OUT_SENT)
					sent++;
				else if (o.outcome == OUT_PERMANENT)
					failed++;
				else
					retried++;
				if (o.outcome != OUT_SENT)
					publish_error("mail %lld: %s", (long long) out->m->id, o.reply);
				if (o.server_down && !down)
				{
					/* the rest waits for the server, unattempted */
					down = true;
					strlcpy(down_reply, o.reply, sizeof(down_reply));
				}
			}

			/*
			 * What ended in this round is recorded in one transaction before
			 * any further mail is started (and flushed before its dot).
			 */
			due = record(outs, nout);
			if (due >= 0 && (next_due_ms < 0 || due < next_due_ms))
				next_due_ms = due;	/* a retry earlier than anything else queued */
			if (busy > 0)
			{
				mc = curl_multi_poll(multi, NULL, 0, 1000, NULL);
				if (mc != CURLM_OK)
					elog(ERROR, "curl_multi_poll failed: %s", curl_multi_strerror(mc));
			}
		}
	}
	PG_FINALLY();
	{
		for (int i = 0; i < nslots; i++)
		{
			if (slots[i].m == NULL)
				continue;
			curl_multi_remove_handle(multi, slots[i].h);
			slot_clear(&slots[i]);
		}
	}
	PG_END_TRY();
	if (down)
	{
		*pause_ms = Min(Max(*pause_ms * 2, MAILER_PAUSE_MIN_MS), MAILER_PAUSE_MAX_MS);
		release(list_copy_tail(mails, next), (int) *pause_ms);
		smtp_close();
		elog(LOG, "paas mailer: SMTP server unavailable (%s); trying again in %ld ms",
			 down_reply, *pause_ms);
	}
	else if (sent > 0)
		*pause_ms = 0;
	flush_records();
	publish_counts(sent, retried, failed);
	if (down)
		return *pause_ms;
	if (n >= mail_batch)
		return 0;
	if (next_due_ms < 0 || next_due_ms > MAILER_POLL_MS)
		return MAILER_POLL_MS;
	return Max(next_due_ms, 10);
}

void
paas_mailer_main(Datum main_arg)
{
	MemoryContext cxt;
	long		wait_ms = 0;
	long		pause_ms = 0;
	TimestampTz last_mail = 0;
	TimestampTz down_until = 0;

	pqsignal(SIGHUP, SignalHandlerForConfigReload);
	pqsignal(SIGTERM, die);
	BackgroundWorkerUnblockSignals();
	BackgroundWorkerInitializeConnection(paas_database, NULL, 0);

	if (curl_global_init(CURL_GLOBAL_ALL) != CURLE_OK)
		elog(ERROR, "curl_global_init failed");
	before_shmem_exit(mailer_exit, (Datum) 0);
	if (paas_mailer_shared != NULL)
	{
		SpinLockAcquire(&paas_mailer_shared->mutex);
		paas_mailer_shared->pid = MyProcPid;
		paas_mailer_shared->latch = MyLatch;
		paas_mailer_shared->started_at = GetCurrentTimestamp();
		paas_mailer_shared->last_error[0] = '\0';
		SpinLockRelease(&paas_mailer_shared->mutex);
	}
	/* its SQL runs as superuser: nothing of schema public is ever picked up */
	SetConfigOption("search_path", "pg_catalog, pg_temp", PGC_SUSET, PGC_S_OVERRIDE);
	/* records are flushed before the next mail can be accepted (see above) */
	SetConfigOption("synchronous_commit", "off", PGC_USERSET, PGC_S_SESSION);
	elog(LOG, "paas mailer started in database \"%s\"", paas_database);
	cxt = AllocSetContextCreate(TopMemoryContext, "paas mailer pass", ALLOCSET_DEFAULT_SIZES);

	for (;;)
	{
		MemoryContext old;
		int			handled;

		if (wait_ms > 0)
		{
			pgstat_report_stat(true);
			(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
							 wait_ms, PG_WAIT_EXTENSION);
			ResetLatch(MyLatch);
		}
		CHECK_FOR_INTERRUPTS();
		if (ConfigReloadPending)
		{
			ConfigReloadPending = false;
			ProcessConfigFile(PGC_SIGHUP);
			smtp_close();		/* the next mail connects with the new settings */
		}
		if (smtp_url == NULL || smtp_url[0] == '\0')
		{
			wait_ms = MAILER_POLL_MS;
			continue;
		}
		if (down_until != 0 && GetCurrentTimestamp() < down_until)
		{
			/* the server failed: new mail waits for the pause too */
			long		secs;
			int			usecs;

			TimestampDifference(GetCurrentTimestamp(), down_until, &secs, &usecs);
			wait_ms = Max(secs * 1000 + usecs / 1000, 10);
			continue;
		}
		MemoryContextReset(cxt);
		old = MemoryContextSwitchTo(cxt);
		wait_ms = mailer_pass(cxt, &pause_ms, &handled);
		MemoryContextSwitchTo(old);
		down_until = pause_ms > 0 ? TimestampTzPlusMilliseconds(GetCurrentTimestamp(), pause_ms) : 0;
		if (handled > 0)
			last_mail = GetCurrentTimestamp();
		else if (handle != NULL &&
				 TimestampDifferenceExceeds(last_mail, GetCurrentTimestamp(), MAILER_IDLE_CLOSE_MS))
			smtp_close();		/* idle: QUIT */
	}
}
