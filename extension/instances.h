/*-------------------------------------------------------------------------
 *
 * instances.h
 *	  Hosted instances: the settings (GUCs) shared by the SQL functions of
 *	  extension/instances.c and the reconciler of bgworker/provisioner.c, and
 *	  the provisioner's shared state.
 *
 *-------------------------------------------------------------------------
 */
#ifndef PAAS_INSTANCES_H
#define PAAS_INSTANCES_H

#include "postgres.h"
#include "datatype/timestamp.h"
#include "storage/latch.h"
#include "storage/spin.h"

/* GUCs (defined in extension/instances.c) */
extern char *paas_apps_domain;
extern char *paas_ingress_class;
extern char *paas_cert_issuer;
extern char *paas_ingress_namespace;
extern char *paas_storage_class;
extern int	paas_instance_data_retention_s;
extern int	paas_instance_start_deadline_s;
extern int	paas_instance_resync_interval_s;
extern char *paas_k8s_api_url;
extern char *paas_k8s_token_file;
extern char *paas_k8s_ca_file;
extern int	paas_k8s_timeout_ms;
extern int	paas_provisioner_concurrency;
extern int	paas_provisioner_batch;

extern void paas_instances_init(void);

/*
 * What the provisioner publishes (api.pods_admin_provisioner, bench).
 * Written by the provisioner only; readers take the spinlock.
 */
typedef struct PaasProvisionerShared
{
	slock_t		mutex;
	int			pid;			/* 0 while no provisioner runs */
	Latch	   *latch;			/* the provisioner's latch, for wake-ups */
	bool		configured;		/* a Kubernetes API URL is known */
	TimestampTz started_at;
	TimestampTz last_pass;
	TimestampTz last_audit;
	uint64		passes;
	uint64		units;			/* namespaces and instances reconciled */
	uint64		api_calls;		/* HTTP requests sent to the API */
	uint64		api_errors;		/* transport failures and 5xx answers */
	uint64		audit_calls;	/* of api_calls: the periodic resync lists */
	uint64		audits;
	char		last_error[256];
	char		last_resync[512];	/* paas.provisioner_audit_end()'s answer */
} PaasProvisionerShared;

extern PaasProvisionerShared *paas_provisioner_shared;

extern void paas_provisioner_register(void);

#endif							/* PAAS_INSTANCES_H */
