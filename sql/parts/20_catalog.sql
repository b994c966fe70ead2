-- paas -- catalog: the services customers can subscribe to (/services).
--
-- A service is identified by a uuid id and by its slug "name" (lowercase,
-- [a-z0-9-], 2-50 characters).  "admin" and "categories" are reserved:
-- /services/admin and /services/categories shadow /services/:name.  The slug
-- cannot be changed after creation.
--
-- Categories are a fixed list, paas.service_categories(), enforced by a
-- CHECK; adding one is a schema change made in an upgrade script.
--
-- Resources.  CPU is stored in millicores and memory in MiB, each as request
-- and limit (the Kubernetes pair), plus storage in GiB.  The API prints them
-- in two forms: the original system's strings (cpuRequest "0.25", memLimit
-- "1Gi", ...) and resources {cpuMillicores, memoryMiB, storageGiB}, whose
-- CPU and memory are the limits.  Both forms are accepted as input; when
-- both give a limit they must agree.
--
-- Visibility.  Public routes see active services only.  Deletion is soft
-- (deleted_at): a deleted service disappears from every route and its slug
-- becomes free again.  DELETE is refused (PT409) while a row of any table
-- with a foreign key to paas.services references the service; the check
-- reads pg_constraint, so tables added by later areas (subscriptions) are
-- covered without a change here.  Code that sells a service must lock its
-- row (FOR KEY SHARE) and check deleted_at IS NULL AND is_active: DELETE
-- locks the row FOR UPDATE before looking for references.
--
-- Search is a case-insensitive substring match over name, display name and
-- description, served by a pg_trgm GIN index on paas.service_search_text().

------------------------------------------------------------------------------
-- categories
------------------------------------------------------------------------------

CREATE FUNCTION paas.service_categories(OUT name text, OUT display_name text, OUT ord integer)
	RETURNS SETOF record
	LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS $$
	SELECT * FROM (VALUES
		('automation', 'Automation', 1),
		('cms', 'CMS & Websites', 2),
		('database', 'Databases', 3),
		('analytics', 'Analytics', 4),
		('devtools', 'Developer Tools', 5),
		('communication', 'Communication', 6),
		('storage', 'Storage', 7),
		('monitoring', 'Monitoring', 8),
		('other', 'Other', 9)) AS c (name, display_name, ord)
$$;
COMMENT ON FUNCTION paas.service_categories() IS
	'the fixed list of service categories, in display order';

CREATE FUNCTION paas.is_service_category(c text) RETURNS boolean
	LANGUAGE sql IMMUTABLE PARALLEL SAFE
	RETURN c IN (SELECT name FROM paas.service_categories());
COMMENT ON FUNCTION paas.is_service_category(text) IS 'whether c is a known service category';

CREATE FUNCTION paas.service_category_names() RETURNS text[]
	LANGUAGE sql IMMUTABLE PARALLEL SAFE
	RETURN ARRAY(SELECT name FROM paas.service_categories() ORDER BY ord);
COMMENT ON FUNCTION paas.service_category_names() IS 'the category names, in display order';

------------------------------------------------------------------------------
-- table
------------------------------------------------------------------------------

CREATE TABLE paas.services (
	id					uuid PRIMARY KEY DEFAULT gen_random_uuid(),
	name				text NOT NULL CHECK (name ~ '^[a-z0-9-]{2,50}$'),
	display_name		text NOT NULL CHECK (char_length(display_name) BETWEEN 2 AND 100),
	description			text NOT NULL CHECK (char_length(description) BETWEEN 10 AND 500),
	category			text NOT NULL DEFAULT 'other' CHECK (paas.is_service_category(category)),
	version				text NOT NULL DEFAULT 'latest' CHECK (char_length(version) BETWEEN 1 AND 50),
	docker_image		text NOT NULL CHECK (char_length(docker_image) BETWEEN 1 AND 255),
	container_port		integer NOT NULL DEFAULT 80 CHECK (container_port BETWEEN 1 AND 65535),
	cpu_request_m		integer NOT NULL DEFAULT 250 CHECK (cpu_request_m BETWEEN 1 AND 64000),
	cpu_limit_m			integer NOT NULL DEFAULT 1000 CHECK (cpu_limit_m BETWEEN 1 AND 64000),
	mem_request_mib		integer NOT NULL DEFAULT 512 CHECK (mem_request_mib BETWEEN 16 AND 262144),
	mem_limit_mib		integer NOT NULL DEFAULT 1024 CHECK (mem_limit_mib BETWEEN 16 AND 262144),
	storage_gib			integer NOT NULL DEFAULT 1 CHECK (storage_gib BETWEEN 0 AND 10240),
	monthly_price		bigint NOT NULL DEFAULT 0 CHECK (monthly_price BETWEEN 0 AND 1000000000),
	features			jsonb NOT NULL DEFAULT '[]' CHECK (jsonb_typeof(features) = 'array'),
	environment_vars	jsonb NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(environment_vars) = 'object'),
	is_active			boolean NOT NULL DEFAULT true,
	deleted_at			timestamptz,
	created_at			timestamptz NOT NULL DEFAULT now(),
	updated_at			timestamptz NOT NULL DEFAULT now(),
	CHECK (cpu_request_m <= cpu_limit_m),
	CHECK (mem_request_mib <= mem_limit_mib)
);
COMMENT ON TABLE paas.services IS
	'the service catalog; deletion is soft (deleted_at), slugs are unique among live services';
COMMENT ON COLUMN paas.services.monthly_price IS
	'current list price per month in whole IDR; changing it never alters what existing '
	'subscriptions paid, because a subscription copies the price at the time of sale';
COMMENT ON COLUMN paas.services.environment_vars IS
	'environment variables template (name -> value) handed to the deployment';

-- The text that search matches; the GIN index below is on this expression.
CREATE FUNCTION paas.service_search_text(name text, display_name text, description text)
	RETURNS text
	LANGUAGE sql IMMUTABLE PARALLEL SAFE
	RETURN name || ' ' || display_name || ' ' || description;
COMMENT ON FUNCTION paas.service_search_text(text, text, text) IS
	'the searchable text of a service (indexed with pg_trgm)';

CREATE UNIQUE INDEX services_name_key ON paas.services (name) WHERE deleted_at IS NULL;
-- The catalog is written rarely: no GIN pending list (fastupdate), so new
-- rows are searchable through the index at once and its cost stays low.
CREATE INDEX services_search_idx ON paas.services
	USING gin (paas.service_search_text(name, display_name, description) gin_trgm_ops)
	WITH (fastupdate = off);
CREATE INDEX services_public_idx ON paas.services (display_name, id)
	WHERE is_active AND deleted_at IS NULL;
CREATE INDEX services_created_idx ON paas.services (created_at DESC);

------------------------------------------------------------------------------
-- helpers
------------------------------------------------------------------------------

-- CPU quantity: "0.25", "1", "1.5" (cores, up to 3 decimals) or "250m".
CREATE FUNCTION paas.parse_cpu(t text) RETURNS integer
	LANGUAGE sql IMMUTABLE PARALLEL SAFE
	RETURN CASE WHEN t ~ '^[0-9]{1,6}m$' THEN left(t, -1)::integer
				WHEN t ~ '^[0-9]{1,3}(\.[0-9]{1,3})?$' THEN round(t::numeric * 1000)::integer END;
COMMENT ON FUNCTION paas.parse_cpu(text) IS 'millicores of a CPU quantity, NULL when malformed';

-- Memory quantity: "512Mi" or "2Gi".
CREATE FUNCTION paas.parse_mem(t text) RETURNS integer
	LANGUAGE sql IMMUTABLE PARALLEL SAFE
	RETURN CASE WHEN t ~ '^[0-9]{1,7}Mi$' THEN left(t, -2)::integer
				WHEN t ~ '^[0-9]{1,4}Gi$' THEN left(t, -2)::integer * 1024 END;
COMMENT ON FUNCTION paas.parse_mem(text) IS 'MiB of a memory quantity, NULL when malformed';

-- One of the original's quantity fields of a service (cpuRequest, cpuLimit:
-- CPU in millicores, 1 to 64 cores; memRequest, memLimit: MiB, 16Mi to
-- 256Gi).  value is NULL when the field is absent or invalid; err is '[]' or
-- the field's error.
CREATE FUNCTION paas.service_quantity(req jsonb, field text, OUT value integer, OUT err jsonb)
	LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE
AS $$
DECLARE
	is_cpu boolean := field LIKE 'cpu%';
	v jsonb := req -> field;
BEGIN
	err := '[]';
	IF v IS NULL OR v = 'null'::jsonb THEN
		RETURN;
	END IF;
	IF jsonb_typeof(v) = 'string' THEN
		value := CASE WHEN is_cpu THEN paas.parse_cpu(v #>> '{}') ELSE paas.parse_mem(v #>> '{}') END;
	END IF;
	IF value IS NULL OR (is_cpu AND value NOT BETWEEN 1 AND 64000)
	   OR (NOT is_cpu AND value NOT BETWEEN 16 AND 262144) THEN
		value := NULL;
		err := paas.add_err('[]', field, field || CASE WHEN is_cpu
			THEN ' must be a CPU quantity such as "0.25", "2" or "500m", at most 64 cores'
			ELSE ' must be a memory quantity such as "512Mi" or "2Gi", between 16Mi and 256Gi' END);
	END IF;
END
$$;
COMMENT ON FUNCTION paas.service_quantity(jsonb, text) IS
	'a service''s CPU or memory quantity field: value, or the field error';

CREATE FUNCTION paas.cpu_text(m integer) RETURNS text
	LANGUAGE sql IMMUTABLE PARALLEL SAFE
	RETURN CASE WHEN m % 1000 = 0 THEN (m / 1000)::text ELSE trim_scale(m / 1000.0)::text END;
COMMENT ON FUNCTION paas.cpu_text(integer) IS 'millicores as cores text ("0.25")';

CREATE FUNCTION paas.mem_text(mib integer) RETURNS text
	LANGUAGE sql IMMUTABLE PARALLEL SAFE
	RETURN CASE WHEN mib % 1024 = 0 THEN (mib / 1024)::text || 'Gi' ELSE mib::text || 'Mi' END;
COMMENT ON FUNCTION paas.mem_text(integer) IS 'MiB as a Kubernetes quantity ("512Mi", "1Gi")';

-- Every field, as the admin routes print a service.
CREATE FUNCTION paas.service_json(s paas.services) RETURNS jsonb
	LANGUAGE sql STABLE PARALLEL SAFE
	RETURN jsonb_build_object(
		'id', s.id, 'name', s.name, 'displayName', s.display_name,
		'description', s.description, 'category', s.category, 'version', s.version,
		'dockerImage', s.docker_image, 'containerPort', s.container_port,
		'defaultPort', s.container_port,
		'cpuRequest', paas.cpu_text(s.cpu_request_m), 'cpuLimit', paas.cpu_text(s.cpu_limit_m),
		'memRequest', paas.mem_text(s.mem_request_mib), 'memLimit', paas.mem_text(s.mem_limit_mib),
		'resources', jsonb_build_object('cpuMillicores', s.cpu_limit_m,
										'memoryMiB', s.mem_limit_mib,
										'storageGiB', s.storage_gib),
		'monthlyPrice', s.monthly_price, 'features', s.features,
		'environmentVars', s.environment_vars, 'isActive', s.is_active,
		'createdAt', paas.iso(s.created_at), 'updatedAt', paas.iso(s.updated_at));
COMMENT ON FUNCTION paas.service_json(paas.services) IS 'a service as the admin routes print it';

-- What anyone may see: no image, port, environment or request sizes.
CREATE FUNCTION paas.service_public_json(s paas.services) RETURNS jsonb
	LANGUAGE sql STABLE PARALLEL SAFE
	RETURN jsonb_build_object(
		'id', s.id, 'name', s.name, 'displayName', s.display_name,
		'description', s.description, 'category', s.category, 'version', s.version,
		'resources', jsonb_build_object('cpuMillicores', s.cpu_limit_m,
										'memoryMiB', s.mem_limit_mib,
										'storageGiB', s.storage_gib),
		'monthlyPrice', s.monthly_price, 'features', s.features, 'isActive', s.is_active);
COMMENT ON FUNCTION paas.service_public_json(paas.services) IS 'a service as the public routes print it';

-- The original's relation counts of a service: {"subscriptions": n}, every
-- subscription of any status (printed as "_count").  PL/pgSQL: the table
-- belongs to a later part (60_subscriptions.sql).
CREATE FUNCTION paas.service_counts(sid uuid) RETURNS jsonb
	LANGUAGE plpgsql STABLE PARALLEL SAFE
	SET search_path = pg_catalog, paas, pg_temp
AS $$
BEGIN
	RETURN jsonb_build_object('subscriptions', (SELECT count(*) FROM paas.subscriptions s WHERE s.service_id = sid));
END
$$;
COMMENT ON FUNCTION paas.service_counts(uuid) IS
	'{"subscriptions": n} of a service (the original''s _count), every status';

-- Validates a create (cur = defaults) or update (cur = the stored row)
-- request and returns cur with the requested changes applied.  Raises PT400
-- listing every failing field; cross-field rules (request <= limit) are
-- checked against the merged result.
CREATE FUNCTION paas.service_input(req jsonb, cur paas.services, creating boolean)
	RETURNS paas.services
	LANGUAGE plpgsql STABLE
	SET search_path = pg_catalog, paas, pg_temp
AS $$
DECLARE
	errs jsonb := '[]';
	n integer;
	s paas.services := cur;
	res jsonb := req -> 'resources';
	v jsonb;
	cpu_req integer;
	cpu_lim integer;
	mem_req integer;
	mem_lim integer;
	cpu_lim2 integer;
	mem_lim2 integer;
	f text;
BEGIN
	-- surrounding blanks do not count towards lengths
	FOREACH f IN ARRAY ARRAY['displayName', 'description', 'version', 'dockerImage'] LOOP
		IF jsonb_typeof(req -> f) = 'string' THEN
			req := jsonb_set(req, ARRAY[f], to_jsonb(btrim(req ->> f, E' \t\r\n')));
		END IF;
	END LOOP;

	-- name: set once
	IF creating THEN
		n := jsonb_array_length(errs);
		errs := paas.check_text(errs, req, 'name', true, 2, 50);
		IF jsonb_array_length(errs) = n THEN
			IF req ->> 'name' !~ '^[a-z0-9-]+$' THEN
				errs := paas.add_err(errs, 'name',
					'name must contain only lowercase letters, digits and hyphens');
			ELSIF req ->> 'name' IN ('admin', 'categories') THEN
				errs := paas.add_err(errs, 'name', 'name is reserved');
			END IF;
		END IF;
	ELSIF req -> 'name' IS NOT NULL AND req -> 'name' <> 'null'::jsonb
		  AND req ->> 'name' IS DISTINCT FROM cur.name THEN
		errs := paas.add_err(errs, 'name', 'name cannot be changed');
	END IF;

	errs := paas.check_text(errs, req, 'displayName', creating, 2, 100);
	errs := paas.check_text(errs, req, 'description', creating, 10, 500);
	errs := paas.check_enum(errs, req, 'category', false, paas.service_category_names());
	errs := paas.check_text(errs, req, 'version', false, 1, 50);

	n := jsonb_array_length(errs);
	errs := paas.check_text(errs, req, 'dockerImage', creating, 1, 255);
	IF jsonb_array_length(errs) = n AND req ->> 'dockerImage' IS NOT NULL
	   AND req ->> 'dockerImage' !~ ('^[a-z0-9]+([._-][a-z0-9]+)*(:[0-9]{1,5})?'
									'(/[a-z0-9]+([._-]+[a-z0-9]+)*)*'
									'(:[A-Za-z0-9_][A-Za-z0-9_.-]{0,127})?(@sha256:[a-f0-9]{64})?$') THEN
		errs := paas.add_err(errs, 'dockerImage',
			'dockerImage must be an image reference such as "nginx:1.27" or "ghcr.io/org/app:tag"');
	END IF;

	errs := paas.check_int(errs, req, 'containerPort', false, 1, 65535);
	errs := paas.check_int(errs, req, 'defaultPort', false, 1, 65535);
	IF req ->> 'containerPort' IS NOT NULL AND req ->> 'defaultPort' IS NOT NULL
	   AND btrim(req ->> 'containerPort') IS DISTINCT FROM btrim(req ->> 'defaultPort') THEN
		errs := paas.add_err(errs, 'defaultPort', 'defaultPort and containerPort must agree');
	END IF;
	errs := paas.check_int(errs, req, 'monthlyPrice', false, 0, 1000000000);
	errs := paas.check_bool(errs, req, 'isActive', false);

	-- features: up to 50 strings of 1-200 characters
	v := req -> 'features';
	IF v IS NOT NULL AND v <> 'null'::jsonb THEN
		IF jsonb_typeof(v) <> 'array' THEN
			errs := paas.add_err(errs, 'features', 'features must be an array of strings');
		ELSIF jsonb_array_length(v) > 50 THEN
			errs := paas.add_err(errs, 'features', 'features must hold at most 50 entries');
		ELSIF EXISTS (SELECT 1 FROM jsonb_array_elements(v) e
					   WHERE jsonb_typeof(e) <> 'string'
						  OR char_length(e #>> '{}') NOT BETWEEN 1 AND 200) THEN
			errs := paas.add_err(errs, 'features', 'features must be strings of 1 to 200 characters');
		END IF;
	END IF;

	-- environmentVars: up to 100 NAME -> string value
	v := req -> 'environmentVars';
	IF v IS NOT NULL AND v <> 'null'::jsonb THEN
		IF jsonb_typeof(v) <> 'object' THEN
			errs := paas.add_err(errs, 'environmentVars', 'environmentVars must be an object of strings');
		ELSIF (SELECT count(*) FROM jsonb_object_keys(v)) > 100 THEN
			errs := paas.add_err(errs, 'environmentVars', 'environmentVars must hold at most 100 variables');
		ELSIF EXISTS (SELECT 1 FROM jsonb_object_keys(v) k
					   WHERE k !~ '^[A-Za-z_][A-Za-z0-9_]{0,127}$') THEN
			errs := paas.add_err(errs, 'environmentVars',
				'environmentVars names must be letters, digits and underscores, not starting with a digit');
		ELSIF EXISTS (SELECT 1 FROM jsonb_each(v) e
					   WHERE jsonb_typeof(e.value) <> 'string'
						  OR char_length(e.value #>> '{}') > 4096) THEN
			errs := paas.add_err(errs, 'environmentVars',
				'environmentVars values must be strings of at most 4096 characters');
		END IF;
	END IF;

	-- resources object
	IF res IS NOT NULL AND res <> 'null'::jsonb THEN
		IF jsonb_typeof(res) <> 'object' THEN
			errs := paas.add_err(errs, 'resources',
				'resources must be an object {cpuMillicores, memoryMiB, storageGiB}');
			res := NULL;
		ELSE
			n := jsonb_array_length(errs);
			errs := paas.check_int(errs, jsonb_build_object('resources.cpuMillicores', res -> 'cpuMillicores'),
								   'resources.cpuMillicores', false, 1, 64000);
			IF jsonb_array_length(errs) = n THEN
				cpu_lim2 := (res ->> 'cpuMillicores')::integer;
			END IF;
			n := jsonb_array_length(errs);
			errs := paas.check_int(errs, jsonb_build_object('resources.memoryMiB', res -> 'memoryMiB'),
								   'resources.memoryMiB', false, 16, 262144);
			IF jsonb_array_length(errs) = n THEN
				mem_lim2 := (res ->> 'memoryMiB')::integer;
			END IF;
			errs := paas.check_int(errs, jsonb_build_object('resources.storageGiB', res -> 'storageGiB'),
								   'resources.storageGiB', false, 0, 10240);
		END IF;
	ELSE
		res := NULL;
	END IF;

	-- the original's quantity strings (a JSON number is not a quantity)
	SELECT q.value, errs || q.err INTO cpu_req, errs FROM paas.service_quantity(req, 'cpuRequest') q;
	SELECT q.value, errs || q.err INTO cpu_lim, errs FROM paas.service_quantity(req, 'cpuLimit') q;
	SELECT q.value, errs || q.err INTO mem_req, errs FROM paas.service_quantity(req, 'memRequest') q;
	SELECT q.value, errs || q.err INTO mem_lim, errs FROM paas.service_quantity(req, 'memLimit') q;

	-- both forms of a limit must agree
	IF cpu_lim IS NOT NULL AND cpu_lim2 IS NOT NULL AND cpu_lim <> cpu_lim2 THEN
		errs := paas.add_err(errs, 'cpuLimit', 'cpuLimit and resources.cpuMillicores must agree');
	END IF;
	IF mem_lim IS NOT NULL AND mem_lim2 IS NOT NULL AND mem_lim <> mem_lim2 THEN
		errs := paas.add_err(errs, 'memLimit', 'memLimit and resources.memoryMiB must agree');
	END IF;

	-- PUT needs something to change
	IF NOT creating AND NOT (req ?| ARRAY['name', 'displayName', 'description', 'category', 'version',
			'dockerImage', 'containerPort', 'defaultPort', 'monthlyPrice', 'isActive', 'features',
			'environmentVars', 'resources', 'cpuRequest', 'cpuLimit', 'memRequest', 'memLimit']) THEN
		errs := paas.add_err(errs, '', 'at least one field to update is required');
	END IF;
	PERFORM paas.raise_if_invalid(errs);

	cpu_lim := coalesce(cpu_lim, cpu_lim2);
	mem_lim := coalesce(mem_lim, mem_lim2);

	s.display_name := coalesce(req ->> 'displayName', s.display_name);
	s.description := coalesce(req ->> 'description', s.description);
	s.category := coalesce(req ->> 'category', s.category);
	s.version := coalesce(req ->> 'version', s.version);
	s.docker_image := coalesce(req ->> 'dockerImage', s.docker_image);
	s.container_port := coalesce((req ->> 'containerPort')::integer, (req ->> 'defaultPort')::integer,
								 s.container_port);
	s.monthly_price := coalesce((req ->> 'monthlyPrice')::bigint, s.monthly_price);
	s.is_active := coalesce((req ->> 'isActive')::boolean, s.is_active);
	IF jsonb_typeof(req -> 'features') = 'array' THEN
		s.features := req -> 'features';
	END IF;
	IF jsonb_typeof(req -> 'environmentVars') = 'object' THEN
		s.environment_vars := req -> 'environmentVars';
	END IF;
	s.storage_gib := coalesce((res ->> 'storageGiB')::integer, s.storage_gib);
	s.cpu_limit_m := coalesce(cpu_lim, s.cpu_limit_m);
	s.mem_limit_mib := coalesce(mem_lim, s.mem_limit_mib);
	-- a create without a request asks for the default request, or the limit
	-- when that is smaller
	s.cpu_request_m := coalesce(cpu_req, CASE WHEN creating THEN least(s.cpu_request_m, s.cpu_limit_m)
											 ELSE s.cpu_request_m END);
	s.mem_request_mib := coalesce(mem_req, CASE WHEN creating THEN least(s.mem_request_mib, s.mem_limit_mib)
											   ELSE s.mem_request_mib END);
	IF s.cpu_request_m > s.cpu_limit_m THEN
		errs := paas.add_err(errs, 'cpuRequest',
			format('cpuRequest must not exceed the CPU limit (%s)', paas.cpu_text(s.cpu_limit_m)));
	END IF;
	IF s.mem_request_mib > s.mem_limit_mib THEN
		errs := paas.add_err(errs, 'memRequest',
			format('memRequest must not exceed the memory limit (%s)', paas.mem_text(s.mem_limit_mib)));
	END IF;
	PERFORM paas.raise_if_invalid(errs);
	RETURN s;
END
$$;
COMMENT ON FUNCTION paas.service_input(jsonb, paas.services, boolean) IS
	'validates a create/update request (PT400 with every failing field) and applies it to cur';

-- A live service by path id (any text); PS404 (SERVICE_NOT_FOUND) when there is none.
CREATE FUNCTION paas.find_service(id_text text) RETURNS paas.services
	LANGUAGE plpgsql VOLATILE
	SET search_path = pg_catalog, paas, pg_temp
AS $$
DECLARE
	s paas.services;
BEGIN
	SELECT * INTO s FROM paas.services
	 WHERE id = paas.to_uuid(id_text) AND deleted_at IS NULL
	 FOR UPDATE;
	IF NOT FOUND THEN
		RAISE EXCEPTION 'Service not found' USING ERRCODE = 'PS404';
	END IF;
	RETURN s;
END
$$;
COMMENT ON FUNCTION paas.find_service(text) IS
	'locks (FOR UPDATE) and returns a live service by id; PS404 otherwise';

-- Tables whose foreign keys reference the service with at least one row.
-- Every foreign key to paas.services is found in pg_constraint and probed
-- with an EXISTS over its own columns (indexed by the referencing area).
CREATE FUNCTION paas.service_references(service_id uuid) RETURNS text[]
	LANGUAGE plpgsql STABLE STRICT
	SET search_path = pg_catalog, paas, pg_temp
AS $$
DECLARE
	fk record;
	used boolean;
	found text[] := '{}';
BEGIN
	FOR fk IN
		SELECT con.conrelid::regclass::text AS tbl,
			   string_agg(format('r.%I = s.%I', ra.attname, sa.attname), ' AND ' ORDER BY k.i) AS cond
		  FROM pg_constraint con
		 CROSS JOIN LATERAL unnest(con.conkey, con.confkey) WITH ORDINALITY AS k (rk, sk, i)
		  JOIN pg_attribute ra ON ra.attrelid = con.conrelid AND ra.attnum = k.rk
		  JOIN pg_attribute sa ON sa.attrelid = con.confrelid AND sa.attnum = k.sk
		 WHERE con.contype = 'f' AND con.confrelid = 'paas.services'::regclass
		 GROUP BY con.oid, con.conrelid
		 ORDER BY 1
	LOOP
		EXECUTE format('SELECT EXISTS (SELECT 1 FROM %s r JOIN paas.services s ON %s WHERE s.id = $1)',
					   fk.tbl, fk.cond)
		   INTO used USING service_id;
		IF used AND NOT fk.tbl = ANY (found) THEN
			found := found || fk.tbl;
		END IF;
	END LOOP;
	RETURN found;
END
$$;
COMMENT ON FUNCTION paas.service_references(uuid) IS
	'tables holding rows that reference the service through a foreign key (empty: none)';

-- A row of GET /services/admin: every field and the original's _count.
CREATE FUNCTION paas.service_admin_row(s paas.services) RETURNS jsonb
	LANGUAGE plpgsql STABLE PARALLEL SAFE
	SET search_path = pg_catalog, paas, pg_temp
AS $$
BEGIN
	RETURN paas.service_json(s) || jsonb_build_object('_count', paas.service_counts(s.id));
END
$$;
COMMENT ON FUNCTION paas.service_admin_row(paas.services) IS
	'a service as GET /services/admin lists it: every field and _count';

-- The filtered service list behind GET /services and GET /services/admin.
-- Only fixed SQL fragments are concatenated; every value is a parameter.
-- Returns {"rows": [...], "total": n}.
CREATE FUNCTION paas.services_page(req jsonb, public_view boolean, default_limit integer)
	RETURNS jsonb
	LANGUAGE plpgsql STABLE
	SET search_path = pg_catalog, paas, pg_temp
AS $$
DECLARE
	lim int := coalesce((req ->> 'limit')::int, default_limit);
	off int := (coalesce((req ->> 'page')::int, 1) - 1) * lim;
	pattern text;
	active boolean;
	cond text := 's.deleted_at IS NULL';
	sort_col text;
	sort_dir text;
	total bigint;
	rows jsonb;
BEGIN
	IF req ->> 'search' IS NOT NULL THEN
		pattern := '%' || replace(replace(replace(req ->> 'search', '\', '\\'), '%', '\%'), '_', '\_') || '%';
		cond := cond || ' AND paas.service_search_text(s.name, s.display_name, s.description) ILIKE $1';
	END IF;
	IF req ->> 'category' IS NOT NULL THEN
		cond := cond || ' AND s.category = $2';
	END IF;
	IF public_view THEN
		-- a literal, so that the planner can use services_public_idx
		cond := cond || ' AND s.is_active';
	ELSIF req ->> 'status' IS NOT NULL THEN
		active := req ->> 'status' = 'active';
		IF req ->> 'isActive' IS NOT NULL AND (req ->> 'isActive')::boolean <> active THEN
			RETURN jsonb_build_object('rows', '[]'::jsonb, 'total', 0);
		END IF;
	ELSE
		active := (req ->> 'isActive')::boolean;
	END IF;
	IF active IS NOT NULL THEN
		cond := cond || ' AND s.is_active = $3';
	END IF;

	IF public_view THEN
		sort_col := 's.display_name';
		sort_dir := 'ASC';
	ELSE
		sort_col := CASE req ->> 'sortBy' WHEN 'updatedAt' THEN 's.updated_at' WHEN 'name' THEN 's.name'
					WHEN 'displayName' THEN 's.display_name' WHEN 'category' THEN 's.category'
					WHEN 'monthlyPrice' THEN 's.monthly_price' ELSE 's.created_at' END;
		sort_dir := CASE WHEN req ->> 'sortOrder' = 'asc' THEN 'ASC' ELSE 'DESC' END;
	END IF;

	EXECUTE 'SELECT count(*) FROM paas.services s WHERE ' || cond
	   INTO total USING pattern, req ->> 'category', active;
	EXECUTE format($q$
		SELECT coalesce(jsonb_agg(%3$s(p.s) ORDER BY p.rn), '[]')
		  FROM (SELECT s, row_number() OVER (ORDER BY %1$s %2$s, s.id) AS rn
				  FROM paas.services s
				 WHERE %4$s
				 ORDER BY %1$s %2$s, s.id
				 LIMIT $4 OFFSET $5) p
		$q$, sort_col, sort_dir,
		CASE WHEN public_view THEN 'paas.service_public_json'
			 ELSE 'paas.service_admin_row' END, cond)
	   INTO rows USING pattern, req ->> 'category', active, lim, off;
	RETURN jsonb_build_object('rows', rows, 'total', total);
END
$$;
COMMENT ON FUNCTION paas.services_page(jsonb, boolean, integer) IS
	'one page of services filtered by search, category and state; {rows, total}';

------------------------------------------------------------------------------
-- api: public catalog
------------------------------------------------------------------------------

CREATE FUNCTION api.services_list(req jsonb DEFAULT '{}', ctx jsonb DEFAULT '{}') RETURNS jsonb
	LANGUAGE plpgsql STABLE
	SECURITY DEFINER SET search_path = pg_catalog, paas, pg_temp
AS $$
DECLARE
	errs jsonb := '[]';
	r jsonb;
	cat text := req ->> 'category';
	lim int;
	total bigint;
	rows jsonb;
BEGIN
	req := paas.require_object(req);
	errs := paas.check_paging(errs, req);
	errs := paas.check_text(errs, req, 'search', false, 1, 100);
	errs := paas.check_enum(errs, req, 'category', false, paas.service_category_names());
	PERFORM paas.raise_if_invalid(errs);
	-- Clients of the original got the whole catalog: the default page is
	-- the largest one.
	IF req ->> 'search' IS NOT NULL THEN
		r := paas.services_page(req, true, 100);
		RETURN jsonb_build_object('data', r -> 'rows',
								  'pagination', paas.pagination(req, (r ->> 'total')::bigint, 100));
	END IF;
	-- The hot path (the catalog page): static SQL with a cached plan, a
	-- third of the cost of the dynamic query of paas.services_page.
	lim := coalesce((req ->> 'limit')::int, 100);
	SELECT count(*) INTO total FROM paas.services s
	 WHERE s.is_active AND s.deleted_at IS NULL AND (cat IS NULL OR s.category = cat);
	SELECT coalesce(jsonb_agg(paas.service_public_json(p.s) ORDER BY (p.s).display_name, (p.s).id), '[]')
	  INTO rows
	  FROM (SELECT s FROM paas.services s
			 WHERE s.is_active AND s.deleted_at IS NULL AND (cat IS NULL OR s.category = cat)
			 ORDER BY s.display_name, s.id
			 LIMIT lim OFFSET (coalesce((req ->> 'page')::int, 1) - 1) * lim) p;
	RETURN jsonb_build_object('data', rows, 'pagination', paas.pagination(req, total, 100));
END
$$;
COMMENT ON FUNCTION api.services_list(jsonb, jsonb) IS
	'GET /services: active services by display name; category, search, page, limit (default 100)';

CREATE FUNCTION api.services_get_by_name(req jsonb, ctx jsonb DEFAULT '{}') RETURNS jsonb
	LANGUAGE plpgsql STABLE
	SECURITY DEFINER SET search_path = pg_catalog, paas, pg_temp
AS $$
DECLARE
	s paas.services;
BEGIN
	SELECT * INTO s FROM paas.services
	 WHERE name = lower(req ->> 'name') AND is_active AND deleted_at IS NULL;
	IF NOT FOUND THEN
		RAISE EXCEPTION 'Service not found' USING ERRCODE = 'PS404';
	END IF;
	RETURN paas.service_public_json(s);
END
$$;
COMMENT ON FUNCTION api.services_get_by_name(jsonb, jsonb) IS
	'GET /services/:name: an active service by slug (inactive or unknown: PS404)';

CREATE FUNCTION api.services_categories(req jsonb DEFAULT '{}', ctx jsonb DEFAULT '{}') RETURNS jsonb
	LANGUAGE sql STABLE
	SECURITY DEFINER SET search_path = pg_catalog, paas, pg_temp
	RETURN (SELECT jsonb_agg(jsonb_build_object('name', c.name, 'displayName', c.display_name,
												'count', coalesce(n.cnt, 0)) ORDER BY c.ord)
			  FROM paas.service_categories() c
			  LEFT JOIN (SELECT category, count(*) AS cnt FROM paas.services
						  WHERE is_active AND deleted_at IS NULL GROUP BY category) n
				ON n.category = c.name);
COMMENT ON FUNCTION api.services_categories(jsonb, jsonb) IS
	'GET /services/categories: every category with its number of active services';

------------------------------------------------------------------------------
-- api: admin catalog
------------------------------------------------------------------------------

CREATE FUNCTION api.services_admin_list(req jsonb DEFAULT '{}', ctx jsonb DEFAULT '{}') RETURNS jsonb
	LANGUAGE plpgsql STABLE
	SECURITY DEFINER SET search_path = pg_catalog, paas, pg_temp
AS $$
DECLARE
	errs jsonb := '[]';
	r jsonb;
	pg jsonb;
BEGIN
	PERFORM paas.require_admin(ctx);
	req := paas.require_object(req);
	errs := paas.check_paging(errs, req);
	errs := paas.check_text(errs, req, 'search', false, 1, 100);
	errs := paas.check_enum(errs, req, 'category', false, paas.service_category_names());
	errs := paas.check_enum(errs, req, 'status', false, ARRAY['active', 'inactive']);
	errs := paas.check_bool(errs, req, 'isActive', false);
	errs := paas.check_enum(errs, req, 'sortBy', false,
		ARRAY['createdAt', 'updatedAt', 'name', 'displayName', 'category', 'monthlyPrice']);
	errs := paas.check_enum(errs, req, 'sortOrder', false, ARRAY['asc', 'desc']);
	PERFORM paas.raise_if_invalid(errs);

	r := paas.services_page(req, false, 10);
	pg := paas.pagination(req, (r ->> 'total')::bigint);
	RETURN jsonb_build_object(
		'data', jsonb_build_object('services', r -> 'rows', 'pagination', jsonb_build_object(
			'currentPage', pg -> 'page', 'totalPages', pg -> 'totalPages',
			'totalCount', pg -> 'total', 'hasNext', pg -> 'hasNext', 'hasPrev', pg -> 'hasPrev')),
		'pagination', pg);
END
$$;
COMMENT ON FUNCTION api.services_admin_list(jsonb, jsonb) IS
	'GET /services/admin: page, limit, search, category, status|isActive, sortBy, sortOrder';

CREATE FUNCTION api.services_admin_stats(req jsonb DEFAULT '{}', ctx jsonb DEFAULT '{}') RETURNS jsonb
	LANGUAGE plpgsql STABLE
	SECURITY DEFINER SET search_path = pg_catalog, paas, pg_temp
AS $$
DECLARE
	r jsonb;
BEGIN
	PERFORM paas.require_admin(ctx);
	SELECT jsonb_build_object(
		'totalServices', count(*),
		'activeServices', count(*) FILTER (WHERE is_active),
		'inactiveServices', count(*) FILTER (WHERE NOT is_active),
		'byStatus', jsonb_build_object('active', count(*) FILTER (WHERE is_active),
									   'inactive', count(*) FILTER (WHERE NOT is_active)))
	  INTO r
	  FROM paas.services WHERE deleted_at IS NULL;
	-- the original's subscription figures: every subscription, the active
	-- ones (ACTIVE or GRACE: served and renewing), and the five services
	-- with the most subscriptions
	r := r || (SELECT jsonb_build_object('totalSubscriptions', count(*),
										 'activeSubscriptions', count(*) FILTER (WHERE status IN ('ACTIVE', 'GRACE')))
				 FROM paas.subscriptions)
		   || jsonb_build_object('popularServices', (
				SELECT coalesce(jsonb_agg(jsonb_build_object(
						'id', p.id, 'name', p.name, 'displayName', p.display_name,
						'_count', jsonb_build_object('subscriptions', p.n)) ORDER BY p.n DESC, p.name), '[]')
				  FROM (SELECT v.id, v.name, v.display_name,
							   (SELECT count(*) FROM paas.subscriptions x WHERE x.service_id = v.id) AS n
						  FROM paas.services v WHERE v.deleted_at IS NULL
						 ORDER BY n DESC, v.name LIMIT 5) p));
	RETURN r || jsonb_build_object('byCategory', (
		SELECT jsonb_agg(jsonb_build_object(
				'name', c.name, 'displayName', c.display_name, 'total', coalesce(n.total, 0),
				'active', coalesce(n.active, 0), 'inactive', coalesce(n.inactive, 0)) ORDER BY c.ord)
		  FROM paas.service_categories() c
		  LEFT JOIN (SELECT category, count(*) AS total,
							count(*) FILTER (WHERE is_active) AS active,
							count(*) FILTER (WHERE NOT is_active) AS inactive
					   FROM paas.services WHERE deleted_at IS NULL
					  GROUP BY category) n ON n.category = c.name));
END
$$;
COMMENT ON FUNCTION api.services_admin_stats(jsonb, jsonb) IS
	'GET /services/admin/stats: service counts by status and by category, subscription totals, the five most subscribed services';

CREATE FUNCTION api.services_admin_get(req jsonb, ctx jsonb DEFAULT '{}') RETURNS jsonb
	LANGUAGE plpgsql STABLE
	SECURITY DEFINER SET search_path = pg_catalog, paas, pg_temp
AS $$
DECLARE
	s paas.services;
BEGIN
	PERFORM paas.require_admin(ctx);
	SELECT * INTO s FROM paas.services
	 WHERE id = paas.to_uuid(req ->> 'id') AND deleted_at IS NULL;
	IF NOT FOUND THEN
		RAISE EXCEPTION 'Service not found' USING ERRCODE = 'PS404';
	END IF;
	RETURN paas.service_json(s) || jsonb_build_object(
		-- the original's relation: the newest 100 (_count has them all)
		'subscriptions', (SELECT coalesce(jsonb_agg(jsonb_build_object(
								'id', x.id, 'status', x.status, 'expiresAt', paas.iso(x.current_period_end),
								'user', jsonb_build_object('id', u.id, 'name', u.name, 'email', u.email))
								ORDER BY x.created_at DESC, x.id), '[]')
							FROM (SELECT * FROM paas.subscriptions WHERE service_id = s.id
								   ORDER BY created_at DESC, id LIMIT 100) x
							JOIN paas.users u ON u.id = x.user_id),
		'_count', paas.service_counts(s.id));
END
$$;
COMMENT ON FUNCTION api.services_admin_get(jsonb, jsonb) IS
	'GET /services/admin/:id: every field of a service, active or not, its newest 100 subscriptions and _count';

CREATE FUNCTION api.services_create(req jsonb, ctx jsonb DEFAULT '{}') RETURNS jsonb
	LANGUAGE plpgsql VOLATILE
	SECURITY DEFINER SET search_path = pg_catalog, paas, pg_temp
AS $$
DECLARE
	s paas.services;
BEGIN
	PERFORM paas.require_admin(ctx);
	req := paas.require_object(req);
	-- the column defaults, then the request
	s.category := 'other';
	s.version := 'latest';
	s.container_port := 80;
	s.cpu_request_m := 250;
	s.cpu_limit_m := 1000;
	s.mem_request_mib := 512;
	s.mem_limit_mib := 1024;
	s.storage_gib := 1;
	s.monthly_price := 0;
	s.features := '[]';
	s.environment_vars := '{}';
	s.is_active := true;
	s := paas.service_input(req, s, true);
	s.name := req ->> 'name';
	IF EXISTS (SELECT 1 FROM paas.services WHERE name = s.name AND deleted_at IS NULL) THEN
		RAISE EXCEPTION 'Service with this name already exists' USING ERRCODE = 'PS409';
	END IF;
	BEGIN
		INSERT INTO paas.services (name, display_name, description, category, version,
			docker_image, container_port, cpu_request_m, cpu_limit_m, mem_request_mib,
			mem_limit_mib, storage_gib, monthly_price, features, environment_vars, is_active)
		VALUES (s.name, s.display_name, s.description, s.category, s.version,
			s.docker_image, s.container_port, s.cpu_request_m, s.cpu_limit_m, s.mem_request_mib,
			s.mem_limit_mib, s.storage_gib, s.monthly_price, s.features, s.environment_vars, s.is_active)
		RETURNING * INTO s;
	EXCEPTION WHEN unique_violation THEN
		-- a concurrent create of the same slug won
		RAISE EXCEPTION 'Service with this name already exists' USING ERRCODE = 'PS409';
	END;
	RETURN paas.service_json(s);
END
$$;
COMMENT ON FUNCTION api.services_create(jsonb, jsonb) IS
	'POST /services: a catalog entry (slug unique among live services: PS409)';

CREATE FUNCTION api.services_update(req jsonb, ctx jsonb DEFAULT '{}') RETURNS jsonb
	LANGUAGE plpgsql VOLATILE
	SECURITY DEFINER SET search_path = pg_catalog, paas, pg_temp
AS $$
DECLARE
	s paas.services;
BEGIN
	PERFORM paas.require_admin(ctx);
	req := paas.require_object(req);
	s := paas.find_service(req ->> 'id');
	s := paas.service_input(req, s, false);
	UPDATE paas.services
	   SET display_name = s.display_name, description = s.description, category = s.category,
		   version = s.version, docker_image = s.docker_image, container_port = s.container_port,
		   cpu_request_m = s.cpu_request_m, cpu_limit_m = s.cpu_limit_m,
		   mem_request_mib = s.mem_request_mib, mem_limit_mib = s.mem_limit_mib,
		   storage_gib = s.storage_gib, monthly_price = s.monthly_price, features = s.features,
		   environment_vars = s.environment_vars, is_active = s.is_active, updated_at = now()
	 WHERE id = s.id
	RETURNING * INTO s;
	RETURN paas.service_json(s);
END
$$;
COMMENT ON FUNCTION api.services_update(jsonb, jsonb) IS
	'PUT /services/:id: any field but the slug; a price change does not touch existing subscriptions';

CREATE FUNCTION api.services_toggle_status(req jsonb, ctx jsonb DEFAULT '{}') RETURNS jsonb
	LANGUAGE plpgsql VOLATILE
	SECURITY DEFINER SET search_path = pg_catalog, paas, pg_temp
AS $$
DECLARE
	s paas.services;
BEGIN
	PERFORM paas.require_admin(ctx);
	s := paas.find_service(req ->> 'id');
	UPDATE paas.services SET is_active = NOT is_active, updated_at = now()
	 WHERE id = s.id
	RETURNING * INTO s;
	RETURN paas.service_json(s);
END
$$;
COMMENT ON FUNCTION api.services_toggle_status(jsonb, jsonb) IS
	'PATCH /services/:id/toggle-status: active <-> inactive';

CREATE FUNCTION api.services_delete(req jsonb, ctx jsonb DEFAULT '{}') RETURNS jsonb
	LANGUAGE plpgsql VOLATILE
	SECURITY DEFINER SET search_path = pg_catalog, paas, pg_temp
AS $$
DECLARE
	s paas.services;
	refs text[];
BEGIN
	PERFORM paas.require_admin(ctx);
	-- FOR UPDATE conflicts with the FOR KEY SHARE of a concurrent insert
	-- referencing the row, so no reference can appear after the check.
	s := paas.find_service(req ->> 'id');
	refs := paas.service_references(s.id);
	IF cardinality(refs) > 0 THEN
		RAISE EXCEPTION 'Cannot delete a service that is still in use'
			USING ERRCODE = 'PT409',
				  DETAIL = format('referenced by rows of: %s', array_to_string(refs, ', '));
	END IF;
	UPDATE paas.services SET deleted_at = now(), is_active = false, updated_at = now()
	 WHERE id = s.id
	RETURNING * INTO s;
	RETURN jsonb_build_object('id', s.id, 'name', s.name, 'displayName', s.display_name);
END
$$;
COMMENT ON FUNCTION api.services_delete(jsonb, jsonb) IS
	'DELETE /services/:id: soft delete; PT409 while any row references the service';

DO $grants$
DECLARE
	f text;
BEGIN
	FOREACH f IN ARRAY ARRAY[
		'api.services_list(jsonb, jsonb)', 'api.services_get_by_name(jsonb, jsonb)',
		'api.services_categories(jsonb, jsonb)', 'api.services_admin_list(jsonb, jsonb)',
		'api.services_admin_stats(jsonb, jsonb)', 'api.services_admin_get(jsonb, jsonb)',
		'api.services_create(jsonb, jsonb)', 'api.services_update(jsonb, jsonb)',
		'api.services_toggle_status(jsonb, jsonb)', 'api.services_delete(jsonb, jsonb)']
	LOOP
		EXECUTE format('REVOKE ALL ON FUNCTION %s FROM PUBLIC', f);
		EXECUTE format('GRANT EXECUTE ON FUNCTION %s TO paas_api, paas_owner', f);
	END LOOP;
END
$grants$;

-- The catalog belongs in dumps of the database.
SELECT pg_catalog.pg_extension_config_dump('paas.services', '');
