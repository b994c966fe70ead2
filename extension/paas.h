/*-------------------------------------------------------------------------
 *
 * paas.h
 *	  Shared declarations of the paas extension: GUCs, the background
 *	  worker's shared state, and the application SQLSTATEs.
 *
 * Application outcomes that must reach an HTTP client with a given status
 * use SQLSTATEs of free classes "P<subject>", with the HTTP status in the
 * last three characters: "PT" for the contract's generic codes (PT400,
 * PT401, ...), and PU (user accounts), PE (an account's e-mail), PS
 * (services), PW (worker nodes) for the refusals the original API named
 * with codes of their own (PU404 USER_NOT_FOUND, PW409 WORKER_NODE_EXISTS
 * ...).  The gateway maps them in its single SQLSTATE table
 * (httpd/errors.c); docs/operations.md lists them.  A P<letter>4xx error
 * is a refusal, kept out of the server log (logging.c).
 *
 *-------------------------------------------------------------------------
 */
#ifndef PAAS_H
#define PAAS_H

#include "postgres.h"
#include "datatype/timestamp.h"
#include "port/atomics.h"
#include "storage/spin.h"

/* The version is written once, in the Makefile (EXTVERSION). */
#ifndef PAAS_VERSION
#error "PAAS_VERSION comes from the Makefile (EXTVERSION)"
#endif

#define ERRCODE_PAAS_VALIDATION		MAKE_SQLSTATE('P','T','4','0','0')
#define ERRCODE_PAAS_AUTH			MAKE_SQLSTATE('P','T','4','0','1')
#define ERRCODE_PAAS_INSUFFICIENT	MAKE_SQLSTATE('P','T','4','0','2')
#define ERRCODE_PAAS_FORBIDDEN		MAKE_SQLSTATE('P','T','4','0','3')
#define ERRCODE_PAAS_NOT_FOUND		MAKE_SQLSTATE('P','T','4','0','4')
#define ERRCODE_PAAS_CONFLICT		MAKE_SQLSTATE('P','T','4','0','9')
#define ERRCODE_PAAS_UNAVAILABLE	MAKE_SQLSTATE('P','T','5','0','3')

/* GUCs (defined in extension/paas.c) */
extern char *paas_database;
extern int	paas_tick_interval_ms;
extern int	paas_renewal_workers;	/* subscriptions: shards of a renewal run */

/* failed-login accounting (extension/accounts.c) */
extern int	paas_login_failures_per_address;
extern int	paas_login_failures_per_account;
extern int	paas_login_backoff_max_s;
extern void paas_accounts_init(void);

/* Kubernetes quantities (extension/quantity.c) */
extern const char *paas_quantity_problem(const char *s, bool milli, int64 *value);

/* worker nodes (extension/nodes.c) */
extern int	paas_node_grace_period_s;
extern int	paas_node_offline_after_s;
extern int	paas_node_history_retention_s;
extern void paas_nodes_init(void);
extern void paas_node_actions_init(void);	/* node_actions.c: paas.node_drain_timeout */

/* billing (extension/billing.c, bgworker/reconcile.c) */
extern char *paas_midtrans_server_key;
extern char *paas_midtrans_api_url;
extern bool paas_midtrans_is_production;
extern int	paas_billing_reconcile_after_s;
extern int	paas_billing_reconcile_interval_s;
extern void paas_billing_init(void);
extern void paas_logging_init(void);
extern const char *paas_midtrans_api_base(void);
extern void paas_reconcile_pass(void);

/*
 * State the background worker publishes for api.status().  Written only by
 * the worker; readers take the spinlock for a consistent snapshot.
 */
typedef struct PaasWorkerShared
{
	slock_t		mutex;
	int			pid;			/* 0 while no worker runs */
	TimestampTz started_at;
	TimestampTz last_tick;
	uint64		ticks;
	uint64		job_failures;
} PaasWorkerShared;

extern PaasWorkerShared *paas_worker_shared;

extern void paas_worker_register(void);
extern void paas_worker_shmem_request(void);
extern void paas_worker_shmem_startup(void);

#endif							/* PAAS_H */
