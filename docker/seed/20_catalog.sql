-- Seed: the service catalog, created through api.services_create as the
-- system (ctx '{}': a DBA session, see paas.require_admin).
--
-- Idempotent: a service whose slug exists already -- live or soft-deleted --
-- is left as it is, so running the seed again neither fails, nor overwrites
-- an administrator's edits (price, description), nor brings back a service
-- an administrator deleted.  One DO block: all or nothing.
--
-- Prices are whole IDR per month.  environmentVars are the non-secret
-- defaults of each image; secrets are not part of the catalog.

DO $seed$
DECLARE
	svc jsonb;
BEGIN
	FOR svc IN SELECT * FROM jsonb_array_elements($json$[
	{
		"name": "n8n",
		"displayName": "N8N Workflow Automation",
		"description": "Visual workflow automation: connect APIs, databases and SaaS tools with 400+ integrations, webhooks and scheduled triggers.",
		"category": "automation",
		"version": "latest",
		"dockerImage": "n8nio/n8n:latest",
		"containerPort": 5678,
		"cpuRequest": "0.25", "cpuLimit": "1", "memRequest": "512Mi", "memLimit": "1Gi",
		"resources": {"storageGiB": 5},
		"monthlyPrice": 25000,
		"features": ["Unlimited workflows", "Webhook triggers", "400+ integrations", "Daily backups"],
		"environmentVars": {
			"N8N_BASIC_AUTH_ACTIVE": "true",
			"N8N_BASIC_AUTH_USER": "admin",
			"N8N_HOST": "localhost",
			"N8N_PORT": "5678",
			"N8N_PROTOCOL": "https",
			"WEBHOOK_URL": "https://localhost/",
			"GENERIC_TIMEZONE": "Asia/Jakarta"
		}
	},
	{
		"name": "ghost",
		"displayName": "Ghost",
		"description": "Modern publishing platform for blogs and newsletters, with memberships, paid subscriptions and a fast editor.",
		"category": "cms",
		"version": "5",
		"dockerImage": "ghost:5-alpine",
		"containerPort": 2368,
		"cpuRequest": "0.25", "cpuLimit": "1", "memRequest": "256Mi", "memLimit": "1Gi",
		"resources": {"storageGiB": 10},
		"monthlyPrice": 35000,
		"features": ["Custom domain", "Newsletters", "Memberships", "SQLite storage"],
		"environmentVars": {
			"NODE_ENV": "production",
			"database__client": "sqlite3",
			"database__connection__filename": "/var/lib/ghost/content/data/ghost.db"
		}
	},
	{
		"name": "wordpress",
		"displayName": "WordPress",
		"description": "The most popular CMS on the web: websites, blogs and online shops with thousands of themes and plugins.",
		"category": "cms",
		"version": "6",
		"dockerImage": "wordpress:6-apache",
		"containerPort": 80,
		"cpuRequest": "0.25", "cpuLimit": "1", "memRequest": "256Mi", "memLimit": "1Gi",
		"resources": {"storageGiB": 10},
		"monthlyPrice": 30000,
		"features": ["Themes and plugins", "Custom domain", "Automatic updates", "Daily backups"],
		"environmentVars": {
			"WORDPRESS_DB_NAME": "wordpress",
			"WORDPRESS_TABLE_PREFIX": "wp_"
		}
	},
	{
		"name": "uptime-kuma",
		"displayName": "Uptime Kuma",
		"description": "Self-hosted uptime monitoring for websites, APIs and ports, with status pages and notifications.",
		"category": "monitoring",
		"version": "1",
		"dockerImage": "louislam/uptime-kuma:1",
		"containerPort": 3001,
		"cpuRequest": "100m", "cpuLimit": "0.5", "memRequest": "128Mi", "memLimit": "512Mi",
		"resources": {"storageGiB": 2},
		"monthlyPrice": 15000,
		"features": ["HTTP, TCP and DNS checks", "Status pages", "Telegram and e-mail alerts"],
		"environmentVars": {"UPTIME_KUMA_PORT": "3001"}
	},
	{
		"name": "umami",
		"displayName": "Umami Analytics",
		"description": "Privacy-friendly, cookie-free web analytics: page views, referrers and events in a simple dashboard.",
		"category": "analytics",
		"version": "postgresql-latest",
		"dockerImage": "ghcr.io/umami-software/umami:postgresql-latest",
		"containerPort": 3000,
		"cpuRequest": "0.25", "cpuLimit": "1", "memRequest": "256Mi", "memLimit": "512Mi",
		"resources": {"storageGiB": 5},
		"monthlyPrice": 20000,
		"features": ["Unlimited websites", "No cookies", "Shareable dashboards"],
		"environmentVars": {"DATABASE_TYPE": "postgresql"}
	},
	{
		"name": "postgresql",
		"displayName": "PostgreSQL",
		"description": "Managed PostgreSQL 16 database with persistent storage, for your applications and analytics.",
		"category": "database",
		"version": "16",
		"dockerImage": "postgres:16-alpine",
		"containerPort": 5432,
		"cpuRequest": "0.5", "cpuLimit": "2", "memRequest": "512Mi", "memLimit": "2Gi",
		"resources": {"storageGiB": 20},
		"monthlyPrice": 50000,
		"features": ["PostgreSQL 16", "20 GiB storage", "Daily backups"],
		"environmentVars": {"POSTGRES_DB": "app", "POSTGRES_USER": "app", "PGDATA": "/var/lib/postgresql/data/pgdata"}
	},
	{
		"name": "gitea",
		"displayName": "Gitea",
		"description": "Lightweight self-hosted Git service with issues, pull requests, packages and CI through Actions.",
		"category": "devtools",
		"version": "1.22",
		"dockerImage": "gitea/gitea:1.22",
		"containerPort": 3000,
		"cpuRequest": "0.25", "cpuLimit": "1", "memRequest": "256Mi", "memLimit": "1Gi",
		"resources": {"storageGiB": 10},
		"monthlyPrice": 30000,
		"features": ["Unlimited repositories", "Issues and pull requests", "Package registry"],
		"environmentVars": {"USER_UID": "1000", "USER_GID": "1000", "GITEA__database__DB_TYPE": "sqlite3"}
	},
	{
		"name": "mattermost",
		"displayName": "Mattermost",
		"description": "Open-source team chat with channels, threads, file sharing and integrations, on your own server.",
		"category": "communication",
		"version": "9.11",
		"dockerImage": "mattermost/mattermost-team-edition:9.11",
		"containerPort": 8065,
		"cpuRequest": "0.5", "cpuLimit": "2", "memRequest": "1Gi", "memLimit": "2Gi",
		"resources": {"storageGiB": 20},
		"monthlyPrice": 45000,
		"features": ["Unlimited channels", "File sharing", "Webhooks and bots"],
		"environmentVars": {"TZ": "Asia/Jakarta", "MM_SQLSETTINGS_DRIVERNAME": "postgres"}
	},
	{
		"name": "minio",
		"displayName": "MinIO Object Storage",
		"description": "S3-compatible object storage for backups, media and application data, with a web console.",
		"category": "storage",
		"version": "latest",
		"dockerImage": "minio/minio:latest",
		"containerPort": 9000,
		"cpuRequest": "0.25", "cpuLimit": "1", "memRequest": "512Mi", "memLimit": "1Gi",
		"resources": {"storageGiB": 50},
		"monthlyPrice": 40000,
		"features": ["S3-compatible API", "Web console", "50 GiB storage"],
		"environmentVars": {"MINIO_BROWSER": "on"}
	}
	]$json$::jsonb)
	LOOP
		IF NOT EXISTS (SELECT 1 FROM paas.services WHERE name = svc ->> 'name') THEN
			PERFORM api.services_create(svc, '{}');
		END IF;
	END LOOP;
END
$seed$;
