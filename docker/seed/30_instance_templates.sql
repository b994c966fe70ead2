-- Seed: the deployment template of every catalog service (20_catalog.sql),
-- through api.services_deployment_set as the system (ctx '{}').
--
-- What makes each one run for real on a cluster: the image's data
-- directory on the volume, its own user where the image runs as one
-- (non-root, every capability dropped), a probe the app answers, the
-- secrets it needs generated per instance, and the URL it must know
-- ({{url}}, {{host}}).  Apps that need a database get it as a sidecar in
-- the same pod (127.0.0.1), on a sub-directory of the same volume.
--
-- Idempotent: a service that already has a template (seeded before, or an
-- administrator's) is left as it is.  The environment variables given here
-- are merged over the service's current ones.  One DO block: all or
-- nothing.

DO $seed$
DECLARE
	t jsonb;
	v paas.services;
BEGIN
	FOR t IN SELECT * FROM jsonb_array_elements($json$[
	{
		"name": "n8n",
		"deployment": {
			"volumeMountPath": "/home/node/.n8n",
			"runAsUser": 1000, "runAsGroup": 1000, "fsGroup": 1000,
			"probe": {"type": "http", "path": "/healthz", "startupSeconds": 300},
			"secrets": {"N8N_ENCRYPTION_KEY": {"length": 32}},
			"credentials": {"url": "{{url}}/", "login": "create the owner account on your first visit"}
		},
		"environmentVars": {
			"N8N_HOST": "{{host}}", "N8N_PORT": "5678", "N8N_PROTOCOL": "https",
			"N8N_EDITOR_BASE_URL": "{{url}}/", "WEBHOOK_URL": "{{url}}/", "N8N_PROXY_HOPS": "1",
			"N8N_ENCRYPTION_KEY": "{{secret.N8N_ENCRYPTION_KEY}}", "N8N_DIAGNOSTICS_ENABLED": "false",
			"N8N_RUNNERS_ENABLED": "true"
		}
	},
	{
		"name": "ghost",
		"deployment": {
			"volumeMountPath": "/var/lib/ghost/content",
			"runAsUser": 1000, "runAsGroup": 1000, "fsGroup": 1000,
			"probe": {"type": "tcp", "startupSeconds": 300},
			"credentials": {"url": "{{url}}/", "admin": "{{url}}/ghost/",
							"login": "create the staff account on your first visit to /ghost/"}
		},
		"environmentVars": {
			"url": "{{url}}", "NODE_ENV": "production", "database__client": "sqlite3",
			"database__connection__filename": "/var/lib/ghost/content/data/ghost.db"
		}
	},
	{
		"name": "wordpress",
		"deployment": {
			"volumeMountPath": "/var/www/html", "volumeSubPath": "html",
			"probe": {"type": "tcp", "startupSeconds": 300},
			"secrets": {"DB_PASSWORD": {"length": 24}},
			"credentials": {"url": "{{url}}/", "admin": "{{url}}/wp-admin/",
							"login": "choose the administrator on your first visit"},
			"sidecars": [{
				"name": "mariadb", "image": "mariadb:11",
				"cpuRequest": "100m", "cpuLimit": "500m", "memRequest": "256Mi", "memLimit": "512Mi",
				"volumeMountPath": "/var/lib/mysql", "volumeSubPath": "mysql",
				"probe": {"type": "exec", "command": ["healthcheck.sh", "--connect", "--innodb_initialized"]},
				"env": {"MARIADB_DATABASE": "wordpress", "MARIADB_USER": "wordpress",
						"MARIADB_PASSWORD": "{{secret.DB_PASSWORD}}", "MARIADB_RANDOM_ROOT_PASSWORD": "1"}
			}]
		},
		"environmentVars": {
			"WORDPRESS_DB_HOST": "127.0.0.1:3306", "WORDPRESS_DB_USER": "wordpress",
			"WORDPRESS_DB_PASSWORD": "{{secret.DB_PASSWORD}}", "WORDPRESS_DB_NAME": "wordpress",
			"WORDPRESS_CONFIG_EXTRA": "define('WP_HOME', '{{url}}'); define('WP_SITEURL', '{{url}}'); $_SERVER['HTTPS'] = 'on';"
		}
	},
	{
		"name": "uptime-kuma",
		"deployment": {
			"volumeMountPath": "/app/data",
			"probe": {"type": "http", "path": "/", "startupSeconds": 180},
			"credentials": {"url": "{{url}}/", "login": "create the administrator on your first visit"}
		},
		"environmentVars": {"UPTIME_KUMA_PORT": "3001"}
	},
	{
		"name": "umami",
		"deployment": {
			"volumeMountPath": "/var/lib/umami", "volumeSubPath": "app",
			"runAsUser": 1001, "runAsGroup": 1001,
			"probe": {"type": "http", "path": "/api/heartbeat", "startupSeconds": 300},
			"secrets": {"DB_PASSWORD": {"length": 24}, "APP_SECRET": {"length": 48}},
			"credentials": {"url": "{{url}}/", "username": "admin", "password": "umami",
							"note": "change the default password at your first login"},
			"sidecars": [{
				"name": "postgres", "image": "postgres:16-alpine",
				"cpuRequest": "100m", "cpuLimit": "500m", "memRequest": "128Mi", "memLimit": "512Mi",
				"volumeMountPath": "/var/lib/postgresql/data", "volumeSubPath": "postgres",
				"probe": {"type": "exec", "command": ["pg_isready", "-U", "umami", "-d", "umami"]},
				"env": {"POSTGRES_DB": "umami", "POSTGRES_USER": "umami",
						"POSTGRES_PASSWORD": "{{secret.DB_PASSWORD}}", "PGDATA": "/var/lib/postgresql/data/pgdata"}
			}]
		},
		"environmentVars": {
			"DATABASE_TYPE": "postgresql",
			"DATABASE_URL": "postgresql://umami:{{secret.DB_PASSWORD}}@127.0.0.1:5432/umami",
			"APP_SECRET": "{{secret.APP_SECRET}}"
		}
	},
	{
		"name": "postgresql",
		"deployment": {
			"expose": "none",
			"volumeMountPath": "/var/lib/postgresql/data",
			"runAsUser": 70, "runAsGroup": 70, "fsGroup": 70,
			"probe": {"type": "exec", "command": ["pg_isready", "-U", "app", "-d", "app"]},
			"secrets": {"POSTGRES_PASSWORD": {"length": 32}},
			"credentials": {
				"host": "{{instance}}.{{namespace}}.svc.cluster.local", "port": "5432",
				"database": "app", "username": "app", "password": "{{secret.POSTGRES_PASSWORD}}",
				"url": "postgres://app:{{secret.POSTGRES_PASSWORD}}@{{instance}}.{{namespace}}.svc.cluster.local:5432/app",
				"note": "reachable from your other instances (same namespace) only"}
		},
		"environmentVars": {
			"POSTGRES_DB": "app", "POSTGRES_USER": "app", "POSTGRES_PASSWORD": "{{secret.POSTGRES_PASSWORD}}",
			"PGDATA": "/var/lib/postgresql/data/pgdata"
		}
	},
	{
		"name": "gitea",
		"deployment": {
			"volumeMountPath": "/data",
			"probe": {"type": "http", "path": "/api/healthz", "startupSeconds": 300},
			"secrets": {"SECRET_KEY": {"length": 64}, "INTERNAL_TOKEN": {"length": 105}},
			"credentials": {"url": "{{url}}/", "login": "the first account you register becomes the administrator"}
		},
		"environmentVars": {
			"USER_UID": "1000", "USER_GID": "1000",
			"GITEA__server__ROOT_URL": "{{url}}/", "GITEA__server__DOMAIN": "{{host}}",
			"GITEA__server__SSH_DOMAIN": "{{host}}", "GITEA__server__DISABLE_SSH": "true",
			"GITEA__database__DB_TYPE": "sqlite3",
			"GITEA__security__SECRET_KEY": "{{secret.SECRET_KEY}}",
			"GITEA__security__INTERNAL_TOKEN": "{{secret.INTERNAL_TOKEN}}"
		}
	},
	{
		"name": "mattermost",
		"deployment": {
			"volumeMountPath": "/mattermost/data", "volumeSubPath": "mattermost",
			"runAsUser": 2000, "runAsGroup": 2000, "fsGroup": 2000,
			"probe": {"type": "http", "path": "/api/v4/system/ping", "startupSeconds": 600},
			"secrets": {"DB_PASSWORD": {"length": 24}},
			"credentials": {"url": "{{url}}/", "login": "the first account you create is the system administrator"},
			"sidecars": [{
				"name": "postgres", "image": "postgres:16-alpine",
				"cpuRequest": "100m", "cpuLimit": "500m", "memRequest": "256Mi", "memLimit": "512Mi",
				"volumeMountPath": "/var/lib/postgresql/data", "volumeSubPath": "postgres",
				"probe": {"type": "exec", "command": ["pg_isready", "-U", "mmuser", "-d", "mattermost"]},
				"env": {"POSTGRES_DB": "mattermost", "POSTGRES_USER": "mmuser",
						"POSTGRES_PASSWORD": "{{secret.DB_PASSWORD}}", "PGDATA": "/var/lib/postgresql/data/pgdata"}
			}]
		},
		"environmentVars": {
			"MM_SQLSETTINGS_DRIVERNAME": "postgres",
			"MM_SQLSETTINGS_DATASOURCE": "postgres://mmuser:{{secret.DB_PASSWORD}}@127.0.0.1:5432/mattermost?sslmode=disable&connect_timeout=10",
			"MM_SERVICESETTINGS_SITEURL": "{{url}}",
			"MM_FILESETTINGS_DIRECTORY": "/mattermost/data/"
		}
	},
	{
		"name": "minio",
		"deployment": {
			"volumeMountPath": "/data",
			"runAsUser": 1000, "runAsGroup": 1000, "fsGroup": 1000,
			"args": ["server", "/data", "--console-address", ":9001"],
			"probe": {"type": "http", "path": "/minio/health/live"},
			"secrets": {"ROOT_PASSWORD": {"length": 32}},
			"credentials": {"endpoint": "{{url}}", "accessKey": "admin", "secretKey": "{{secret.ROOT_PASSWORD}}"}
		},
		"environmentVars": {
			"MINIO_ROOT_USER": "admin", "MINIO_ROOT_PASSWORD": "{{secret.ROOT_PASSWORD}}",
			"MINIO_BROWSER": "on"
		}
	}
	]$json$::jsonb)
	LOOP
		SELECT * INTO v FROM paas.services WHERE name = t ->> 'name' AND deleted_at IS NULL;
		CONTINUE WHEN NOT FOUND OR EXISTS (SELECT 1 FROM paas.service_templates x WHERE x.service_id = v.id);
		PERFORM api.services_deployment_set(jsonb_build_object(
			'id', v.id, 'deployment', t -> 'deployment',
			'environmentVars', v.environment_vars || (t -> 'environmentVars')), '{}');
	END LOOP;
END
$seed$;
