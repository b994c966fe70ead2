-- paas -- routes: the HTTP route table, and the OpenAPI document generated
-- from it.
--
-- One row of paas.routes per route of the gateway: method, path pattern
-- ("/api/v1/users/:id": ":name" captures one segment), the api function it
-- calls, the access rule, the success status and message, the gateway's
-- flags, and what the OpenAPI document needs: tag, summary, the JSON Schema
-- of the request body (request_schema), of the query parameters
-- (query_schema: name -> schema), of the path captures (path_schema, when
-- the default of paas.route_path_param() is not enough), of headers, of the
-- envelope's "data" (response_schema), and the error statuses the function
-- itself answers (errors; those of the access rule, the flags and the
-- gateway are added by api.openapi()).  Shared schemas live in
-- paas.route_schemas (components.schemas), tags in paas.route_tags.
--
-- Rules a reader must know.
--   * The rows are the extension's, like paas.job: this script and the
--     upgrade scripts write them, and CREATE EXTENSION writes them again on
--     restore, so they are not registered for pg_dump (90_dump.sql).  A
--     superuser may change a row in an emergency (the gateway reloads on
--     the change), but a restore or an update brings the extension's rows
--     back: a lasting change is an upgrade script.  paas_owner reads them.
--   * Any change of a route, a schema or a tag notifies channel
--     "paas_routes" (statement trigger): a gateway listening reloads its
--     table.  An ALTER EXTENSION UPDATE that touches routes notifies too.
--   * function is a regprocedure: a row can only name a function that
--     exists, api.<name>(jsonb, jsonb); NULL exactly for the routes httpd
--     answers itself (flag builtin).
--   * seq is the table order: the gateway keeps it (its matcher prefers
--     literal segments, then the first row), and the OpenAPI document names
--     a path template after the first route of its shape
--     ("/services/:name" before "/services/:id": {name}).
--   * flags are the names of the gateway's route flags (httpd/httpd.h
--     enum route_flags, without the ROUTE_ prefix); paas.route_flag_names()
--     lists the known ones and is the table's CHECK: a new flag is one more
--     element there (CREATE OR REPLACE in an upgrade script).
--   * operationId: the function's name in camelCase (api.users_list ->
--     usersList) unless the row names one; unique.

------------------------------------------------------------------------------
-- vocabulary
------------------------------------------------------------------------------

-- The gateway's route flags (httpd/httpd.h, enum route_flags):
--   paginated      the function returns {data, pagination}
--   tokens         the function returns a session: httpd mints the access token
--   builtin        answered by httpd itself (no function)
--   rate_login     per-address login limit, failed logins per account
--   rate_register  per-address registration limit
--   rate_refresh   per-address refresh limit
--   no_db          never touches the database
--   snap           may answer {"$snap"}: the Midtrans Snap round trip
--   pdf            data is rendered as a PDF
--   batch          concurrent calls share a round trip (api.<function>_batch)
--   money          moves money: an idempotency key, sent again with it
--   form           a form-encoded body is read like a query string (RFC 8058 one-click)
CREATE FUNCTION paas.route_flag_names() RETURNS text[]
	LANGUAGE sql IMMUTABLE PARALLEL SAFE
	RETURN ARRAY['paginated', 'tokens', 'builtin', 'rate_login', 'rate_register', 'rate_refresh',
				 'no_db', 'snap', 'pdf', 'batch', 'money', 'form', 'k8s'];
COMMENT ON FUNCTION paas.route_flag_names() IS
	'the route flags the gateway knows (httpd/httpd.h enum route_flags, lower case, no ROUTE_ prefix)';

-- Whether every flag is known and none is listed twice.
CREATE FUNCTION paas.route_flags_ok(flags text[]) RETURNS boolean
	LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
	RETURN flags <@ paas.route_flag_names()
		   AND (SELECT count(*) = count(DISTINCT f) FROM unnest(flags) f);
COMMENT ON FUNCTION paas.route_flags_ok(text[]) IS
	'whether route flags are known (paas.route_flag_names()) and distinct';

-- The access rules (httpd/httpd.h, enum access).
CREATE FUNCTION paas.route_access_names() RETURNS text[]
	LANGUAGE sql IMMUTABLE PARALLEL SAFE
	RETURN ARRAY['public', 'user', 'admin', 'node', 'local'];
COMMENT ON FUNCTION paas.route_access_names() IS
	'the access rules of routes: public, user (access token), admin, node (node token), local (the metrics listener, or an admin''s token)';

-- The error statuses a route may list (the SQLSTATE classes of httpd/errors.c).
CREATE FUNCTION paas.route_error_names() RETURNS integer[]
	LANGUAGE sql IMMUTABLE PARALLEL SAFE
	RETURN ARRAY[400, 401, 402, 403, 404, 409, 413, 429, 502, 503];
COMMENT ON FUNCTION paas.route_error_names() IS
	'the error statuses a route can declare (httpd/errors.c)';

-- Whether a path pattern is canonical: "/" then segments of lower-case
-- letters, digits, ".", "_" and "-" (at most 63 characters, the matcher's
-- bound) or captures ":name" (camelCase), no empty segment, no trailing
-- slash, at most 4 captures (MAX_PARAMS of httpd.h) with distinct names.
CREATE FUNCTION paas.route_path_ok(path text) RETURNS boolean
	LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
	RETURN path ~ '^(/([a-z0-9][a-z0-9._-]{0,62}|:[a-z][A-Za-z0-9]{0,62}))+$'
		   AND (SELECT count(*) <= 4 AND count(*) = count(DISTINCT m[1])
				  FROM regexp_matches(path, '/:([^/]+)', 'g') m);
COMMENT ON FUNCTION paas.route_path_ok(text) IS
	'whether a route path is canonical (lower-case literals, :camelCase captures, no trailing slash, at most 4 captures)';

-- The captures of a path, in order: "/users/:id/x/:k" -> {id, k}.
CREATE FUNCTION paas.route_captures(path text) RETURNS text[]
	LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
	RETURN ARRAY(SELECT m[1] FROM regexp_matches(path, '/:([^/]+)', 'g') m);
COMMENT ON FUNCTION paas.route_captures(text) IS 'the capture names of a route path, in order';

-- The shape of a path, captures unnamed: two routes of one method and one
-- shape would be the same route ("/services/:id" = "/services/:name").
CREATE FUNCTION paas.route_shape(path text) RETURNS text
	LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
	RETURN regexp_replace(path, '/:[^/]+', '/:', 'g');
COMMENT ON FUNCTION paas.route_shape(text) IS 'a route path with its captures unnamed';

-- "/api/v1/users/:id" -> "/api/v1/users/{id}"
CREATE FUNCTION paas.route_openapi_path(path text) RETURNS text
	LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
	RETURN regexp_replace(path, '/:([^/]+)', '/{\1}', 'g');
COMMENT ON FUNCTION paas.route_openapi_path(text) IS 'a route path as an OpenAPI path template';

-- The default operationId: the function's name in camelCase
-- (api.users_list -> usersList); for a built-in route, its last path
-- segment up to the first dot (/api/v1/openapi.json -> openapi).
CREATE FUNCTION paas.route_operation_id(fn regprocedure, path text) RETURNS text
	LANGUAGE sql STABLE PARALLEL SAFE
	RETURN CASE WHEN fn IS NULL
				THEN lower(regexp_replace(split_part(regexp_replace(path, '^.*/', ''), '.', 1), '[^A-Za-z0-9]', '', 'g'))
				ELSE (SELECT string_agg(CASE WHEN w.n = 1 THEN w.part ELSE initcap(w.part) END, '' ORDER BY w.n)
						FROM pg_proc p
					   CROSS JOIN LATERAL unnest(string_to_array(p.proname, '_')) WITH ORDINALITY AS w (part, n)
					   WHERE p.oid = fn) END;
COMMENT ON FUNCTION paas.route_operation_id(regprocedure, text) IS
	'the default operationId of a route: its function''s name in camelCase';

------------------------------------------------------------------------------
-- tables
------------------------------------------------------------------------------

CREATE TABLE paas.route_tags (
	name		text PRIMARY KEY CHECK (name ~ '^[a-z][a-z0-9-]{0,62}$'),
	seq			integer NOT NULL UNIQUE,
	description	text NOT NULL CHECK (char_length(description) BETWEEN 1 AND 500)
);
COMMENT ON TABLE paas.route_tags IS
	'the OpenAPI tags of routes, in document order';

-- components.schemas of the OpenAPI document; routes refer to them as
-- {"$ref": "#/components/schemas/<name>"}.
CREATE TABLE paas.route_schemas (
	name		text PRIMARY KEY CHECK (name ~ '^[A-Z][A-Za-z0-9]{0,62}$'),
	schema		jsonb NOT NULL CHECK (jsonb_typeof(schema) = 'object')
);
COMMENT ON TABLE paas.route_schemas IS
	'shared JSON Schemas of the OpenAPI document (components.schemas)';

-- other_replies: {"200": "message", ...}, success statuses other than the
-- route's own, each with its message.
CREATE FUNCTION paas.route_other_replies_ok(r jsonb) RETURNS boolean
	LANGUAGE sql IMMUTABLE
	RETURN jsonb_typeof(r) = 'object'
		AND NOT EXISTS (SELECT 1 FROM jsonb_each(r) e
						 WHERE e.key !~ '^2[0-9][0-9]$' OR jsonb_typeof(e.value) <> 'string'
							OR char_length(e.value #>> '{}') NOT BETWEEN 1 AND 200);
COMMENT ON FUNCTION paas.route_other_replies_ok(jsonb) IS
	'whether a route''s other_replies maps success statuses (200-299) to messages';

CREATE TABLE paas.routes (
	seq				integer GENERATED BY DEFAULT AS IDENTITY UNIQUE,
	method			text NOT NULL CHECK (method IN ('GET', 'POST', 'PUT', 'PATCH', 'DELETE')),
	path			text NOT NULL CHECK (paas.route_path_ok(path)),
	function		regprocedure,
	access			text NOT NULL CONSTRAINT routes_access_known CHECK (access = ANY (paas.route_access_names())),
	status			integer NOT NULL CHECK (status BETWEEN 200 AND 299),
	message			text NOT NULL CHECK (char_length(message) BETWEEN 1 AND 200),
	other_replies	jsonb NOT NULL DEFAULT '{}' CONSTRAINT routes_other_replies_ok
					CHECK (paas.route_other_replies_ok(other_replies)),
	flags			text[] NOT NULL DEFAULT '{}'
					CONSTRAINT routes_flags_known CHECK (paas.route_flags_ok(flags)),
	tag				text NOT NULL REFERENCES paas.route_tags (name),
	operation_id	text NOT NULL UNIQUE CHECK (operation_id ~ '^[a-z][A-Za-z0-9]{0,99}$'),
	summary			text NOT NULL CHECK (char_length(summary) BETWEEN 1 AND 120),
	description		text,			-- NULL: the function's comment
	request_schema	jsonb CHECK (jsonb_typeof(request_schema) = 'object'),
	query_schema	jsonb NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(query_schema) = 'object'),
	path_schema		jsonb NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(path_schema) = 'object'),
	header_schema	jsonb NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(header_schema) = 'object'),
	request_required boolean NOT NULL DEFAULT false,
	response_type	text NOT NULL DEFAULT 'envelope'
					CHECK (response_type IN ('envelope', 'json', 'pdf', 'text')),
	response_schema	jsonb NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(response_schema) = 'object'),
	errors			integer[] NOT NULL DEFAULT '{}'
					CONSTRAINT routes_errors_known CHECK (errors <@ paas.route_error_names()),
	security		jsonb CHECK (jsonb_typeof(security) = 'array'),	-- NULL: from access
	PRIMARY KEY (method, path),
	CONSTRAINT routes_builtin_has_no_function CHECK ((function IS NULL) = ('builtin' = ANY (flags))),
	CONSTRAINT routes_pdf_response CHECK ((response_type = 'pdf') = ('pdf' = ANY (flags))),
	CONSTRAINT routes_no_db_is_builtin CHECK (NOT 'no_db' = ANY (flags) OR 'builtin' = ANY (flags)),
	CONSTRAINT routes_required_body_has_schema CHECK (NOT request_required OR request_schema IS NOT NULL)
);
CREATE UNIQUE INDEX routes_shape_key ON paas.routes (method, paas.route_shape(path));
COMMENT ON TABLE paas.routes IS
	'the gateway''s HTTP routes (one api function each) and what the OpenAPI document says about them';
COMMENT ON COLUMN paas.routes.seq IS
	'table order: ties of the matcher go to the first row; a path template is named after the first route of its shape';
COMMENT ON COLUMN paas.routes.function IS
	'api.<name>(jsonb, jsonb) called with (request, context); NULL for the routes httpd answers itself';
COMMENT ON COLUMN paas.routes.other_replies IS
	'success statuses the function may answer instead of status (through response.status): "status" -> message';
COMMENT ON COLUMN paas.routes.flags IS 'gateway flags: see paas.route_flag_names()';
COMMENT ON COLUMN paas.routes.request_schema IS 'JSON Schema of the request body; NULL when the route reads none';
COMMENT ON COLUMN paas.routes.request_required IS 'whether the route needs a request body';
COMMENT ON COLUMN paas.routes.query_schema IS 'query parameters: name -> JSON Schema (its description documents the parameter)';
COMMENT ON COLUMN paas.routes.path_schema IS 'path captures: name -> JSON Schema, where paas.route_path_param() is not enough';
COMMENT ON COLUMN paas.routes.header_schema IS 'request headers the function reads: name -> JSON Schema';
COMMENT ON COLUMN paas.routes.response_type IS
	'envelope: JSON success envelope around data; json: a bare JSON document; pdf: application/pdf; text: text/plain';
COMMENT ON COLUMN paas.routes.response_schema IS
	'JSON Schema of the envelope''s data (envelope), or of the whole body (json)';
COMMENT ON COLUMN paas.routes.errors IS
	'error statuses the function answers; api.openapi() adds those of the access rule, the flags and the gateway';
COMMENT ON COLUMN paas.routes.security IS 'OpenAPI security requirements; NULL: derived from access';

-- operationId defaults to the function's name in camelCase.
CREATE FUNCTION paas.routes_fill() RETURNS trigger
	LANGUAGE plpgsql
	SET search_path = pg_catalog, paas, pg_temp
AS $$
BEGIN
	NEW.operation_id := coalesce(NEW.operation_id, paas.route_operation_id(NEW.function, NEW.path));
	RETURN NEW;
END
$$;
COMMENT ON FUNCTION paas.routes_fill() IS 'fills a route''s default operationId';
CREATE TRIGGER routes_fill BEFORE INSERT OR UPDATE ON paas.routes
	FOR EACH ROW EXECUTE FUNCTION paas.routes_fill();

-- A gateway listening on "paas_routes" reloads its table.
CREATE FUNCTION paas.routes_notify() RETURNS trigger
	LANGUAGE plpgsql
	SET search_path = pg_catalog, paas, pg_temp
AS $$
BEGIN
	PERFORM pg_notify('paas_routes', TG_TABLE_NAME || ' ' || lower(TG_OP));
	RETURN NULL;
END
$$;
COMMENT ON FUNCTION paas.routes_notify() IS
	'notifies channel paas_routes that the route table (or its schemas or tags) changed';
CREATE TRIGGER routes_notify AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON paas.routes
	FOR EACH STATEMENT EXECUTE FUNCTION paas.routes_notify();
CREATE TRIGGER route_schemas_notify AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON paas.route_schemas
	FOR EACH STATEMENT EXECUTE FUNCTION paas.routes_notify();
CREATE TRIGGER route_tags_notify AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON paas.route_tags
	FOR EACH STATEMENT EXECUTE FUNCTION paas.routes_notify();

REVOKE ALL ON paas.routes, paas.route_schemas, paas.route_tags FROM PUBLIC;
GRANT SELECT ON paas.routes, paas.route_schemas, paas.route_tags TO paas_owner;

-- The rows below are the extension's (see the header): not registered for
-- pg_dump, CREATE EXTENSION writes them again on restore.

------------------------------------------------------------------------------
-- tags
------------------------------------------------------------------------------

INSERT INTO paas.route_tags (name, seq, description) VALUES
	('system', 1, 'Health, status, this document, metrics and the background jobs'),
	('auth', 2, 'The caller''s own account: registration, login, token rotation, profile, password, logout'),
	('users', 3, 'Account management by administrators'),
	('services', 4, 'The service catalog: public listing and administration'),
	('workers', 5, 'Worker nodes: the administrators'' registry and the routes nodes call with their node token'),
	('billing', 6, 'The caller''s wallet: balance, Midtrans top-ups, the transaction feed, invoices, dashboards'),
	('admin-billing', 7, 'Administrators'' view of the ledger and manual adjustments'),
	('subscriptions', 8, 'The caller''s subscriptions, paid monthly from the wallet'),
	('admin-subscriptions', 9, 'Every subscription, for administrators');

------------------------------------------------------------------------------
-- components.schemas
------------------------------------------------------------------------------

INSERT INTO paas.route_schemas (name, schema)
SELECT key, value FROM jsonb_each($schemas$
{
  "FieldError": {
    "type": "object",
    "description": "One failing field of a request.",
    "required": ["field", "message"],
    "properties": {
      "field": {"type": "string", "description": "the field's name or path; empty when the error is about the whole request"},
      "message": {"type": "string"}
    }
  },
  "Error": {
    "type": "object",
    "description": "The error envelope: every error answer of the API has this shape.",
    "required": ["success", "message", "code", "details", "timestamp", "statusCode"],
    "properties": {
      "success": {"const": false},
      "message": {"type": "string"},
      "code": {
        "type": "string",
        "enum": ["VALIDATION_ERROR", "AUTH_ERROR", "INSUFFICIENT_BALANCE", "FORBIDDEN_ERROR", "NOT_FOUND_ERROR",
                 "ENDPOINT_NOT_FOUND", "CONFLICT_ERROR", "PAYLOAD_TOO_LARGE", "RATE_LIMITED", "GATEWAY_ERROR",
                 "SERVICE_UNAVAILABLE", "INTERNAL_ERROR", "INVALID_PASSWORD", "USER_NOT_FOUND", "USER_EXISTS",
                 "EMAIL_EXISTS", "SERVICE_NOT_FOUND", "SERVICE_EXISTS", "WORKER_NODE_NOT_FOUND",
                 "WORKER_NODE_EXISTS"],
        "description": "the generic code of the status, or the original API's specific one where it had one: INVALID_PASSWORD (400, POST /auth/change-password), USER_NOT_FOUND (404, /users/:id), USER_EXISTS (409, POST /users), EMAIL_EXISTS (409, PUT /users/:id), SERVICE_NOT_FOUND (404, /services/:name and /services/:id routes), SERVICE_EXISTS (409, POST /services), WORKER_NODE_NOT_FOUND (404, /workers/:nodeId routes), WORKER_NODE_EXISTS (409, a node name or hostname taken)"
      },
      "details": {
        "type": ["array", "null"],
        "description": "the failing fields (as errors), or null",
        "items": {"$ref": "#/components/schemas/FieldError"}
      },
      "errors": {
        "type": "array",
        "description": "every failing field, when the error is about fields",
        "items": {"$ref": "#/components/schemas/FieldError"}
      },
      "timestamp": {"type": "string", "format": "date-time"},
      "statusCode": {"type": "integer", "description": "always the HTTP status"}
    }
  },
  "Success": {
    "type": "object",
    "description": "The success envelope around the route's data.",
    "required": ["success", "message", "data", "timestamp", "statusCode"],
    "properties": {
      "success": {"const": true},
      "message": {"type": "string"},
      "data": {},
      "timestamp": {"type": "string", "format": "date-time"},
      "statusCode": {"type": "integer", "description": "always the HTTP status"}
    }
  },
  "PaginatedSuccess": {
    "description": "The success envelope of a list: data is one page, pagination tells where it is.",
    "allOf": [
      {"$ref": "#/components/schemas/Success"},
      {"type": "object", "required": ["pagination"], "properties": {"pagination": {"$ref": "#/components/schemas/Pagination"}}}
    ]
  },
  "Pagination": {
    "type": "object",
    "required": ["page", "limit", "total", "totalPages", "hasNext", "hasPrev"],
    "properties": {
      "page": {"type": "integer", "minimum": 1},
      "limit": {"type": "integer", "minimum": 1},
      "total": {"type": "integer", "minimum": 0},
      "totalPages": {"type": "integer", "minimum": 0},
      "hasNext": {"type": "boolean"},
      "hasPrev": {"type": "boolean"}
    }
  },
  "ListPagination": {
    "type": "object",
    "description": "The original system's pagination inside data (the envelope carries the standard one too).",
    "required": ["currentPage", "totalPages", "totalCount", "hasNext", "hasPrev"],
    "properties": {
      "currentPage": {"type": "integer", "minimum": 1},
      "totalPages": {"type": "integer", "minimum": 0},
      "totalCount": {"type": "integer", "minimum": 0},
      "hasNext": {"type": "boolean"},
      "hasPrev": {"type": "boolean"}
    }
  },
  "Amount": {
    "type": "integer",
    "description": "an amount of money in whole rupiah (IDR)"
  },
  "Role": {"type": "string", "enum": ["USER", "ADMINISTRATOR"]},
  "User": {
    "type": "object",
    "description": "An account, as the API prints it (never its password).",
    "required": ["id", "name", "email", "role", "isActive", "createdAt", "updatedAt"],
    "properties": {
      "id": {"type": "string", "format": "uuid"},
      "name": {"type": "string"},
      "email": {"type": "string", "format": "email"},
      "role": {"$ref": "#/components/schemas/Role"},
      "isActive": {"type": "boolean"},
      "createdAt": {"type": "string", "format": "date-time"},
      "updatedAt": {"type": "string", "format": "date-time"}
    }
  },
  "UserRef": {
    "type": "object",
    "required": ["id", "name", "email"],
    "properties": {
      "id": {"type": "string", "format": "uuid"},
      "name": {"type": "string"},
      "email": {"type": "string", "format": "email"}
    }
  },
  "Session": {
    "type": "object",
    "description": "A login: the account, a fresh access token (JWT) and the session's refresh token (single use: a refresh rotates it).",
    "required": ["user", "accessToken", "refreshToken", "expiresIn", "tokens"],
    "properties": {
      "user": {"$ref": "#/components/schemas/User"},
      "accessToken": {"type": "string", "description": "JWT (HS256) for Authorization: Bearer"},
      "refreshToken": {"type": "string"},
      "expiresIn": {"type": "integer", "description": "seconds until the access token expires"},
      "tokens": {
        "type": "object",
        "required": ["accessToken", "refreshToken", "expiresIn"],
        "properties": {
          "accessToken": {"type": "string"},
          "refreshToken": {"type": "string"},
          "expiresIn": {"type": "integer"}
        }
      }
    }
  },
  "Password": {
    "type": "string",
    "description": "8 to 128 characters with a lower-case letter, an upper-case letter and a digit",
    "minLength": 8,
    "maxLength": 128,
    "pattern": "^(?=.*[a-z])(?=.*[A-Z])(?=.*[0-9])"
  },
  "Email": {
    "type": "string",
    "format": "email",
    "minLength": 3,
    "maxLength": 254,
    "pattern": "^[^@\\s]+@[^@\\s]+\\.[^@\\s.]{2,}$"
  },
  "ServiceResources": {
    "type": "object",
    "description": "The service's limits: CPU in millicores, memory in MiB, storage in GiB.",
    "required": ["cpuMillicores", "memoryMiB", "storageGiB"],
    "properties": {
      "cpuMillicores": {"type": "integer", "minimum": 1, "maximum": 64000},
      "memoryMiB": {"type": "integer", "minimum": 16, "maximum": 262144},
      "storageGiB": {"type": "integer", "minimum": 0, "maximum": 10240}
    }
  },
  "ServicePublic": {
    "type": "object",
    "description": "A catalog service as anyone may see it.",
    "required": ["id", "name", "displayName", "description", "category", "version", "resources", "monthlyPrice",
                 "features", "isActive"],
    "properties": {
      "id": {"type": "string", "format": "uuid"},
      "name": {"type": "string", "description": "the slug", "pattern": "^[a-z0-9-]{2,50}$"},
      "displayName": {"type": "string"},
      "description": {"type": "string"},
      "category": {"$ref": "#/components/schemas/ServiceCategory"},
      "version": {"type": "string"},
      "resources": {"$ref": "#/components/schemas/ServiceResources"},
      "monthlyPrice": {"$ref": "#/components/schemas/Amount"},
      "features": {"type": "array", "items": {"type": "string"}},
      "isActive": {"type": "boolean"}
    }
  },
  "Service": {
    "description": "A catalog service with every field (administrators).",
    "allOf": [
      {"$ref": "#/components/schemas/ServicePublic"},
      {
        "type": "object",
        "required": ["dockerImage", "containerPort", "defaultPort", "cpuRequest", "cpuLimit", "memRequest", "memLimit",
                     "environmentVars", "createdAt", "updatedAt"],
        "properties": {
          "dockerImage": {"type": "string"},
          "containerPort": {"type": "integer", "minimum": 1, "maximum": 65535},
          "defaultPort": {"type": "integer", "minimum": 1, "maximum": 65535, "description": "the same as containerPort"},
          "cpuRequest": {"type": "string", "description": "cores, e.g. \"0.25\""},
          "cpuLimit": {"type": "string", "description": "cores, e.g. \"1\""},
          "memRequest": {"type": "string", "description": "e.g. \"512Mi\""},
          "memLimit": {"type": "string", "description": "e.g. \"1Gi\""},
          "environmentVars": {"type": "object", "additionalProperties": {"type": "string"}},
          "createdAt": {"type": "string", "format": "date-time"},
          "updatedAt": {"type": "string", "format": "date-time"}
        }
      }
    ]
  },
  "ServiceInput": {
    "type": "object",
    "description": "The fields of a service. Surrounding blanks of displayName, description, version and dockerImage do not count. Limits may be given as the original strings (cpuLimit, memLimit) or as resources; when both are given they must agree; a request may not exceed its limit.",
    "properties": {
      "name": {"type": "string", "minLength": 2, "maxLength": 50, "pattern": "^[a-z0-9-]+$", "not": {"enum": ["admin", "categories"]},
               "description": "the slug; set once, at creation"},
      "displayName": {"type": "string", "minLength": 2, "maxLength": 100},
      "description": {"type": "string", "minLength": 10, "maxLength": 500},
      "category": {"$ref": "#/components/schemas/ServiceCategory"},
      "version": {"type": "string", "minLength": 1, "maxLength": 50, "default": "latest"},
      "dockerImage": {"type": "string", "minLength": 1, "maxLength": 255, "description": "an image reference such as nginx:1.27 or ghcr.io/org/app:tag"},
      "containerPort": {"type": "integer", "minimum": 1, "maximum": 65535, "default": 80},
      "defaultPort": {"type": "integer", "minimum": 1, "maximum": 65535, "description": "the original's name of containerPort"},
      "monthlyPrice": {"type": "integer", "minimum": 0, "maximum": 1000000000, "default": 0},
      "isActive": {"type": "boolean", "default": true},
      "features": {"type": "array", "maxItems": 50, "items": {"type": "string", "minLength": 1, "maxLength": 200}},
      "environmentVars": {
        "type": "object",
        "maxProperties": 100,
        "propertyNames": {"pattern": "^[A-Za-z_][A-Za-z0-9_]{0,127}$"},
        "additionalProperties": {"type": "string", "maxLength": 4096}
      },
      "resources": {
        "type": "object",
        "properties": {
          "cpuMillicores": {"type": "integer", "minimum": 1, "maximum": 64000},
          "memoryMiB": {"type": "integer", "minimum": 16, "maximum": 262144},
          "storageGiB": {"type": "integer", "minimum": 0, "maximum": 10240}
        }
      },
      "cpuRequest": {"$ref": "#/components/schemas/CpuQuantity"},
      "cpuLimit": {"$ref": "#/components/schemas/CpuQuantity"},
      "memRequest": {"$ref": "#/components/schemas/MemoryQuantity"},
      "memLimit": {"$ref": "#/components/schemas/MemoryQuantity"}
    }
  },
  "CpuQuantity": {
    "type": "string",
    "description": "cores (\"0.25\", \"2\", up to 3 decimals) or millicores (\"500m\"), at most 64 cores",
    "pattern": "^([0-9]{1,6}m|[0-9]{1,3}(\\.[0-9]{1,3})?)$"
  },
  "MemoryQuantity": {
    "type": "string",
    "description": "\"512Mi\" or \"2Gi\", between 16Mi and 256Gi",
    "pattern": "^([0-9]{1,7}Mi|[0-9]{1,4}Gi)$"
  },
  "NodeStatus": {"type": "string", "enum": ["ACTIVE", "INACTIVE", "MAINTENANCE", "PENDING", "NOT_READY"]},
  "NodeDrain": {
    "type": "object",
    "required": ["id", "nodeId", "nodeName", "cause", "state", "requestedBy", "timeoutSeconds", "deadline", "attempts",
                 "blocked", "evicted", "skipped", "remaining", "createdAt", "updatedAt", "statusUrl"],
    "properties": {
      "id": {"type": "string", "format": "uuid"},
      "nodeId": {"type": "string", "format": "uuid"},
      "nodeName": {"type": "string"},
      "cause": {"type": "string", "enum": ["drain", "maintenance"]},
      "state": {"type": "string", "enum": ["pending", "running", "complete", "incomplete", "cancelled"]},
      "requestedBy": {"type": "string", "description": "admin:<user id> or dba:<role>"},
      "reason": {"type": ["string", "null"]},
      "timeoutSeconds": {"type": "integer"},
      "deadline": {"type": "string", "format": "date-time"},
      "attempts": {"type": "integer", "description": "passes made"},
      "retryAt": {"type": ["string", "null"], "format": "date-time", "description": "the next pass of a live drain"},
      "blocked": {"type": "integer", "description": "pods whose last eviction a PodDisruptionBudget refused (429)"},
      "evicted": {"type": "array", "items": {"type": "object", "properties": {
        "namespace": {"type": "string"}, "name": {"type": "string"}, "at": {"type": "string", "format": "date-time"}}}},
      "skipped": {"type": "array", "items": {"type": "object", "properties": {
        "namespace": {"type": "string"}, "name": {"type": "string"}, "why": {"type": "string"}}}},
      "remaining": {"type": "array", "description": "pods still on the node (after the deadline: those it left)",
        "items": {"type": "object", "properties": {
          "namespace": {"type": "string"}, "name": {"type": "string"},
          "state": {"type": "string", "enum": ["evicting", "evicted", "blocked", "error", "terminating"]},
          "status": {"type": "integer", "description": "the Eviction API's answer"},
          "message": {"type": "string"}}}},
      "lastError": {"type": ["string", "null"]},
      "createdAt": {"type": "string", "format": "date-time"},
      "updatedAt": {"type": "string", "format": "date-time"},
      "finishedAt": {"type": ["string", "null"], "format": "date-time"},
      "statusUrl": {"type": "string"}
    }
  },
  "Quantity": {
    "type": "string",
    "pattern": "^[+-]?([0-9]+(\\.[0-9]*)?|\\.[0-9]+)([eE][+-]?[0-9]+|[numkMGTPE]|[KMGTPE]i)?$",
    "description": "a non-negative Kubernetes quantity string (\"16Gi\", \"500G\", \"16331368Ki\"; digits alone are bytes, as Kubernetes reads them); a JSON number is refused (400): it has no unit"
  },
  "CpuAmount": {
    "type": ["string", "number"],
    "minimum": 0,
    "pattern": "^[+-]?([0-9]+(\\.[0-9]*)?|\\.[0-9]+)([eE][+-]?[0-9]+|[numkMGTPE]|[KMGTPE]i)?$",
    "description": "CPU: a Kubernetes quantity string (\"3800m\", \"1.5\") or a JSON number, both in cores"
  },
  "Taint": {
    "type": "object",
    "required": ["key", "effect"],
    "properties": {
      "key": {"type": "string"},
      "value": {"type": ["string", "null"]},
      "effect": {"type": "string", "enum": ["NoSchedule", "PreferNoSchedule", "NoExecute"]}
    }
  },
  "NodeSpec": {
    "type": "object",
    "description": "A worker node in the original system's field set.",
    "properties": {
      "name": {"type": "string", "minLength": 2, "maxLength": 253, "pattern": "^[A-Za-z0-9]([A-Za-z0-9._-]*[A-Za-z0-9])?$"},
      "hostname": {"type": "string", "minLength": 1, "maxLength": 255},
      "ipAddress": {"type": "string", "minLength": 2, "maxLength": 64, "description": "an IPv4 or IPv6 address"},
      "architecture": {"type": "string", "enum": ["amd64", "arm64", "arm", "386", "ppc64le", "s390x", "riscv64"], "default": "amd64"},
      "operatingSystem": {"type": "string", "minLength": 1, "maxLength": 64, "default": "linux"},
      "cpuCores": {"type": "integer", "minimum": 1, "maximum": 100000},
      "cpuArchitecture": {"type": "string", "minLength": 1, "maxLength": 255},
      "totalMemory": {"$ref": "#/components/schemas/Quantity", "description": "a quantity string (\"64Gi\"); a number is refused"},
      "totalStorage": {"$ref": "#/components/schemas/Quantity", "description": "a quantity string (\"1Ti\"); a number is refused"},
      "allocatedCPU": {"$ref": "#/components/schemas/CpuAmount"},
      "allocatedMemory": {"$ref": "#/components/schemas/Quantity", "description": "a quantity string; a number is refused (numbers in MB are for heartbeats)"},
      "allocatedStorage": {"$ref": "#/components/schemas/Quantity", "description": "a quantity string; a number is refused (numbers in GB are for heartbeats)"},
      "maxPods": {"type": "integer", "minimum": 1, "maximum": 1000000},
      "currentPods": {"type": "integer", "minimum": 0, "maximum": 1000000},
      "labels": {"type": "object", "additionalProperties": {"type": "string", "maxLength": 63}},
      "taints": {"type": "array", "items": {"$ref": "#/components/schemas/Taint"}},
      "kubeletVersion": {"type": "string", "maxLength": 255},
      "containerRuntime": {"type": "string", "maxLength": 255},
      "kernelVersion": {"type": "string", "maxLength": 255},
      "osImage": {"type": "string", "maxLength": 255}
    }
  },
  "NodeRegistration": {
    "description": "A registration in the original system's field set.",
    "type": "object",
    "allOf": [{"$ref": "#/components/schemas/NodeSpec"}],
    "required": ["name", "hostname", "ipAddress", "cpuCores", "cpuArchitecture", "totalMemory", "totalStorage"],
    "properties": {
      "isReady": {"type": "boolean", "default": true},
      "registrationToken": {"type": "string", "description": "the join token, when it is not sent as the bearer token"}
    }
  },
  "NodeReport": {
    "type": "object",
    "description": "What a node reports about itself: allocation, usage, pods; a heartbeat may add its readiness.",
    "properties": {
      "allocatedCPU": {"$ref": "#/components/schemas/CpuAmount"},
      "allocatedMemory": {
        "description": "a quantity string (\"512Mi\"), or as in the original heartbeat a whole JSON number of MB, counted in MiB (512 is \"512Mi\")",
        "oneOf": [{"$ref": "#/components/schemas/Quantity"}, {"type": "integer", "minimum": 0}]
      },
      "allocatedStorage": {
        "description": "a quantity string (\"10Gi\"), or as in the original heartbeat a whole JSON number of GB, counted in GiB (10 is \"10Gi\")",
        "oneOf": [{"$ref": "#/components/schemas/Quantity"}, {"type": "integer", "minimum": 0}]
      },
      "cpuUsage": {"$ref": "#/components/schemas/CpuAmount"},
      "memoryUsage": {"$ref": "#/components/schemas/Quantity", "description": "a quantity string (\"16331368Ki\"); a number is refused"},
      "storageUsage": {"$ref": "#/components/schemas/Quantity", "description": "a quantity string (\"21474836480\" is bytes); a number is refused"},
      "currentPods": {"type": "integer", "minimum": 0, "maximum": 1000000}
    }
  },
  "KubernetesNode": {
    "type": "object",
    "description": "A Kubernetes Node object as `kubectl get node NAME -o json` prints it.",
    "required": ["kind", "metadata", "status"],
    "properties": {
      "apiVersion": {"type": "string"},
      "kind": {"const": "Node"},
      "metadata": {
        "type": "object",
        "required": ["name"],
        "properties": {
          "name": {"type": "string"},
          "uid": {"type": "string"},
          "labels": {"type": "object", "additionalProperties": {"type": "string"}},
          "annotations": {"type": "object", "additionalProperties": {"type": "string"}}
        }
      },
      "spec": {
        "type": "object",
        "properties": {
          "providerID": {"type": "string"},
          "podCIDR": {"type": "string"},
          "unschedulable": {"type": "boolean"},
          "taints": {"type": "array", "items": {"$ref": "#/components/schemas/Taint"}}
        }
      },
      "status": {
        "type": "object",
        "required": ["capacity"],
        "properties": {
          "capacity": {
            "type": "object",
            "required": ["cpu", "memory"],
            "properties": {
              "cpu": {"$ref": "#/components/schemas/CpuAmount"},
              "memory": {"$ref": "#/components/schemas/Quantity"},
              "ephemeral-storage": {"$ref": "#/components/schemas/Quantity"},
              "pods": {"oneOf": [{"$ref": "#/components/schemas/Quantity"}, {"type": "integer", "minimum": 0}]}
            },
            "additionalProperties": {"$ref": "#/components/schemas/Quantity"}
          },
          "allocatable": {"type": "object", "additionalProperties": {"$ref": "#/components/schemas/Quantity"}},
          "addresses": {
            "type": "array",
            "description": "must hold an InternalIP or ExternalIP",
            "items": {"type": "object", "properties": {"type": {"type": "string"}, "address": {"type": "string"}}}
          },
          "conditions": {"type": "array", "items": {"type": "object"}},
          "nodeInfo": {"type": "object"}
        }
      }
    }
  },
  "KubernetesNodeList": {
    "type": "object",
    "description": "A List holding exactly one Node.",
    "required": ["kind", "items"],
    "properties": {
      "apiVersion": {"type": "string"},
      "kind": {"const": "List"},
      "items": {"type": "array", "minItems": 1, "maxItems": 1, "items": {"$ref": "#/components/schemas/KubernetesNode"}}
    }
  },
  "NodeResources": {
    "type": "object",
    "required": ["cpuMillicores", "memoryBytes", "storageBytes", "pods"],
    "properties": {
      "cpuMillicores": {"type": "integer"},
      "memoryBytes": {"type": "integer"},
      "storageBytes": {"type": "integer"},
      "pods": {"type": "integer"}
    }
  },
  "NodeAllocation": {
    "type": "object",
    "description": "What is allocated on the node, absolute and in percent of allocatable (null when allocatable is 0).",
    "required": ["cpuMillicores", "memoryBytes", "storageBytes", "pods", "cpuPercent", "memoryPercent", "storagePercent",
                 "podsPercent"],
    "properties": {
      "cpuMillicores": {"type": "integer"},
      "memoryBytes": {"type": "integer"},
      "storageBytes": {"type": "integer"},
      "pods": {"type": "integer"},
      "cpuPercent": {"type": ["number", "null"]},
      "memoryPercent": {"type": ["number", "null"]},
      "storagePercent": {"type": ["number", "null"]},
      "podsPercent": {"type": ["number", "null"]}
    }
  },
  "NodeUsage": {
    "type": "object",
    "description": "What the node last reported using (null until it reports), in percent of capacity.",
    "required": ["cpuMillicores", "memoryBytes", "storageBytes", "cpuPercent", "memoryPercent", "storagePercent"],
    "properties": {
      "cpuMillicores": {"type": ["integer", "null"]},
      "memoryBytes": {"type": ["integer", "null"]},
      "storageBytes": {"type": ["integer", "null"]},
      "cpuPercent": {"type": ["number", "null"]},
      "memoryPercent": {"type": ["number", "null"]},
      "storagePercent": {"type": ["number", "null"]}
    }
  },
  "Node": {
    "type": "object",
    "description": "A worker node: the original's fields and the Kubernetes view (capacity, allocatable, conditions).",
    "required": ["id", "name", "hostname", "ipAddress", "addresses", "architecture", "operatingSystem", "cpuCores",
                 "cpuArchitecture", "totalMemory", "totalStorage", "allocatedCPU", "allocatedMemory", "allocatedStorage",
                 "maxPods", "currentPods", "status", "isReady", "isSchedulable", "unschedulable", "lastHeartbeat",
                 "lastHealthCheck", "labels", "taints", "conditions", "kubeletVersion", "containerRuntime",
                 "kernelVersion", "osImage", "providerId", "podCidr", "kubeUid", "capacity", "allocatable",
                 "allocation", "usage", "agentClockSkewMs", "registeredAt", "statusChangedAt", "createdAt", "updatedAt"],
    "properties": {
      "id": {"type": "string", "format": "uuid"},
      "name": {"type": "string"},
      "hostname": {"type": "string"},
      "ipAddress": {"type": "string"},
      "addresses": {"description": "Kubernetes NodeAddress objects [{type, address}] as registered"},
      "architecture": {"type": "string"},
      "operatingSystem": {"type": "string"},
      "cpuCores": {"type": "integer"},
      "cpuArchitecture": {"type": "string"},
      "totalMemory": {"type": "string"},
      "totalStorage": {"type": "string"},
      "allocatedCPU": {"type": "string"},
      "allocatedMemory": {"type": "string"},
      "allocatedStorage": {"type": "string"},
      "maxPods": {"type": "integer"},
      "currentPods": {"type": "integer"},
      "status": {"$ref": "#/components/schemas/NodeStatus"},
      "isReady": {"type": "boolean"},
      "isSchedulable": {"type": "boolean", "description": "ACTIVE, ready and not cordoned"},
      "unschedulable": {"type": "boolean", "description": "cordoned by an administrator or the node"},
      "lastHeartbeat": {"type": ["string", "null"], "format": "date-time"},
      "lastHealthCheck": {"type": ["string", "null"], "format": "date-time"},
      "labels": {"type": "object", "additionalProperties": {"type": "string"}},
      "taints": {"type": "array", "items": {"$ref": "#/components/schemas/Taint"}},
      "conditions": {"description": "Kubernetes NodeCondition objects as last reported"},
      "kubeletVersion": {"type": ["string", "null"]},
      "containerRuntime": {"type": ["string", "null"]},
      "kernelVersion": {"type": ["string", "null"]},
      "osImage": {"type": ["string", "null"]},
      "providerId": {"type": ["string", "null"]},
      "podCidr": {"type": ["string", "null"]},
      "kubeUid": {"type": ["string", "null"]},
      "capacity": {"$ref": "#/components/schemas/NodeResources"},
      "allocatable": {"$ref": "#/components/schemas/NodeResources"},
      "allocation": {"$ref": "#/components/schemas/NodeAllocation"},
      "usage": {"$ref": "#/components/schemas/NodeUsage"},
      "agentClockSkewMs": {"type": ["integer", "null"], "description": "the agent's clock minus the server's, at the last heartbeat that sent agentTime"},
      "registeredAt": {"type": ["string", "null"], "format": "date-time"},
      "statusChangedAt": {"type": "string", "format": "date-time"},
      "createdAt": {"type": "string", "format": "date-time"},
      "updatedAt": {"type": "string", "format": "date-time"}
    }
  },
  "JoinToken": {
    "type": "object",
    "description": "A cluster join token, without its secret.",
    "required": ["id", "note", "createdAt", "expiresAt", "revokedAt", "lastUsedAt", "isValid"],
    "properties": {
      "id": {"type": "string", "format": "uuid"},
      "note": {"type": ["string", "null"]},
      "createdAt": {"type": "string", "format": "date-time"},
      "expiresAt": {"type": ["string", "null"], "format": "date-time"},
      "revokedAt": {"type": ["string", "null"], "format": "date-time"},
      "lastUsedAt": {"type": ["string", "null"], "format": "date-time"},
      "isValid": {"type": "boolean"}
    }
  },
  "InvoiceRef": {
    "type": "object",
    "required": ["id", "invoiceNumber", "status"],
    "properties": {
      "id": {"type": "string", "format": "uuid"},
      "invoiceNumber": {"type": "string"},
      "status": {"$ref": "#/components/schemas/InvoiceStatus"}
    }
  },
  "InvoiceStatus": {"type": "string", "enum": ["PAID", "VOID", "ISSUED"]},
  "TopUp": {
    "type": "object",
    "description": "A credit top-up paid through Midtrans Snap.",
    "required": ["id", "transactionId", "orderId", "amount", "currency", "status", "snapToken", "redirectUrl",
                 "snapExpiresAt", "paymentType", "paidAt", "expiresAt", "expiredAt", "createdAt", "updatedAt", "invoice"],
    "properties": {
      "id": {"type": "string", "format": "uuid"},
      "transactionId": {"type": "string", "format": "uuid", "description": "the same as id (the original's name)"},
      "orderId": {"type": "string", "description": "the Midtrans order id of the latest payment link"},
      "amount": {"$ref": "#/components/schemas/Amount"},
      "currency": {"const": "IDR"},
      "status": {"type": "string", "enum": ["PENDING", "PAID", "FAILED", "EXPIRED", "CANCELLED", "REFUNDED"]},
      "snapToken": {"type": ["string", "null"]},
      "redirectUrl": {"type": ["string", "null"], "description": "the Snap payment page"},
      "snapExpiresAt": {"type": ["string", "null"], "format": "date-time"},
      "paymentType": {"type": ["string", "null"]},
      "paidAt": {"type": ["string", "null"], "format": "date-time"},
      "expiresAt": {"type": "string", "format": "date-time"},
      "expiredAt": {"type": "string", "format": "date-time", "description": "the same as expiresAt (the original's name)"},
      "createdAt": {"type": "string", "format": "date-time"},
      "updatedAt": {"type": "string", "format": "date-time"},
      "invoice": {"oneOf": [{"$ref": "#/components/schemas/InvoiceRef"}, {"type": "null"}]}
    }
  },
  "Transaction": {
    "type": "object",
    "description": "One money movement of the caller's wallet (top-ups of any status, refunds, charges, adjustments).",
    "required": ["id", "date", "createdAt", "type", "description", "amount", "currency", "direction", "status",
                 "balanceBefore", "balanceAfter", "reference", "referenceType", "paymentMethod", "paymentGateway",
                 "invoice", "actions"],
    "properties": {
      "id": {"type": "string", "description": "opaque: a top-up id, an order id or a ledger entry id"},
      "date": {"type": "string", "format": "date-time"},
      "createdAt": {"type": "string", "format": "date-time"},
      "type": {"type": "string", "enum": ["TOPUP", "SERVICE_PURCHASE", "REFUND", "ADJUSTMENT"]},
      "description": {"type": "string"},
      "amount": {"$ref": "#/components/schemas/Amount"},
      "currency": {"const": "IDR"},
      "direction": {"type": "string", "enum": ["CREDIT", "DEBIT"]},
      "status": {"type": "string", "enum": ["PENDING", "SUCCESS", "FAILED", "CANCELLED", "EXPIRED", "REFUNDED"]},
      "balanceBefore": {"type": ["integer", "null"], "description": "the wallet before the movement (null until it is posted)"},
      "balanceAfter": {"type": ["integer", "null"]},
      "reference": {"type": ["string", "null"]},
      "referenceType": {"type": ["string", "null"]},
      "paymentMethod": {"type": ["string", "null"]},
      "paymentGateway": {"type": ["string", "null"], "enum": ["MIDTRANS", "BALANCE", null]},
      "invoice": {"oneOf": [{"$ref": "#/components/schemas/InvoiceRef"}, {"type": "null"}]},
      "actions": {
        "type": "object",
        "required": ["canPay", "canCancel", "canDownloadInvoice"],
        "properties": {
          "canPay": {"type": "boolean"},
          "canCancel": {"type": "boolean"},
          "canDownloadInvoice": {"type": "boolean"}
        }
      }
    }
  },
  "InvoiceLine": {
    "type": "object",
    "required": ["description", "amount"],
    "properties": {
      "description": {"type": "string"},
      "quantity": {"type": "number"},
      "unitPrice": {"type": "number"},
      "amount": {"type": "number"}
    }
  },
  "Invoice": {
    "type": "object",
    "description": "An invoice (INV-YYYYMM-NNNNNN, gap-free per UTC month) or a credit note (CN-..., negative amount) that voids one.",
    "required": ["id", "invoiceNumber", "type", "amount", "currency", "status", "description", "lines", "reference",
                 "topUpTransactionId", "creditNoteFor", "voidedBy", "downloadCount", "issuedAt", "dueDate", "paidAt",
                 "createdAt"],
    "properties": {
      "id": {"type": "string", "format": "uuid"},
      "invoiceNumber": {"type": "string", "pattern": "^(INV|CN)-[0-9]{6}-[0-9]{6,}$"},
      "type": {"type": "string", "enum": ["TOPUP", "SUBSCRIPTION", "CREDIT_NOTE"]},
      "amount": {"$ref": "#/components/schemas/Amount"},
      "currency": {"const": "IDR"},
      "status": {"$ref": "#/components/schemas/InvoiceStatus"},
      "description": {"type": "string"},
      "lines": {"type": "array", "items": {"$ref": "#/components/schemas/InvoiceLine"}},
      "reference": {"type": "object"},
      "topUpTransactionId": {"type": ["string", "null"], "format": "uuid"},
      "creditNoteFor": {"type": ["string", "null"], "format": "uuid"},
      "voidedBy": {"type": ["string", "null"], "format": "uuid"},
      "downloadCount": {"type": "integer", "minimum": 0},
      "issuedAt": {"type": "string", "format": "date-time"},
      "dueDate": {"type": "string", "format": "date-time"},
      "paidAt": {"type": ["string", "null"], "format": "date-time"},
      "createdAt": {"type": "string", "format": "date-time"}
    }
  },
  "Counts": {
    "type": "object",
    "description": "The original's relation counts (_count): every subscription, of any status.",
    "required": ["subscriptions"],
    "properties": {"subscriptions": {"type": "integer", "minimum": 0}}
  },
  "InvoiceLinks": {
    "type": "object",
    "description": "The original's fields of an invoice: its owner, what it bills (a top-up or a subscription; null when not that kind), where its PDF is, when it last changed.",
    "required": ["userId", "subscriptionId", "pdfPath", "updatedAt", "topUpTransaction", "subscription"],
    "properties": {
      "userId": {"type": "string", "format": "uuid"},
      "subscriptionId": {"type": ["string", "null"], "format": "uuid"},
      "pdfPath": {"type": "string", "description": "the path of GET /billing/invoices/:id/pdf, which renders it"},
      "updatedAt": {"type": "string", "format": "date-time", "description": "issued, or voided by a credit note"},
      "topUpTransaction": {
        "oneOf": [
          {
            "type": "object",
            "required": ["id", "orderId", "paymentType"],
            "properties": {
              "id": {"type": "string", "format": "uuid"},
              "orderId": {"type": "string"},
              "paymentType": {"type": ["string", "null"]}
            }
          },
          {"type": "null"}
        ]
      },
      "subscription": {"oneOf": [{"$ref": "#/components/schemas/Subscription"}, {"type": "null"}]}
    }
  },
  "InvoiceNumberRef": {
    "type": "object",
    "required": ["id", "invoiceNumber"],
    "properties": {
      "id": {"type": "string", "format": "uuid"},
      "invoiceNumber": {"type": "string"}
    }
  },
  "InvoiceDetail": {
    "description": "An invoice with its owner, its top-up or subscription and the credit-note links spelled out.",
    "allOf": [
      {"$ref": "#/components/schemas/Invoice"},
      {"$ref": "#/components/schemas/InvoiceLinks"},
      {
        "type": "object",
        "required": ["user", "creditNoteFor", "voidedBy"],
        "properties": {
          "user": {"$ref": "#/components/schemas/UserRef"},
          "creditNoteFor": {"oneOf": [{"$ref": "#/components/schemas/InvoiceNumberRef"}, {"type": "null"}]},
          "voidedBy": {"oneOf": [{"$ref": "#/components/schemas/InvoiceNumberRef"}, {"type": "null"}]}
        }
      }
    ]
  },
  "SubscriptionStatus": {"type": "string", "enum": ["ACTIVE", "GRACE", "SUSPENDED", "CANCELLED", "EXPIRED"]},
  "Subscription": {
    "type": "object",
    "description": "A subscription to a catalog service, paid per calendar month (UTC) from the wallet.",
    "required": ["id", "userId", "serviceId", "service", "status", "price", "monthlyPrice", "currency", "periodNumber",
                 "startDate", "currentPeriodStart", "currentPeriodEnd", "expiresAt", "autoRenew", "cancelAtPeriodEnd",
                 "graceUntil", "cancelledAt", "suspendedAt", "endedAt", "statusReason", "createdAt", "updatedAt"],
    "properties": {
      "id": {"type": "string", "format": "uuid"},
      "userId": {"type": "string", "format": "uuid"},
      "serviceId": {"type": "string", "format": "uuid"},
      "service": {
        "type": "object",
        "required": ["id", "name", "displayName", "monthlyPrice", "isActive"],
        "properties": {
          "id": {"type": "string", "format": "uuid"},
          "name": {"type": "string"},
          "displayName": {"type": "string"},
          "monthlyPrice": {"$ref": "#/components/schemas/Amount"},
          "isActive": {"type": "boolean"}
        }
      },
      "status": {"$ref": "#/components/schemas/SubscriptionStatus"},
      "price": {"$ref": "#/components/schemas/Amount", "description": "the monthly price at the time of sale, charged by renewals"},
      "monthlyPrice": {"$ref": "#/components/schemas/Amount", "description": "the same as price"},
      "currency": {"const": "IDR"},
      "periodNumber": {"type": "integer", "minimum": 1},
      "startDate": {"type": "string", "format": "date-time"},
      "currentPeriodStart": {"type": "string", "format": "date-time"},
      "currentPeriodEnd": {"type": "string", "format": "date-time"},
      "expiresAt": {"type": "string", "format": "date-time", "description": "the same as currentPeriodEnd"},
      "autoRenew": {"type": "boolean"},
      "cancelAtPeriodEnd": {"type": "boolean"},
      "graceUntil": {"type": ["string", "null"], "format": "date-time"},
      "cancelledAt": {"type": ["string", "null"], "format": "date-time"},
      "suspendedAt": {"type": ["string", "null"], "format": "date-time"},
      "endedAt": {"type": ["string", "null"], "format": "date-time"},
      "statusReason": {"type": ["string", "null"]},
      "createdAt": {"type": "string", "format": "date-time"},
      "updatedAt": {"type": "string", "format": "date-time"}
    }
  },
  "SubscriptionCharge": {
    "type": "object",
    "description": "One paid period of a subscription.",
    "required": ["period", "kind", "amount", "currency", "periodStart", "periodEnd", "entryId", "invoice", "createdAt"],
    "properties": {
      "period": {"type": "integer", "minimum": 1},
      "kind": {"type": "string", "enum": ["purchase", "renewal", "manual_renewal", "revival"]},
      "amount": {"$ref": "#/components/schemas/Amount"},
      "currency": {"const": "IDR"},
      "periodStart": {"type": "string", "format": "date-time"},
      "periodEnd": {"type": "string", "format": "date-time"},
      "entryId": {"type": ["integer", "null"], "description": "the ledger entry (null for a free period)"},
      "invoice": {"oneOf": [{"$ref": "#/components/schemas/InvoiceRef"}, {"type": "null"}]},
      "createdAt": {"type": "string", "format": "date-time"}
    }
  },
  "SubscriptionPurchase": {
    "description": "A subscription and the period just paid; a retry with the same Idempotency-Key answers the first result (replayed, without balanceAfter).",
    "allOf": [
      {"$ref": "#/components/schemas/Subscription"},
      {
        "type": "object",
        "required": ["replayed", "charge"],
        "properties": {
          "replayed": {"type": "boolean"},
          "charge": {"$ref": "#/components/schemas/SubscriptionCharge"},
          "balanceAfter": {"$ref": "#/components/schemas/Amount"}
        }
      }
    ]
  },
  "LedgerEntry": {
    "type": "object",
    "description": "A balanced ledger entry with its postings (slot postings shown under their platform account).",
    "required": ["id", "kind", "memo", "ref", "createdAt", "postings"],
    "properties": {
      "id": {"type": "integer"},
      "kind": {"type": "string"},
      "memo": {"type": "string"},
      "ref": {"description": "what the entry is about (a JSON object), or null"},
      "createdAt": {"type": "string", "format": "date-time"},
      "postings": {
        "type": "array",
        "items": {
          "type": "object",
          "required": ["id", "account", "accountKind", "code", "userId", "amount", "balanceBefore", "balanceAfter", "slotAccount"],
          "properties": {
            "id": {"type": "integer"},
            "account": {"type": "integer"},
            "accountKind": {"type": "string", "enum": ["wallet", "platform"]},
            "code": {"type": ["string", "null"]},
            "userId": {"type": ["string", "null"], "format": "uuid"},
            "amount": {"$ref": "#/components/schemas/Amount"},
            "balanceBefore": {"type": "integer"},
            "balanceAfter": {"type": "integer"},
            "slotAccount": {"type": ["integer", "null"]}
          }
        }
      }
    }
  },
  "JobRun": {
    "type": "object",
    "required": ["id", "job", "startedAt", "finishedAt", "ms", "ok", "detail", "error"],
    "properties": {
      "id": {"type": "integer"},
      "job": {"type": "string"},
      "startedAt": {"type": "string", "format": "date-time"},
      "finishedAt": {"type": "string", "format": "date-time"},
      "ms": {"type": "number"},
      "ok": {"type": "boolean"},
      "detail": {"description": "what the job returned (JSON), or null"},
      "error": {"type": ["string", "null"]}
    }
  },
  "MidtransNotification": {
    "type": "object",
    "description": "A Midtrans HTTP notification; its signature_key is SHA-512(order_id + status_code + gross_amount + server key). Other Midtrans fields (fraud_status, payment_type, transaction_id, currency, ...) are read when present.",
    "required": ["order_id", "status_code", "gross_amount", "transaction_status", "signature_key"],
    "properties": {
      "order_id": {"type": "string", "minLength": 1, "maxLength": 50},
      "status_code": {"type": "string", "minLength": 1, "maxLength": 10},
      "gross_amount": {"type": "string", "minLength": 1, "maxLength": 30},
      "transaction_status": {"type": "string", "minLength": 1, "maxLength": 50},
      "signature_key": {"type": "string", "minLength": 1, "maxLength": 256},
      "fraud_status": {"type": "string"},
      "payment_type": {"type": "string"},
      "transaction_id": {"type": "string"},
      "currency": {"type": "string"}
    }
  }
}
$schemas$::jsonb);

-- The categories are the catalog's fixed list (20_catalog.sql).
INSERT INTO paas.route_schemas (name, schema) VALUES
	('ServiceCategory', jsonb_build_object('type', 'string', 'enum', to_jsonb(paas.service_category_names())));

-- Small pieces shared by several routes.
INSERT INTO paas.route_schemas (name, schema)
SELECT key, value FROM jsonb_each($schemas$
{
  "Page": {"type": "integer", "minimum": 1, "maximum": 1000000, "default": 1, "description": "page number, from 1"},
  "SortOrder": {"type": "string", "enum": ["asc", "desc"], "default": "desc"},
  "DateFilter": {
    "type": "string",
    "description": "an ISO-8601 date (YYYY-MM-DD) or date-time",
    "pattern": "^[0-9]{4}-[0-9]{2}-[0-9]{2}([T ][0-9:.]+(Z|[+-][0-9]{2}(:?[0-9]{2})?)?)?$"
  },
  "IdempotencyKey": {"type": "string", "minLength": 1, "maxLength": 255},
  "Health": {
    "type": "object",
    "required": ["status", "database", "version", "timestamp", "environment"],
    "properties": {
      "status": {"const": "healthy"},
      "database": {"const": "up"},
      "version": {"type": "string"},
      "timestamp": {"type": "string", "format": "date-time"},
      "environment": {"type": "string", "enum": ["production", "development"],
                      "description": "the original's NODE_ENV: production when paas.midtrans_is_production is on"}
    }
  },
  "NodeResourceTotals": {
    "type": "object",
    "required": ["unit", "total", "allocatable", "allocated", "used", "utilization", "usagePercent"],
    "properties": {
      "unit": {"type": "string", "enum": ["millicores", "bytes"]},
      "total": {"type": "integer"},
      "allocatable": {"type": "integer"},
      "allocated": {"type": "integer"},
      "used": {"type": "integer"},
      "utilization": {"type": "number", "description": "allocated, in percent of allocatable"},
      "usagePercent": {"type": "number", "description": "used, in percent of capacity"}
    }
  },
  "NodeSet": {
    "type": "object",
    "required": ["nodes", "count"],
    "properties": {
      "nodes": {"type": "array", "items": {"$ref": "#/components/schemas/Node"}},
      "count": {"type": "integer"}
    }
  },
  "NodeHeartbeat": {
    "description": "A heartbeat: the node's report, optionally its readiness (isReady, or status, or the Ready condition; ready when none says otherwise) and its clock.",
    "allOf": [
      {"$ref": "#/components/schemas/NodeReport"},
      {
        "type": "object",
        "properties": {
          "isReady": {"type": "boolean"},
          "status": {"type": "string", "enum": ["ACTIVE", "NOT_READY"]},
          "conditions": {"type": "array", "items": {"type": "object"}, "description": "Kubernetes NodeCondition objects"},
          "agentTime": {"type": "string", "format": "date-time", "description": "the agent's clock (kept as a skew diagnostic)"}
        }
      }
    ]
  },
  "HeartbeatReply": {
    "type": "object",
    "required": ["id", "name", "lastHeartbeat", "status", "isReady", "isSchedulable", "allocatedCPU", "allocatedMemory",
                 "allocatedStorage", "currentPods"],
    "properties": {
      "id": {"type": "string", "format": "uuid"},
      "name": {"type": "string"},
      "lastHeartbeat": {"type": "string", "format": "date-time"},
      "status": {"$ref": "#/components/schemas/NodeStatus"},
      "isReady": {"type": "boolean"},
      "isSchedulable": {"type": "boolean"},
      "allocatedCPU": {"type": "string"},
      "allocatedMemory": {"type": "string"},
      "allocatedStorage": {"type": "string"},
      "currentPods": {"type": "integer"}
    }
  },
  "SubscriptionCounts": {
    "type": "object",
    "required": ["ACTIVE", "GRACE", "SUSPENDED", "CANCELLED", "EXPIRED"],
    "properties": {
      "ACTIVE": {"type": "integer"},
      "GRACE": {"type": "integer"},
      "SUSPENDED": {"type": "integer"},
      "CANCELLED": {"type": "integer"},
      "EXPIRED": {"type": "integer"}
    }
  }
}
$schemas$::jsonb);

------------------------------------------------------------------------------
-- writing routes
------------------------------------------------------------------------------

-- Adds routes given as a JSON array of objects, in order (their seq follows
-- the table's last one): {method, path, function ("api.name", or null for a
-- built-in), access, status, message, flags, tag, operationId, summary,
-- description, request, requestRequired, query, pathParams, headers,
-- responseType, response, errors, security}; absent keys take the column
-- defaults.  For this script and upgrade scripts.  Returns the number added.
CREATE FUNCTION paas.routes_add(items jsonb) RETURNS integer
	LANGUAGE plpgsql VOLATILE
	SET search_path = pg_catalog, paas, pg_temp
AS $$
DECLARE
	n integer;
BEGIN
	INSERT INTO paas.routes (method, path, function, access, status, message, other_replies, flags, tag, operation_id,
							 summary, description, request_schema, request_required, query_schema,
							 path_schema, header_schema, response_type, response_schema, errors, security)
	SELECT e ->> 'method', e ->> 'path',
		   CASE WHEN e ->> 'function' IS NOT NULL THEN ((e ->> 'function') || '(jsonb, jsonb)')::regprocedure END,
		   e ->> 'access', (e ->> 'status')::integer, e ->> 'message', coalesce(e -> 'otherReplies', '{}'),
		   ARRAY(SELECT jsonb_array_elements_text(coalesce(e -> 'flags', '[]'))),
		   e ->> 'tag', e ->> 'operationId', e ->> 'summary', e ->> 'description',
		   e -> 'request', coalesce((e ->> 'requestRequired')::boolean, false),
		   coalesce(e -> 'query', '{}'), coalesce(e -> 'pathParams', '{}'), coalesce(e -> 'headers', '{}'),
		   coalesce(e ->> 'responseType', 'envelope'), coalesce(e -> 'response', '{}'),
		   ARRAY(SELECT jsonb_array_elements_text(coalesce(e -> 'errors', '[]'))::integer),
		   e -> 'security'
	  FROM jsonb_array_elements(items) WITH ORDINALITY AS a (e, i)
	 ORDER BY a.i;
	GET DIAGNOSTICS n = ROW_COUNT;
	RETURN n;
END
$$;
COMMENT ON FUNCTION paas.routes_add(jsonb) IS
	'adds routes from a JSON array of {method, path, function, access, status, message, otherReplies, flags, tag, ...}, in order';

------------------------------------------------------------------------------
-- the routes, in the gateway's order (httpd/routes.c includes core, auth,
-- services, workers, ledger, billing, subscriptions)
------------------------------------------------------------------------------

-- system
SELECT paas.routes_add($routes$[
  {"method": "GET", "path": "/health", "function": "api.health", "access": "public", "status": 200,
   "message": "Success", "tag": "system", "operationId": "healthRoot",
   "summary": "Health, at the server root (the original's path)",
   "response": {"$ref": "#/components/schemas/Health"}},
  {"method": "GET", "path": "/api/v1/health", "function": "api.health", "access": "public", "status": 200,
   "message": "Service is healthy", "tag": "system", "summary": "Health: the database answers",
   "response": {"$ref": "#/components/schemas/Health"}},
  {"method": "GET", "path": "/api/v1/status", "function": "api.status", "access": "public", "status": 200,
   "message": "Service status", "tag": "system", "summary": "Version, database time, whether the worker and pg_cron run",
   "response": {
     "type": "object",
     "required": ["service", "version", "databaseTime", "worker", "cron"],
     "additionalProperties": false,
     "properties": {
       "service": {"const": "paas"},
       "version": {"type": "string", "description": "the loaded module's version"},
       "databaseTime": {"type": "string", "format": "date-time"},
       "worker": {
         "type": "object",
         "required": ["running"],
         "additionalProperties": false,
         "properties": {"running": {"type": "boolean"}}
       },
       "cron": {"type": "boolean", "description": "whether pg_cron is installed"}
     }
   }},
  {"method": "GET", "path": "/api/v1/openapi.json", "function": null, "access": "public", "status": 200,
   "message": "OpenAPI 3.1 description of every route", "flags": ["builtin", "no_db"], "tag": "system",
   "summary": "This document",
   "description": "The OpenAPI 3.1 document of every route, generated from the route table (api.openapi()); not wrapped in the envelope.",
   "responseType": "json",
   "response": {
     "type": "object",
     "description": "an OpenAPI 3.1 document",
     "required": ["openapi", "info", "paths"],
     "properties": {"openapi": {"type": "string"}, "info": {"type": "object"}, "paths": {"type": "object"}}
   }},
  {"method": "GET", "path": "/api/v1/metrics", "function": null, "access": "local", "status": 200,
   "message": "Prometheus metrics", "flags": ["builtin", "no_db"], "tag": "system",
   "summary": "Request counters in the Prometheus text format",
   "description": "Requests by route and status class, time spent per route and the batching counters, in the Prometheus text exposition format (0.0.4). On the API listener an administrator's token is needed; the metrics listener (PAAS_METRICS_LISTEN, loopback by default) serves them without one.",
   "responseType": "text", "response": {"type": "string"}},
  {"method": "GET", "path": "/api/v1/admin/status", "function": "api.admin_status", "access": "admin", "status": 200,
   "message": "Service status", "tag": "system", "summary": "Versions of module, extension, server and pg_cron; the background worker",
   "response": {
     "type": "object",
     "required": ["service", "version", "extensionVersion", "databaseTime", "postgres", "database", "worker", "cron", "cronVersion"],
     "properties": {
       "service": {"const": "paas"},
       "version": {"type": "string", "description": "the loaded module's version"},
       "extensionVersion": {"type": ["string", "null"], "description": "the installed extension's version"},
       "databaseTime": {"type": "string", "format": "date-time"},
       "postgres": {"type": "string"},
       "database": {"type": "string"},
       "worker": {
         "type": "object",
         "required": ["running", "pid", "startedAt", "lastTick", "ticks", "jobFailures"],
         "properties": {
           "running": {"type": "boolean"},
           "pid": {"type": ["integer", "null"]},
           "startedAt": {"type": ["string", "null"], "format": "date-time"},
           "lastTick": {"type": ["string", "null"], "format": "date-time"},
           "ticks": {"type": "integer"},
           "jobFailures": {"type": "integer"}
         }
       },
       "cron": {"type": "boolean", "description": "whether pg_cron is installed"},
       "cronVersion": {"type": ["string", "null"]}
     }
   }},
  {"method": "GET", "path": "/api/v1/admin/jobs", "function": "api.jobs_list", "access": "admin", "status": 200,
   "message": "Background jobs retrieved successfully", "tag": "system",
   "summary": "The background worker and its jobs",
   "response": {
     "type": "object",
     "required": ["worker", "jobs"],
     "properties": {
       "worker": {
         "type": "object",
         "description": "paas.worker_state() as a row (snake_case keys)",
         "required": ["running", "pid", "started_at", "last_tick", "ticks", "job_failures"],
         "properties": {
           "running": {"type": "boolean"},
           "pid": {"type": ["integer", "null"]},
           "started_at": {"type": ["string", "null"], "format": "date-time"},
           "last_tick": {"type": ["string", "null"], "format": "date-time"},
           "ticks": {"type": "integer"},
           "job_failures": {"type": "integer"}
         }
       },
       "jobs": {
         "type": "array",
         "items": {
           "type": "object",
           "required": ["name", "function", "runner", "runEverySeconds", "schedule", "enabled", "nextRunAt",
                        "description", "lastRun", "failuresLast24h"],
           "properties": {
             "name": {"type": "string"},
             "function": {"type": "string"},
             "runner": {"type": "string", "enum": ["worker", "pg_cron"],
                        "description": "who starts it: the background worker, or pg_cron"},
             "runEverySeconds": {"type": ["number", "null"], "description": "null for pg_cron's jobs"},
             "schedule": {"type": ["string", "null"],
                          "description": "the cron schedule of a pg_cron job (null when not scheduled, and for the worker's)"},
             "enabled": {"type": "boolean"},
             "nextRunAt": {"type": ["string", "null"], "format": "date-time", "description": "null for pg_cron's jobs"},
             "description": {"type": "string"},
             "lastRun": {"oneOf": [{"$ref": "#/components/schemas/JobRun"}, {"type": "null"}]},
             "failuresLast24h": {"type": "integer"}
           }
         }
       }
     }
   }},
  {"method": "GET", "path": "/api/v1/admin/jobs/runs", "function": "api.jobs_runs", "access": "admin", "status": 200,
   "message": "Job runs retrieved successfully", "flags": ["paginated"], "tag": "system",
   "summary": "Recorded job runs, newest first",
   "query": {
     "page": {"$ref": "#/components/schemas/Page"},
     "limit": {"type": "integer", "minimum": 1, "maximum": 100, "default": 20, "description": "rows per page"},
     "job": {"type": "string", "minLength": 1, "maxLength": 63, "description": "only the runs of this job"},
     "ok": {"type": "boolean", "description": "only successful (true) or failed (false) runs"}
   },
   "response": {"type": "array", "items": {"$ref": "#/components/schemas/JobRun"}},
   "errors": [400]}
]$routes$);

-- accounts: the caller's own account (/auth) and admin user management (/users)
SELECT paas.routes_add($routes$[
  {"method": "POST", "path": "/api/v1/auth/register", "function": "api.auth_register", "access": "public", "status": 201,
   "message": "User registered successfully", "flags": ["tokens", "rate_register"], "tag": "auth",
   "summary": "Register a USER account and log it in",
   "request": {
     "type": "object",
     "required": ["name", "email", "password", "confirmPassword"],
     "properties": {
       "name": {"type": "string", "minLength": 2, "maxLength": 50},
       "email": {"$ref": "#/components/schemas/Email", "description": "unique, case-insensitively"},
       "password": {"$ref": "#/components/schemas/Password"},
       "confirmPassword": {"type": "string", "description": "the same as password"}
     }
   },
   "requestRequired": true,
   "response": {"$ref": "#/components/schemas/Session"},
   "errors": [400, 409]},
  {"method": "POST", "path": "/api/v1/auth/login", "function": "api.auth_login", "access": "public", "status": 200,
   "message": "Login successful", "flags": ["tokens", "rate_login"], "tag": "auth",
   "summary": "Log in with email and password",
   "request": {
     "type": "object",
     "required": ["email", "password"],
     "properties": {
       "email": {"$ref": "#/components/schemas/Email", "description": "case-insensitive"},
       "password": {"type": "string", "minLength": 1, "maxLength": 1024}
     }
   },
   "requestRequired": true,
   "response": {"$ref": "#/components/schemas/Session"},
   "errors": [400, 401]},
  {"method": "POST", "path": "/api/v1/auth/refresh", "function": "api.auth_refresh", "access": "public", "status": 200,
   "message": "Token refreshed successfully", "flags": ["tokens", "rate_refresh"], "tag": "auth",
   "summary": "Rotate the refresh token (single use; reuse revokes the session)",
   "request": {
     "type": "object",
     "required": ["refreshToken"],
     "properties": {"refreshToken": {"type": "string", "minLength": 1, "maxLength": 512}}
   },
   "requestRequired": true,
   "response": {"$ref": "#/components/schemas/Session"},
   "errors": [400, 401]},
  {"method": "GET", "path": "/api/v1/auth/me", "function": "api.auth_me", "access": "user", "status": 200,
   "message": "User is authenticated", "flags": ["batch"], "tag": "auth",
   "summary": "The caller",
   "response": {
     "type": "object",
     "required": ["user", "authenticated"],
     "properties": {"user": {"$ref": "#/components/schemas/User"}, "authenticated": {"const": true}}
   }},
  {"method": "GET", "path": "/api/v1/auth/profile", "function": "api.auth_profile", "access": "user", "status": 200,
   "message": "Profile retrieved successfully", "tag": "auth",
   "summary": "The caller's profile",
   "response": {"allOf": [
     {"$ref": "#/components/schemas/User"},
     {"type": "object", "required": ["lastLoginAt", "_count"],
      "properties": {"lastLoginAt": {"type": ["string", "null"], "format": "date-time"},
                     "_count": {"$ref": "#/components/schemas/Counts"}}}
   ]}},
  {"method": "PUT", "path": "/api/v1/auth/profile", "function": "api.auth_profile_update", "access": "user", "status": 200,
   "message": "Profile updated successfully", "tag": "auth",
   "summary": "Change the caller's name or email",
   "request": {
     "type": "object",
     "properties": {
       "name": {"type": "string", "minLength": 2, "maxLength": 50},
       "email": {"$ref": "#/components/schemas/Email", "description": "unique, case-insensitively"}
     }
   },
   "response": {"$ref": "#/components/schemas/User"},
   "errors": [400, 409]},
  {"method": "POST", "path": "/api/v1/auth/change-password", "function": "api.auth_change_password", "access": "user",
   "status": 200, "message": "Password changed successfully", "tag": "auth",
   "summary": "Change the caller's password (every other session is revoked)",
   "request": {
     "type": "object",
     "required": ["currentPassword", "newPassword", "confirmNewPassword"],
     "properties": {
       "currentPassword": {"type": "string", "minLength": 1, "maxLength": 1024},
       "newPassword": {"$ref": "#/components/schemas/Password"},
       "confirmNewPassword": {"type": "string", "description": "the same as newPassword"}
     }
   },
   "requestRequired": true,
   "response": {"type": "null"},
   "errors": [400]},
  {"method": "POST", "path": "/api/v1/auth/logout", "function": "api.auth_logout", "access": "user", "status": 200,
   "message": "Logout successful", "tag": "auth",
   "summary": "Revoke this session, or every session with all",
   "request": {
     "type": "object",
     "properties": {"all": {"type": "boolean", "default": false, "description": "revoke every session of the account"}}
   },
   "response": {
     "type": "object",
     "required": ["sessionsRevoked"],
     "properties": {"sessionsRevoked": {"type": "integer", "minimum": 0}}
   },
   "errors": [400]},
  {"method": "DELETE", "path": "/api/v1/auth/account", "function": "api.auth_delete_account", "access": "user",
   "status": 200, "message": "Account deactivated successfully", "tag": "auth",
   "summary": "Deactivate the caller's account",
   "response": {"type": "null"},
   "errors": [409]},
  {"method": "GET", "path": "/api/v1/users", "function": "api.users_list", "access": "admin", "status": 200,
   "message": "Users retrieved successfully", "flags": ["paginated"], "tag": "users",
   "summary": "List accounts",
   "query": {
     "page": {"$ref": "#/components/schemas/Page"},
     "limit": {"type": "integer", "minimum": 1, "maximum": 100, "default": 10, "description": "rows per page"},
     "search": {"type": "string", "minLength": 1, "maxLength": 100, "description": "a substring of the name or email"},
     "role": {"$ref": "#/components/schemas/Role"},
     "isActive": {"type": "boolean"},
     "sortBy": {"type": "string", "enum": ["createdAt", "updatedAt", "name", "email", "role"], "default": "createdAt"},
     "sortOrder": {"$ref": "#/components/schemas/SortOrder"}
   },
   "response": {
     "type": "object",
     "required": ["users", "pagination"],
     "properties": {
       "users": {"type": "array", "items": {"allOf": [
         {"$ref": "#/components/schemas/User"},
         {"type": "object", "required": ["_count"], "properties": {"_count": {"$ref": "#/components/schemas/Counts"}}}
       ]}},
       "pagination": {"$ref": "#/components/schemas/ListPagination"}
     }
   },
   "errors": [400]},
  {"method": "GET", "path": "/api/v1/users/stats", "function": "api.users_stats", "access": "admin", "status": 200,
   "message": "User statistics retrieved successfully", "tag": "users",
   "summary": "Account counts by role, state and age",
   "response": {
     "type": "object",
     "required": ["totalUsers", "activeUsers", "inactiveUsers", "adminUsers", "regularUsers", "byRole",
                  "newLast7Days", "newLast30Days"],
     "properties": {
       "totalUsers": {"type": "integer"},
       "activeUsers": {"type": "integer"},
       "inactiveUsers": {"type": "integer"},
       "adminUsers": {"type": "integer"},
       "regularUsers": {"type": "integer"},
       "byRole": {
         "type": "object",
         "required": ["USER", "ADMINISTRATOR"],
         "properties": {"USER": {"type": "integer"}, "ADMINISTRATOR": {"type": "integer"}}
       },
       "newLast7Days": {"type": "integer"},
       "newLast30Days": {"type": "integer"}
     }
   }},
  {"method": "POST", "path": "/api/v1/users/bulk", "function": "api.users_bulk", "access": "admin", "status": 200,
   "message": "Bulk action applied", "tag": "users",
   "summary": "Activate, deactivate, delete or set the role of many accounts, all or nothing",
   "request": {
     "type": "object",
     "required": ["action", "ids"],
     "properties": {
       "action": {"type": "string", "enum": ["activate", "deactivate", "delete", "set-role"]},
       "ids": {"type": "array", "minItems": 1, "maxItems": 1000, "items": {"type": "string", "format": "uuid"}},
       "role": {"$ref": "#/components/schemas/Role", "description": "required by set-role"}
     },
     "if": {"properties": {"action": {"const": "set-role"}}, "required": ["action"]},
     "then": {"properties": {"role": {"$ref": "#/components/schemas/Role"}}, "required": ["role"]}
   },
   "requestRequired": true,
   "response": {
     "type": "object",
     "required": ["action", "affected"],
     "properties": {
       "action": {"type": "string", "enum": ["activate", "deactivate", "delete", "set-role"]},
       "affected": {"type": "integer", "minimum": 0}
     }
   },
   "errors": [400, 404, 409]},
  {"method": "GET", "path": "/api/v1/users/:id", "function": "api.users_get", "access": "admin", "status": 200,
   "message": "User retrieved successfully", "tag": "users",
   "summary": "An account with its last login, live sessions and subscriptions",
   "response": {"allOf": [
     {"$ref": "#/components/schemas/User"},
     {"type": "object", "required": ["lastLoginAt", "activeSessions", "subscriptions", "_count"],
      "properties": {
        "lastLoginAt": {"type": ["string", "null"], "format": "date-time"},
        "activeSessions": {"type": "integer", "minimum": 0},
        "subscriptions": {
          "type": "array",
          "description": "the newest 100 (_count counts them all)",
          "items": {
            "type": "object",
            "required": ["id", "status", "expiresAt", "service"],
            "properties": {
              "id": {"type": "string", "format": "uuid"},
              "status": {"$ref": "#/components/schemas/SubscriptionStatus"},
              "expiresAt": {"type": "string", "format": "date-time", "description": "the end of the current period"},
              "service": {
                "type": "object",
                "required": ["id", "name", "displayName"],
                "properties": {"id": {"type": "string", "format": "uuid"}, "name": {"type": "string"},
                               "displayName": {"type": "string"}}
              }
            }
          }
        },
        "_count": {"$ref": "#/components/schemas/Counts"}
      }}
   ]},
   "errors": [404]},
  {"method": "POST", "path": "/api/v1/users", "function": "api.users_create", "access": "admin", "status": 201,
   "message": "User created successfully", "tag": "users",
   "summary": "Create an account of any role",
   "request": {
     "type": "object",
     "required": ["name", "email", "password"],
     "properties": {
       "name": {"type": "string", "minLength": 2, "maxLength": 100},
       "email": {"$ref": "#/components/schemas/Email"},
       "password": {"$ref": "#/components/schemas/Password"},
       "role": {"$ref": "#/components/schemas/Role", "default": "USER"},
       "isActive": {"type": "boolean", "default": true}
     }
   },
   "requestRequired": true,
   "response": {"$ref": "#/components/schemas/User"},
   "errors": [400, 409]},
  {"method": "PUT", "path": "/api/v1/users/:id", "function": "api.users_update", "access": "admin", "status": 200,
   "message": "User updated successfully", "tag": "users",
   "summary": "Change an account's name, email, role or state",
   "description": "An administrator cannot deactivate or demote themself (409). Deactivating revokes the account's sessions and cancels its subscriptions at period end.",
   "request": {
     "type": "object",
     "properties": {
       "name": {"type": "string", "minLength": 2, "maxLength": 100},
       "email": {"$ref": "#/components/schemas/Email"},
       "role": {"$ref": "#/components/schemas/Role"},
       "isActive": {"type": "boolean"}
     },
     "anyOf": [{"required": ["name"]}, {"required": ["email"]}, {"required": ["role"]}, {"required": ["isActive"]}]
   },
   "requestRequired": true,
   "response": {"$ref": "#/components/schemas/User"},
   "errors": [400, 404, 409]},
  {"method": "PATCH", "path": "/api/v1/users/:id/password", "function": "api.users_set_password", "access": "admin",
   "status": 200, "message": "User password changed successfully", "tag": "users",
   "summary": "Set an account's password (its sessions are revoked)",
   "request": {
     "type": "object",
     "required": ["newPassword"],
     "properties": {"newPassword": {"$ref": "#/components/schemas/Password"}}
   },
   "requestRequired": true,
   "response": {"$ref": "#/components/schemas/User"},
   "errors": [400, 404]},
  {"method": "PATCH", "path": "/api/v1/users/:id/toggle-status", "function": "api.users_toggle_status", "access": "admin",
   "status": 200, "message": "User status toggled successfully", "tag": "users",
   "summary": "Activate or deactivate an account",
   "response": {"$ref": "#/components/schemas/User"},
   "errors": [404, 409]},
  {"method": "DELETE", "path": "/api/v1/users/:id", "function": "api.users_delete", "access": "admin", "status": 200,
   "message": "User deleted successfully", "tag": "users",
   "summary": "Delete an account (soft: its history stays)",
   "response": {
     "type": "object",
     "required": ["id", "name", "email", "role"],
     "properties": {
       "id": {"type": "string", "format": "uuid"},
       "name": {"type": "string"},
       "email": {"type": "string", "format": "email"},
       "role": {"$ref": "#/components/schemas/Role"}
     }
   },
   "errors": [404, 409]}
]$routes$);

-- the service catalog (/services): the literal paths win over /services/:name
SELECT paas.routes_add($routes$[
  {"method": "GET", "path": "/api/v1/services", "function": "api.services_list", "access": "public", "status": 200,
   "message": "Active services retrieved successfully", "flags": ["paginated"], "tag": "services",
   "summary": "Active services, by display name",
   "query": {
     "page": {"$ref": "#/components/schemas/Page"},
     "limit": {"type": "integer", "minimum": 1, "maximum": 100, "default": 100, "description": "rows per page"},
     "search": {"type": "string", "minLength": 1, "maxLength": 100, "description": "a substring of the name, display name or description"},
     "category": {"$ref": "#/components/schemas/ServiceCategory"}
   },
   "response": {"type": "array", "items": {"$ref": "#/components/schemas/ServicePublic"}},
   "errors": [400]},
  {"method": "GET", "path": "/api/v1/services/categories", "function": "api.services_categories", "access": "public",
   "status": 200, "message": "Service categories retrieved successfully", "tag": "services",
   "summary": "Every category with its number of active services",
   "response": {
     "type": "array",
     "items": {
       "type": "object",
       "required": ["name", "displayName", "count"],
       "properties": {
         "name": {"$ref": "#/components/schemas/ServiceCategory"},
         "displayName": {"type": "string"},
         "count": {"type": "integer", "minimum": 0}
       }
     }
   }},
  {"method": "GET", "path": "/api/v1/services/admin", "function": "api.services_admin_list", "access": "admin",
   "status": 200, "message": "Services retrieved successfully", "flags": ["paginated"], "tag": "services",
   "summary": "Every service, active or not",
   "query": {
     "page": {"$ref": "#/components/schemas/Page"},
     "limit": {"type": "integer", "minimum": 1, "maximum": 100, "default": 10, "description": "rows per page"},
     "search": {"type": "string", "minLength": 1, "maxLength": 100, "description": "a substring of the name, display name or description"},
     "category": {"$ref": "#/components/schemas/ServiceCategory"},
     "status": {"type": "string", "enum": ["active", "inactive"]},
     "isActive": {"type": "boolean"},
     "sortBy": {"type": "string", "enum": ["createdAt", "updatedAt", "name", "displayName", "category", "monthlyPrice"],
                "default": "createdAt"},
     "sortOrder": {"$ref": "#/components/schemas/SortOrder"}
   },
   "response": {
     "type": "object",
     "required": ["services", "pagination"],
     "properties": {
       "services": {"type": "array", "items": {"allOf": [
         {"$ref": "#/components/schemas/Service"},
         {"type": "object", "required": ["_count"], "properties": {"_count": {"$ref": "#/components/schemas/Counts"}}}
       ]}},
       "pagination": {"$ref": "#/components/schemas/ListPagination"}
     }
   },
   "errors": [400]},
  {"method": "GET", "path": "/api/v1/services/admin/stats", "function": "api.services_admin_stats", "access": "admin",
   "status": 200, "message": "Service statistics retrieved successfully", "tag": "services",
   "summary": "Service counts by status and by category; subscription totals and the most subscribed services",
   "response": {
     "type": "object",
     "required": ["totalServices", "activeServices", "inactiveServices", "byStatus", "byCategory",
                  "totalSubscriptions", "activeSubscriptions", "popularServices"],
     "properties": {
       "totalServices": {"type": "integer"},
       "activeServices": {"type": "integer"},
       "inactiveServices": {"type": "integer"},
       "totalSubscriptions": {"type": "integer", "description": "every subscription, of any status"},
       "activeSubscriptions": {"type": "integer", "description": "subscriptions served and renewing: ACTIVE or GRACE"},
       "popularServices": {
         "type": "array",
         "maxItems": 5,
         "description": "the five live services with the most subscriptions (of any status), most first",
         "items": {
           "type": "object",
           "required": ["id", "name", "displayName", "_count"],
           "properties": {
             "id": {"type": "string", "format": "uuid"},
             "name": {"type": "string"},
             "displayName": {"type": "string"},
             "_count": {"$ref": "#/components/schemas/Counts"}
           }
         }
       },
       "byStatus": {
         "type": "object",
         "required": ["active", "inactive"],
         "properties": {"active": {"type": "integer"}, "inactive": {"type": "integer"}}
       },
       "byCategory": {
         "type": "array",
         "items": {
           "type": "object",
           "required": ["name", "displayName", "total", "active", "inactive"],
           "properties": {
             "name": {"$ref": "#/components/schemas/ServiceCategory"},
             "displayName": {"type": "string"},
             "total": {"type": "integer"},
             "active": {"type": "integer"},
             "inactive": {"type": "integer"}
           }
         }
       }
     }
   }},
  {"method": "GET", "path": "/api/v1/services/admin/:id", "function": "api.services_admin_get", "access": "admin",
   "status": 200, "message": "Service retrieved successfully", "tag": "services",
   "summary": "Every field of a service, active or not, with its subscriptions",
   "response": {"allOf": [
     {"$ref": "#/components/schemas/Service"},
     {"type": "object", "required": ["subscriptions", "_count"],
      "properties": {
        "subscriptions": {
          "type": "array",
          "description": "the newest 100 (_count counts them all)",
          "items": {
            "type": "object",
            "required": ["id", "status", "expiresAt", "user"],
            "properties": {
              "id": {"type": "string", "format": "uuid"},
              "status": {"$ref": "#/components/schemas/SubscriptionStatus"},
              "expiresAt": {"type": "string", "format": "date-time", "description": "the end of the current period"},
              "user": {"$ref": "#/components/schemas/UserRef"}
            }
          }
        },
        "_count": {"$ref": "#/components/schemas/Counts"}
      }}
   ]},
   "errors": [404]},
  {"method": "GET", "path": "/api/v1/services/:name", "function": "api.services_get_by_name", "access": "public",
   "status": 200, "message": "Service retrieved successfully", "tag": "services",
   "summary": "An active service by its slug",
   "response": {"$ref": "#/components/schemas/ServicePublic"},
   "errors": [404]},
  {"method": "POST", "path": "/api/v1/services", "function": "api.services_create", "access": "admin", "status": 201,
   "message": "Service created successfully", "tag": "services",
   "summary": "Add a service to the catalog",
   "request": {"allOf": [
     {"$ref": "#/components/schemas/ServiceInput"},
     {"type": "object", "required": ["name", "displayName", "description", "dockerImage"]}
   ]},
   "requestRequired": true,
   "response": {"$ref": "#/components/schemas/Service"},
   "errors": [400, 409]},
  {"method": "PUT", "path": "/api/v1/services/:id", "function": "api.services_update", "access": "admin", "status": 200,
   "message": "Service updated successfully", "tag": "services",
   "summary": "Change any field of a service but its slug",
   "request": {"allOf": [
     {"$ref": "#/components/schemas/ServiceInput"},
     {"type": "object", "minProperties": 1, "description": "at least one field; name, when given, must be the current slug"}
   ]},
   "requestRequired": true,
   "response": {"$ref": "#/components/schemas/Service"},
   "errors": [400, 404]},
  {"method": "PATCH", "path": "/api/v1/services/:id/toggle-status", "function": "api.services_toggle_status",
   "access": "admin", "status": 200, "message": "Service status toggled successfully", "tag": "services",
   "summary": "Activate or deactivate a service",
   "response": {"$ref": "#/components/schemas/Service"},
   "errors": [404]},
  {"method": "DELETE", "path": "/api/v1/services/:id", "function": "api.services_delete", "access": "admin", "status": 200,
   "message": "Service deleted successfully", "tag": "services",
   "summary": "Delete a service (refused while anything references it)",
   "response": {
     "type": "object",
     "required": ["id", "name", "displayName"],
     "properties": {
       "id": {"type": "string", "format": "uuid"},
       "name": {"type": "string"},
       "displayName": {"type": "string"}
     }
   },
   "errors": [404, 409]}
]$routes$);

-- worker nodes (/workers): the admin registry and the node routes (the node
-- or join token is checked by the function)
SELECT paas.routes_add($routes$[
  {"method": "GET", "path": "/api/v1/workers", "function": "api.workers_list", "access": "admin", "status": 200,
   "message": "Worker nodes retrieved successfully", "flags": ["paginated"], "tag": "workers",
   "summary": "List worker nodes",
   "query": {
     "page": {"$ref": "#/components/schemas/Page"},
     "limit": {"type": "integer", "minimum": 1, "maximum": 100, "default": 10, "description": "rows per page"},
     "status": {"$ref": "#/components/schemas/NodeStatus"},
     "isSchedulable": {"type": "boolean"},
     "isReady": {"type": "boolean"},
     "search": {"type": "string", "maxLength": 100, "description": "a substring of the name, hostname, address, CPU architecture or OS"},
     "sortBy": {"type": "string", "enum": ["name", "hostname", "cpuCores", "totalMemory", "status", "createdAt", "lastHeartbeat"],
                "default": "createdAt"},
     "sortOrder": {"$ref": "#/components/schemas/SortOrder"}
   },
   "response": {
     "type": "object",
     "required": ["workers", "pagination"],
     "properties": {
       "workers": {"type": "array", "items": {"$ref": "#/components/schemas/Node"}},
       "pagination": {"$ref": "#/components/schemas/Pagination"}
     }
   },
   "errors": [400]},
  {"method": "GET", "path": "/api/v1/workers/stats", "function": "api.workers_stats", "access": "admin", "status": 200,
   "message": "Worker node statistics retrieved successfully", "tag": "workers",
   "summary": "Node counts by status, capacity against allocation and usage",
   "response": {
     "type": "object",
     "required": ["totalNodes", "nodeStatus", "nodeCapabilities", "resources"],
     "properties": {
       "totalNodes": {"type": "integer"},
       "nodeStatus": {
         "type": "object",
         "required": ["active", "inactive", "maintenance", "pending", "notReady"],
         "properties": {
           "active": {"type": "integer"}, "inactive": {"type": "integer"}, "maintenance": {"type": "integer"},
           "pending": {"type": "integer"}, "notReady": {"type": "integer"}
         }
       },
       "nodeCapabilities": {
         "type": "object",
         "required": ["schedulable", "ready", "cordoned"],
         "properties": {"schedulable": {"type": "integer"}, "ready": {"type": "integer"}, "cordoned": {"type": "integer"}}
       },
       "resources": {
         "type": "object",
         "required": ["cpu", "memory", "storage", "pods"],
         "properties": {
           "cpu": {"$ref": "#/components/schemas/NodeResourceTotals"},
           "memory": {"$ref": "#/components/schemas/NodeResourceTotals"},
           "storage": {"$ref": "#/components/schemas/NodeResourceTotals"},
           "pods": {
             "type": "object",
             "required": ["maxTotal", "currentTotal", "utilization"],
             "properties": {
               "maxTotal": {"type": "integer"}, "currentTotal": {"type": "integer"}, "utilization": {"type": "number"}
             }
           }
         }
       }
     }
   }},
  {"method": "GET", "path": "/api/v1/workers/online", "function": "api.workers_online", "access": "admin", "status": 200,
   "message": "Online worker nodes retrieved successfully", "tag": "workers",
   "summary": "Nodes that are ACTIVE, ready and schedulable",
   "response": {"$ref": "#/components/schemas/NodeSet"}},
  {"method": "GET", "path": "/api/v1/workers/offline", "function": "api.workers_offline", "access": "admin", "status": 200,
   "message": "Offline worker nodes retrieved successfully", "tag": "workers",
   "summary": "Nodes that are not online",
   "response": {"$ref": "#/components/schemas/NodeSet"}},
  {"method": "GET", "path": "/api/v1/workers/join-tokens", "function": "api.workers_join_tokens_list", "access": "admin",
   "status": 200, "message": "Join tokens retrieved successfully", "tag": "workers",
   "summary": "Cluster join tokens (without their secrets)",
   "response": {
     "type": "object",
     "required": ["tokens"],
     "properties": {"tokens": {"type": "array", "items": {"$ref": "#/components/schemas/JoinToken"}}}
   }},
  {"method": "POST", "path": "/api/v1/workers/join-tokens", "function": "api.workers_join_tokens_create",
   "access": "admin", "status": 201, "message": "Join token created successfully", "tag": "workers",
   "summary": "Create a random join token (its secret is shown once)",
   "request": {
     "type": "object",
     "properties": {
       "note": {"type": "string", "maxLength": 200},
       "expiresInHours": {"type": "integer", "minimum": 1, "maximum": 8784, "description": "no expiry when absent"}
     }
   },
   "response": {"allOf": [
     {"$ref": "#/components/schemas/JoinToken"},
     {"type": "object", "required": ["token"], "properties": {"token": {"type": "string", "description": "the secret"}}}
   ]},
   "errors": [400]},
  {"method": "DELETE", "path": "/api/v1/workers/join-tokens/:tokenId", "function": "api.workers_join_tokens_revoke",
   "access": "admin", "status": 200, "message": "Join token revoked successfully", "tag": "workers",
   "summary": "Revoke a join token (registered nodes keep working)",
   "response": {"$ref": "#/components/schemas/JoinToken"},
   "errors": [404]},
  {"method": "GET", "path": "/api/v1/workers/:nodeId", "function": "api.workers_get", "access": "admin", "status": 200,
   "message": "Worker node retrieved successfully", "tag": "workers",
   "summary": "A node, by id or name",
   "response": {"$ref": "#/components/schemas/Node"},
   "errors": [404]},
  {"method": "GET", "path": "/api/v1/workers/:nodeId/transitions", "function": "api.workers_transitions",
   "access": "admin", "status": 200, "message": "Worker node transitions retrieved successfully", "tag": "workers",
   "summary": "A node's audit trail, newest first",
   "query": {"limit": {"type": "integer", "minimum": 1, "maximum": 500, "default": 50, "description": "how many transitions"}},
   "response": {
     "type": "object",
     "required": ["node", "transitions"],
     "properties": {
       "node": {
         "type": "object",
         "required": ["id", "name", "status"],
         "properties": {
           "id": {"type": "string", "format": "uuid"},
           "name": {"type": "string"},
           "status": {"$ref": "#/components/schemas/NodeStatus"}
         }
       },
       "transitions": {
         "type": "array",
         "items": {
           "type": "object",
           "required": ["from", "to", "event", "reason", "actor", "at"],
           "properties": {
             "from": {"type": ["string", "null"]},
             "to": {"type": "string"},
             "event": {"type": "string"},
             "reason": {"type": ["string", "null"]},
             "actor": {"type": "string", "description": "node, monitor, admin:<id> or dba:<role>"},
             "at": {"type": "string", "format": "date-time"}
           }
         }
       }
     }
   },
   "errors": [400, 404]},
  {"method": "POST", "path": "/api/v1/workers", "function": "api.workers_create", "access": "admin", "status": 201,
   "message": "Worker node created successfully", "tag": "workers",
   "summary": "Add a node to the registry (it gets a token by registering)",
   "request": {"allOf": [
     {"$ref": "#/components/schemas/NodeSpec"},
     {
       "type": "object",
       "required": ["name", "hostname", "ipAddress", "cpuCores", "cpuArchitecture", "totalMemory", "totalStorage"],
       "properties": {
         "status": {"$ref": "#/components/schemas/NodeStatus", "default": "PENDING"},
         "isReady": {"type": "boolean", "default": false},
         "isSchedulable": {"type": "boolean", "default": true}
       }
     }
   ]},
   "requestRequired": true,
   "response": {"$ref": "#/components/schemas/Node"},
   "errors": [400, 409]},
  {"method": "PUT", "path": "/api/v1/workers/:nodeId", "function": "api.workers_update", "access": "admin", "status": 200,
   "message": "Worker node updated successfully", "tag": "workers",
   "summary": "Change a node's fields (status and isSchedulable go through the status machine)",
   "request": {"allOf": [
     {"$ref": "#/components/schemas/NodeSpec"},
     {
       "type": "object",
       "minProperties": 1,
       "properties": {
         "status": {"$ref": "#/components/schemas/NodeStatus"},
         "isReady": {"type": "boolean"},
         "isSchedulable": {"type": "boolean"}
       }
     }
   ]},
   "requestRequired": true,
   "response": {"$ref": "#/components/schemas/Node"},
   "errors": [400, 404, 409]},
  {"method": "DELETE", "path": "/api/v1/workers/:nodeId", "function": "api.workers_delete", "access": "admin", "status": 200,
   "message": "Worker node deleted successfully", "tag": "workers",
   "summary": "Remove a node (its token stops working; the audit stays)",
   "response": {
     "type": "object",
     "required": ["id", "name", "status", "hostname", "ipAddress"],
     "properties": {
       "id": {"type": "string", "format": "uuid"},
       "name": {"type": "string"},
       "status": {"$ref": "#/components/schemas/NodeStatus"},
       "hostname": {"type": "string"},
       "ipAddress": {"type": "string"}
     }
   },
   "errors": [404]},
  {"method": "PATCH", "path": "/api/v1/workers/:nodeId/schedulable", "function": "api.workers_set_schedulable",
   "access": "admin", "status": 200, "message": "Worker node schedulable status updated successfully", "tag": "workers",
   "summary": "Cordon or uncordon a node",
   "description": "Sets isSchedulable to the given value (not a toggle). schedulable (or isSchedulable) is required: a request without it answers 400, where the original answered 200 and changed nothing. Uncordoning an INACTIVE or MAINTENANCE node is refused (409): activate it first; a cordon is kept across status changes and re-registrations. For a node the Kubernetes API knows (source kubernetes), the Node's spec.unschedulable is patched in the API first, as kubectl cordon / uncordon do, and recorded after: when the API refuses or does not answer (within paas.k8s_timeout, at most 10 s) the answer is 502 CLUSTER_ERROR with the API's status, reason and message in details, and nothing changes. An uncordon ends a running drain (cancelled).",
   "request": {
     "type": "object",
     "properties": {
       "schedulable": {"type": "boolean"},
       "isSchedulable": {"type": "boolean", "description": "the same as schedulable (the original's name)"},
       "reason": {"type": "string", "maxLength": 500}
     },
     "anyOf": [{"required": ["schedulable"]}, {"required": ["isSchedulable"]}]
   },
   "requestRequired": true,
   "response": {
     "type": "object",
     "required": ["id", "name", "isSchedulable", "unschedulable", "isReady", "status", "updatedAt"],
     "properties": {
       "id": {"type": "string", "format": "uuid"},
       "name": {"type": "string"},
       "isSchedulable": {"type": "boolean"},
       "unschedulable": {"type": "boolean"},
       "isReady": {"type": "boolean"},
       "status": {"$ref": "#/components/schemas/NodeStatus"},
       "updatedAt": {"type": "string", "format": "date-time"}
     }
   },
   "errors": [400, 404, 409, 502]},
  {"method": "PATCH", "path": "/api/v1/workers/:nodeId/status", "function": "api.workers_set_status", "access": "admin",
   "status": 200, "message": "Worker node status updated successfully", "tag": "workers",
   "summary": "Set a node's status (any status, as in the original)",
   "description": "Sets the node's status. As in the original, an administrator may set any status from any status, and the same one again (an idempotent PATCH); nothing is refused, and every move is audited (GET /workers/:nodeId/transitions). A move that a node's own reports or the health monitor undo is allowed and says here what undoes it; keep a node out of scheduling with MAINTENANCE.\n\n| status set | isReady | schedulable | what moves it next |\n|---|---|---|---|\n| ACTIVE | true, lastHealthCheck now | yes, unless cordoned | the monitor: NOT_READY after paas.node_grace_period without a heartbeat, INACTIVE after paas.node_offline_after; a not-ready heartbeat: NOT_READY |\n| NOT_READY | false | no | a ready heartbeat: ACTIVE; silence for paas.node_offline_after: INACTIVE |\n| INACTIVE | false | no | a heartbeat: ACTIVE (not ready: NOT_READY) |\n| PENDING | unchanged | no | a heartbeat or registration: ACTIVE (not ready: NOT_READY); the monitor never watches PENDING |\n| MAINTENANCE | unchanged | no | only an administrator: heartbeats and registrations leave it there |\n\nEvery status may be set from PENDING, ACTIVE, NOT_READY, INACTIVE and MAINTENANCE alike.\n\nFor a node the Kubernetes API knows: MAINTENANCE cordons the Node in the API (first: a refusal answers 502 CLUSTER_ERROR and changes nothing) and starts a drain of its pods (GET /workers/:nodeId/drain, timeout paas.node_drain_timeout); leaving MAINTENANCE ends that drain and uncordons the node in the API when the maintenance cordoned it (not when the new status is INACTIVE, which keeps the cordon).",
   "request": {
     "type": "object",
     "required": ["status"],
     "properties": {
       "status": {"$ref": "#/components/schemas/NodeStatus"},
       "reason": {"type": "string", "maxLength": 500}
     }
   },
   "requestRequired": true,
   "response": {
     "type": "object",
     "required": ["id", "name", "status", "previousStatus", "isReady", "isSchedulable", "updatedAt"],
     "properties": {
       "id": {"type": "string", "format": "uuid"},
       "name": {"type": "string"},
       "status": {"$ref": "#/components/schemas/NodeStatus"},
       "previousStatus": {"$ref": "#/components/schemas/NodeStatus"},
       "isReady": {"type": "boolean"},
       "isSchedulable": {"type": "boolean"},
       "updatedAt": {"type": "string", "format": "date-time"},
       "drain": {"description": "the node's live drain (MAINTENANCE of a node the Kubernetes API knows), else null",
                 "oneOf": [{"$ref": "#/components/schemas/NodeDrain"}, {"type": "null"}]}
     }
   },
   "errors": [400, 404, 502]},
  {"method": "POST", "path": "/api/v1/workers/register", "function": "api.workers_register", "access": "node",
   "status": 201, "message": "Worker node registered successfully", "tag": "workers",
   "otherReplies": {"200": "Worker node information updated successfully"},
   "summary": "Register (or re-register) a node with a join token; returns its node token",
   "description": "A join token registers a new node; the node's own token (or, for a Kubernetes Node object, the uid it registered with) re-registers it, and every registration rotates the node token. A new node answers 201 \"Worker node registered successfully\", a re-registration 200 \"Worker node information updated successfully\" (as the original; the function sets response.status); data.created tells them apart too.",
   "security": [{"joinToken": []}, {}],
   "request": {"anyOf": [
     {"$ref": "#/components/schemas/NodeRegistration"},
     {"$ref": "#/components/schemas/KubernetesNode"},
     {"$ref": "#/components/schemas/KubernetesNodeList"}
   ]},
   "requestRequired": true,
   "response": {
     "type": "object",
     "required": ["id", "name", "status", "isReady", "isSchedulable", "created", "nodeToken", "heartbeatIntervalSeconds",
                  "gracePeriodSeconds"],
     "properties": {
       "id": {"type": "string", "format": "uuid"},
       "name": {"type": "string"},
       "status": {"$ref": "#/components/schemas/NodeStatus"},
       "isReady": {"type": "boolean"},
       "isSchedulable": {"type": "boolean"},
       "created": {"type": "boolean", "description": "false when the node re-registered"},
       "nodeToken": {"type": "string", "description": "the bearer token of the node's heartbeat and resource calls (a new one at every registration)"},
       "heartbeatIntervalSeconds": {"type": "integer"},
       "gracePeriodSeconds": {"type": "integer"}
     }
   },
   "errors": [400, 401, 409]},
  {"method": "PUT", "path": "/api/v1/workers/:nodeName/heartbeat", "function": "api.workers_heartbeat", "access": "node",
   "status": 200, "message": "Worker node heartbeat updated successfully", "flags": ["batch"], "tag": "workers",
   "summary": "Heartbeat of the calling node (the server's clock counts)",
   "request": {"$ref": "#/components/schemas/NodeHeartbeat"},
   "response": {"$ref": "#/components/schemas/HeartbeatReply"},
   "errors": [400, 401, 403]},
  {"method": "PATCH", "path": "/api/v1/workers/:nodeId/heartbeat", "function": "api.workers_heartbeat", "access": "node",
   "status": 200, "message": "Worker node heartbeat updated successfully", "flags": ["batch"], "tag": "workers",
   "operationId": "workersHeartbeatPatch",
   "summary": "Heartbeat of the calling node (PATCH form)",
   "request": {"$ref": "#/components/schemas/NodeHeartbeat"},
   "response": {"$ref": "#/components/schemas/HeartbeatReply"},
   "errors": [400, 401, 403]},
  {"method": "PATCH", "path": "/api/v1/workers/:nodeId/resources", "function": "api.workers_resources", "access": "node",
   "status": 200, "message": "Worker node resources updated successfully", "tag": "workers",
   "summary": "Allocation and usage report of the calling node (no liveness effect)",
   "request": {"allOf": [{"$ref": "#/components/schemas/NodeReport"}, {"type": "object", "minProperties": 1}]},
   "requestRequired": true,
   "response": {
     "type": "object",
     "required": ["id", "name", "cpuCores", "totalMemory", "totalStorage", "allocatedCPU", "allocatedMemory",
                  "allocatedStorage", "currentPods", "maxPods", "allocation", "usage"],
     "properties": {
       "id": {"type": "string", "format": "uuid"},
       "name": {"type": "string"},
       "cpuCores": {"type": "integer"},
       "totalMemory": {"type": "string"},
       "totalStorage": {"type": "string"},
       "allocatedCPU": {"type": "string"},
       "allocatedMemory": {"type": "string"},
       "allocatedStorage": {"type": "string"},
       "currentPods": {"type": "integer"},
       "maxPods": {"type": "integer"},
       "allocation": {"$ref": "#/components/schemas/NodeAllocation"},
       "usage": {"$ref": "#/components/schemas/NodeUsage"}
     }
   },
   "errors": [400, 401, 403]},
  {"method": "POST", "path": "/api/v1/workers/:nodeId/drain", "function": "api.workers_drain", "access": "admin",
   "status": 202, "message": "Worker node drain started", "tag": "workers",
   "summary": "Cordon a node in the cluster and evict its pods (Eviction API)",
   "description": "For a node the Kubernetes API knows: cordons it in the API (spec.unschedulable; a refusal of the API answers 502 CLUSTER_ERROR and changes nothing), records it, and starts a drain that the background worker \"paas node drain\" performs: the node's pods are evicted through policy/v1 Eviction, as kubectl drain --ignore-daemonsets does (DaemonSet-managed and mirror pods stay). An eviction a PodDisruptionBudget forbids (429 from the API) is retried every 5 s and shown as blocked in remaining; past timeoutSeconds (default paas.node_drain_timeout, 600) the drain ends incomplete with the pods still there listed. The answer is the drain; follow it at statusUrl (GET /workers/:nodeId/drain). A drain already running is returned as it is. A node only agents report (or no API configured) answers 409.",
   "request": {
     "type": "object",
     "properties": {
       "timeoutSeconds": {"type": "integer", "minimum": 1, "maximum": 86400},
       "reason": {"type": "string", "maxLength": 500}
     }
   },
   "response": {"$ref": "#/components/schemas/NodeDrain"},
   "errors": [400, 404, 409, 502]},
  {"method": "GET", "path": "/api/v1/workers/:nodeId/drain", "function": "api.workers_drain_get", "access": "admin",
   "status": 200, "message": "Worker node drain retrieved successfully", "tag": "workers",
   "summary": "The node's latest drain and its progress",
   "description": "state: pending, running (passes every second; 5 s after a refused eviction), complete (only DaemonSet-managed and mirror pods left), incomplete (timed out: remaining lists the pods still there), cancelled (the node was uncordoned or left MAINTENANCE). 404 when the node was never drained.",
   "response": {"$ref": "#/components/schemas/NodeDrain"},
   "errors": [404]}
]$routes$);

-- ledger: the owner's balance and admin billing
SELECT paas.routes_add($routes$[
  {"method": "GET", "path": "/api/v1/billing/balance", "function": "api.billing_balance", "access": "user", "status": 200,
   "message": "Balance retrieved successfully", "flags": ["batch"], "tag": "billing",
   "summary": "The caller's wallet balance",
   "response": {
     "type": "object",
     "required": ["balance", "currency", "accountId", "lastUpdated", "user"],
     "properties": {
       "balance": {"$ref": "#/components/schemas/Amount"},
       "currency": {"const": "IDR"},
       "accountId": {"type": ["integer", "null"], "description": "the wallet's ledger account (null until first used)"},
       "lastUpdated": {"type": "string", "format": "date-time"},
       "user": {"$ref": "#/components/schemas/UserRef"}
     }
   }},
  {"method": "GET", "path": "/api/v1/admin/billing/overview", "function": "api.admin_billing_overview",
   "access": "admin", "status": 200, "message": "Billing overview retrieved successfully", "tag": "admin-billing",
   "summary": "Wallet totals, platform balances, revenue, entry counts, adjustments",
   "response": {
     "type": "object",
     "required": ["currency", "wallets", "platformAccounts", "revenue", "entries", "adjustments"],
     "properties": {
       "currency": {"const": "IDR"},
       "wallets": {
         "type": "object",
         "required": ["count", "funded", "totalBalance"],
         "properties": {"count": {"type": "integer"}, "funded": {"type": "integer"}, "totalBalance": {"type": "integer"}}
       },
       "platformAccounts": {
         "type": ["object", "null"],
         "description": "by account code (gateway_clearing, revenue, adjustments, refunds)",
         "additionalProperties": {
           "type": "object",
           "required": ["id", "balance"],
           "properties": {"id": {"type": "integer"}, "balance": {"type": ["integer", "null"]}}
         }
       },
       "revenue": {
         "type": "object",
         "required": ["today", "last30Days", "total"],
         "properties": {"today": {"type": "integer"}, "last30Days": {"type": "integer"}, "total": {"type": "integer"}}
       },
       "entries": {
         "type": "object",
         "required": ["total", "last24Hours", "byKindLast24Hours"],
         "properties": {
           "total": {"type": "integer"},
           "last24Hours": {"type": "integer"},
           "byKindLast24Hours": {"type": "object", "additionalProperties": {"type": "integer"}}
         }
       },
       "adjustments": {
         "type": "object",
         "required": ["count", "credited", "debited"],
         "properties": {"count": {"type": "integer"}, "credited": {"type": "integer"}, "debited": {"type": "integer"}}
       }
     }
   }},
  {"method": "GET", "path": "/api/v1/admin/billing/ledger", "function": "api.admin_billing_ledger", "access": "admin",
   "status": 200, "message": "Ledger entries retrieved successfully", "flags": ["paginated"], "tag": "admin-billing",
   "summary": "Ledger entries with their postings",
   "query": {
     "page": {"$ref": "#/components/schemas/Page"},
     "limit": {"type": "integer", "minimum": 1, "maximum": 100, "default": 20, "description": "rows per page"},
     "kind": {"type": "string", "minLength": 1, "maxLength": 63, "description": "only entries of this kind (topup, subscription_charge, adjustment, ...)"},
     "userId": {"type": "string", "format": "uuid", "description": "only entries touching this user's wallet"},
     "accountId": {"type": "integer", "minimum": 1, "description": "only entries touching this ledger account"},
     "startDate": {"$ref": "#/components/schemas/DateFilter", "description": "from this date (midnight UTC) or instant"},
     "endDate": {"$ref": "#/components/schemas/DateFilter", "description": "up to this date (the whole day) or instant"},
     "sortOrder": {"$ref": "#/components/schemas/SortOrder"}
   },
   "response": {"type": "array", "items": {"$ref": "#/components/schemas/LedgerEntry"}},
   "errors": [400]},
  {"method": "GET", "path": "/api/v1/admin/billing/users/:userId/ledger", "function": "api.admin_billing_user_ledger",
   "access": "admin", "status": 200, "message": "User ledger retrieved successfully", "flags": ["paginated"],
   "tag": "admin-billing",
   "summary": "A user's wallet postings, newest first",
   "query": {
     "page": {"$ref": "#/components/schemas/Page"},
     "limit": {"type": "integer", "minimum": 1, "maximum": 100, "default": 20, "description": "rows per page"},
     "kind": {"type": "string", "minLength": 1, "maxLength": 63, "description": "only postings of entries of this kind"},
     "startDate": {"$ref": "#/components/schemas/DateFilter", "description": "from this date (midnight UTC) or instant"},
     "endDate": {"$ref": "#/components/schemas/DateFilter", "description": "up to this date (the whole day) or instant"}
   },
   "response": {
     "type": "object",
     "required": ["user", "account", "postings"],
     "properties": {
       "user": {"$ref": "#/components/schemas/UserRef"},
       "account": {
         "type": "object",
         "required": ["id", "balance", "currency"],
         "properties": {
           "id": {"type": ["integer", "null"]},
           "balance": {"$ref": "#/components/schemas/Amount"},
           "currency": {"const": "IDR"}
         }
       },
       "postings": {
         "type": "array",
         "items": {
           "type": "object",
           "required": ["postingId", "entryId", "kind", "memo", "ref", "amount", "balanceBefore", "balanceAfter", "createdAt"],
           "properties": {
             "postingId": {"type": "integer"},
             "entryId": {"type": "integer"},
             "kind": {"type": "string"},
             "memo": {"type": "string"},
             "ref": {"description": "what the entry is about (a JSON object), or null"},
             "amount": {"$ref": "#/components/schemas/Amount"},
             "balanceBefore": {"type": "integer"},
             "balanceAfter": {"type": "integer"},
             "createdAt": {"type": "string", "format": "date-time"}
           }
         }
       }
     }
   },
   "errors": [400, 404]},
  {"method": "POST", "path": "/api/v1/admin/billing/adjustments", "function": "api.admin_billing_adjust",
   "access": "admin", "status": 201, "message": "Adjustment posted successfully", "flags": ["money"], "tag": "admin-billing",
   "summary": "Credit or debit a wallet by hand (audited)",
   "headers": {"Idempotency-Key": {"$ref": "#/components/schemas/IdempotencyKey",
                                   "description": "a retry with the same key (per administrator) answers the first adjustment"}},
   "request": {
     "type": "object",
     "required": ["userId", "amount", "reason"],
     "properties": {
       "userId": {"type": "string", "format": "uuid"},
       "amount": {"type": "integer", "minimum": -1000000000000, "maximum": 1000000000000, "not": {"const": 0},
                  "description": "IDR: positive credits the wallet, negative debits it"},
       "reason": {"type": "string", "minLength": 3, "maxLength": 500}
     }
   },
   "requestRequired": true,
   "response": {
     "type": "object",
     "required": ["id", "entryId", "userId", "adminId", "amount", "currency", "reason", "balanceBefore", "balanceAfter",
                  "replayed", "createdAt"],
     "properties": {
       "id": {"type": "string", "format": "uuid"},
       "entryId": {"type": "integer"},
       "userId": {"type": "string", "format": "uuid"},
       "adminId": {"type": ["string", "null"], "format": "uuid", "description": "null when a DBA posted it"},
       "amount": {"$ref": "#/components/schemas/Amount"},
       "currency": {"const": "IDR"},
       "reason": {"type": "string"},
       "balanceBefore": {"type": "integer"},
       "balanceAfter": {"type": "integer"},
       "replayed": {"type": "boolean"},
       "createdAt": {"type": "string", "format": "date-time"}
     }
   },
   "errors": [400, 402, 404, 409]}
]$routes$);

-- billing: Midtrans top-ups, the transaction feed, invoices, dashboards
-- (another user's id answers 404)
SELECT paas.routes_add($routes$[
  {"method": "POST", "path": "/api/v1/billing/topup", "function": "api.billing_topup", "access": "user", "status": 201,
   "message": "Top-up transaction created successfully", "flags": ["snap", "money"], "tag": "billing",
   "summary": "Open a top-up and its Midtrans Snap payment link",
   "headers": {"Idempotency-Key": {"$ref": "#/components/schemas/IdempotencyKey",
                                   "description": "a retry with the same key answers the same top-up"}},
   "request": {
     "type": "object",
     "required": ["amount"],
     "properties": {
       "amount": {"type": "integer", "minimum": 10000, "maximum": 10000000, "description": "IDR, a JSON number"},
       "currency": {"type": "string", "enum": ["IDR"], "default": "IDR"}
     }
   },
   "requestRequired": true,
   "response": {"$ref": "#/components/schemas/TopUp"},
   "errors": [400, 409]},
  {"method": "GET", "path": "/api/v1/billing/topup", "function": "api.billing_topups", "access": "user", "status": 200,
   "message": "Top-up transactions retrieved successfully", "flags": ["paginated"], "tag": "billing",
   "summary": "The caller's top-ups, newest first",
   "query": {
     "page": {"$ref": "#/components/schemas/Page"},
     "limit": {"type": "integer", "minimum": 1, "maximum": 100, "default": 20, "description": "rows per page"},
     "status": {"type": "string", "enum": ["PENDING", "PAID", "FAILED", "EXPIRED", "CANCELLED", "REFUNDED"]}
   },
   "response": {
     "type": "object",
     "required": ["transactions", "pagination"],
     "properties": {
       "transactions": {"type": "array", "items": {"$ref": "#/components/schemas/TopUp"}},
       "pagination": {"$ref": "#/components/schemas/Pagination"}
     }
   },
   "errors": [400]},
  {"method": "GET", "path": "/api/v1/billing/topup/:id", "function": "api.billing_topup_get", "access": "user",
   "status": 200, "message": "Top-up details retrieved successfully", "tag": "billing",
   "summary": "One of the caller's top-ups",
   "response": {"$ref": "#/components/schemas/TopUp"},
   "errors": [404]},
  {"method": "GET", "path": "/api/v1/billing/transactions", "function": "api.billing_transactions", "access": "user",
   "status": 200, "message": "Transactions retrieved successfully", "flags": ["paginated"], "tag": "billing",
   "summary": "Every money movement of the caller's wallet, newest first",
   "query": {
     "page": {"$ref": "#/components/schemas/Page"},
     "limit": {"type": "integer", "minimum": 1, "maximum": 100, "default": 20, "description": "rows per page"},
     "type": {"type": "string", "enum": ["TOPUP", "SERVICE_PURCHASE", "REFUND", "ADJUSTMENT"]},
     "status": {"type": "string", "enum": ["PENDING", "SUCCESS", "FAILED", "CANCELLED", "EXPIRED", "REFUNDED"]},
     "startDate": {"$ref": "#/components/schemas/DateFilter", "description": "from this date or instant"},
     "endDate": {"$ref": "#/components/schemas/DateFilter", "description": "up to this date (the whole day) or instant"}
   },
   "response": {
     "type": "object",
     "required": ["transactions", "pagination"],
     "properties": {
       "transactions": {"type": "array", "items": {"$ref": "#/components/schemas/Transaction"}},
       "pagination": {"$ref": "#/components/schemas/Pagination"}
     }
   },
   "errors": [400]},
  {"method": "GET", "path": "/api/v1/billing/transactions/:id", "function": "api.billing_transaction_get",
   "access": "user", "status": 200, "message": "Transaction details retrieved successfully", "tag": "billing",
   "summary": "One movement of the caller's wallet",
   "pathParams": {"id": {"type": "string", "description": "the id of a movement of the feed (opaque)"}},
   "response": {"allOf": [
     {"$ref": "#/components/schemas/Transaction"},
     {"type": "object", "required": ["user"], "properties": {"user": {"$ref": "#/components/schemas/UserRef"}}}
   ]},
   "errors": [404]},
  {"method": "POST", "path": "/api/v1/billing/transactions/:id/pay", "function": "api.billing_transaction_pay",
   "access": "user", "status": 200, "message": "Payment retry successful", "flags": ["snap", "money"], "tag": "billing",
   "summary": "The live payment link of a pending top-up, or a new one",
   "pathParams": {"id": {"type": "string", "format": "uuid", "description": "the top-up's id"}},
   "response": {"allOf": [
     {"$ref": "#/components/schemas/TopUp"},
     {"type": "object", "required": ["message"],
      "properties": {"message": {"const": "Use the snapToken to reopen Midtrans payment window"}}}
   ]},
   "errors": [404, 409]},
  {"method": "GET", "path": "/api/v1/billing/invoices", "function": "api.billing_invoices", "access": "user",
   "status": 200, "message": "Invoices retrieved successfully", "flags": ["paginated"], "tag": "billing",
   "summary": "The caller's invoices and credit notes, newest first",
   "query": {
     "page": {"$ref": "#/components/schemas/Page"},
     "limit": {"type": "integer", "minimum": 1, "maximum": 100, "default": 20, "description": "rows per page"},
     "type": {"type": "string", "enum": ["TOPUP", "SUBSCRIPTION", "CREDIT_NOTE"]},
     "status": {"$ref": "#/components/schemas/InvoiceStatus"},
     "startDate": {"$ref": "#/components/schemas/DateFilter", "description": "issued from this date or instant"},
     "endDate": {"$ref": "#/components/schemas/DateFilter", "description": "issued up to this date (the whole day) or instant"}
   },
   "response": {
     "type": "object",
     "required": ["invoices", "pagination"],
     "properties": {
       "invoices": {"type": "array", "items": {"allOf": [{"$ref": "#/components/schemas/Invoice"},
                                                           {"$ref": "#/components/schemas/InvoiceLinks"}]}},
       "pagination": {"$ref": "#/components/schemas/Pagination"}
     }
   },
   "errors": [400]},
  {"method": "GET", "path": "/api/v1/billing/invoices/:id", "function": "api.billing_invoice_get", "access": "user",
   "status": 200, "message": "Invoice details retrieved successfully", "tag": "billing",
   "summary": "One of the caller's invoices",
   "response": {"$ref": "#/components/schemas/InvoiceDetail"},
   "errors": [404]},
  {"method": "GET", "path": "/api/v1/billing/invoices/:id/pdf", "function": "api.billing_invoice_pdf", "access": "user",
   "status": 200, "message": "Invoice PDF", "flags": ["pdf"], "tag": "billing",
   "summary": "One of the caller's invoices as a PDF",
   "description": "The invoice rendered as a PDF document (the function returns the invoice, httpd renders it); counts the download.",
   "responseType": "pdf",
   "errors": [404]},
  {"method": "GET", "path": "/api/v1/billing/dashboard/overview", "function": "api.billing_dashboard_overview",
   "access": "user", "status": 200, "message": "Dashboard overview retrieved successfully", "tag": "billing",
   "summary": "Balance, pending top-ups and the latest movements",
   "response": {
     "type": "object",
     "required": ["balance", "pendingTopUps", "recentTransactions", "summary"],
     "properties": {
       "balance": {
         "type": "object",
         "required": ["current", "currency", "lastUpdated"],
         "properties": {
           "current": {"$ref": "#/components/schemas/Amount"},
           "currency": {"const": "IDR"},
           "lastUpdated": {"type": "string", "format": "date-time"}
         }
       },
       "pendingTopUps": {
         "type": "object",
         "required": ["count", "totalAmount", "transactions"],
         "properties": {
           "count": {"type": "integer"},
           "totalAmount": {"$ref": "#/components/schemas/Amount"},
           "transactions": {"type": "array", "maxItems": 10, "items": {"$ref": "#/components/schemas/TopUp"}}
         }
       },
       "recentTransactions": {"type": "array", "maxItems": 5, "items": {"$ref": "#/components/schemas/Transaction"}},
       "summary": {
         "type": "object",
         "required": ["availableBalance", "pendingAmount", "totalTransactions"],
         "properties": {
           "availableBalance": {"$ref": "#/components/schemas/Amount"},
           "pendingAmount": {"$ref": "#/components/schemas/Amount"},
           "totalTransactions": {"type": "integer"}
         }
       }
     }
   }},
  {"method": "GET", "path": "/api/v1/billing/dashboard/analytics", "function": "api.billing_dashboard_analytics",
   "access": "user", "status": 200, "message": "Billing analytics retrieved successfully", "tag": "billing",
   "summary": "Totals by type and status, and by day",
   "query": {
     "startDate": {"$ref": "#/components/schemas/DateFilter", "description": "from this date or instant"},
     "endDate": {"$ref": "#/components/schemas/DateFilter", "description": "up to this date (the whole day) or instant"}
   },
   "response": {
     "type": "object",
     "required": ["period", "analytics", "transactionBreakdown", "byType", "byDay"],
     "properties": {
       "period": {
         "type": "object",
         "properties": {"startDate": {"type": "string"}, "endDate": {"type": "string"}}
       },
       "analytics": {
         "type": "object",
         "required": ["totalTopUps", "totalSpending", "transactionCount", "averageTopUp", "averageSpending"],
         "properties": {
           "totalTopUps": {"type": "integer"},
           "totalSpending": {"type": "integer"},
           "transactionCount": {"type": "integer"},
           "averageTopUp": {"type": "integer"},
           "averageSpending": {"type": "integer"}
         }
       },
       "transactionBreakdown": {
         "type": "object",
         "required": ["topUps", "servicePurchases", "pending", "failed"],
         "properties": {
           "topUps": {"type": "integer"}, "servicePurchases": {"type": "integer"},
           "pending": {"type": "integer"}, "failed": {"type": "integer"}
         }
       },
       "byType": {
         "type": "array",
         "items": {
           "type": "object",
           "required": ["type", "status", "count", "amount"],
           "properties": {
             "type": {"type": "string"}, "status": {"type": "string"},
             "count": {"type": "integer"}, "amount": {"type": "integer"}
           }
         }
       },
       "byDay": {
         "type": "array",
         "items": {
           "type": "object",
           "required": ["date", "type", "count", "amount"],
           "properties": {
             "date": {"type": "string", "format": "date"}, "type": {"type": "string"},
             "count": {"type": "integer"}, "amount": {"type": "integer"}
           }
         }
       }
     }
   },
   "errors": [400]},
  {"method": "POST", "path": "/api/v1/billing/webhooks/midtrans", "function": "api.billing_webhook_midtrans",
   "access": "public", "status": 200, "message": "Webhook processed successfully", "tag": "billing",
   "summary": "Midtrans payment notification (verified by its signature)",
   "request": {"$ref": "#/components/schemas/MidtransNotification"},
   "requestRequired": true,
   "response": {
     "type": "object",
     "required": ["orderId", "status", "outcome", "processedAt"],
     "properties": {
       "orderId": {"type": "string"},
       "status": {"type": ["string", "null"], "description": "the top-up's status after the notification"},
       "outcome": {"type": "string", "description": "what was done: credited, duplicate, pending, failed, reversed, ignored, ..."},
       "processedAt": {"type": "string", "format": "date-time"}
     }
   },
   "errors": [400, 401, 404]},
  {"method": "GET", "path": "/api/v1/billing/health", "function": "api.billing_health", "access": "public", "status": 200,
   "message": "Billing service is healthy", "tag": "billing",
   "summary": "Billing health: database and payment gateway configuration",
   "response": {
     "type": "object",
     "required": ["status", "service", "version", "database", "gatewayConfigured", "timestamp"],
     "properties": {
       "status": {"const": "healthy"},
       "service": {"const": "billing"},
       "version": {"type": "string"},
       "database": {"const": "up"},
       "gatewayConfigured": {"type": "boolean", "description": "whether the Midtrans server key is set"},
       "timestamp": {"type": "string", "format": "date-time"}
     }
   }}
]$routes$);

-- subscriptions: the owner's (another user's id answers 404) and the
-- administrators'; the literal paths win over /:id
SELECT paas.routes_add($routes$[
  {"method": "GET", "path": "/api/v1/subscriptions", "function": "api.subscriptions_list", "access": "user", "status": 200,
   "message": "Subscriptions retrieved successfully", "flags": ["paginated"], "tag": "subscriptions",
   "summary": "The caller's subscriptions, newest first",
   "query": {
     "page": {"$ref": "#/components/schemas/Page"},
     "limit": {"type": "integer", "minimum": 1, "maximum": 100, "default": 10, "description": "rows per page"},
     "status": {"$ref": "#/components/schemas/SubscriptionStatus"},
     "serviceId": {"type": "string", "format": "uuid"}
   },
   "response": {"type": "array", "items": {"$ref": "#/components/schemas/Subscription"}},
   "errors": [400]},
  {"method": "POST", "path": "/api/v1/subscriptions", "function": "api.subscriptions_create", "access": "user",
   "status": 201, "message": "Subscription created successfully", "flags": ["money"], "tag": "subscriptions",
   "summary": "Subscribe to a service: the first month is charged from the wallet and invoiced",
   "headers": {"Idempotency-Key": {"$ref": "#/components/schemas/IdempotencyKey",
                                   "description": "a retry with the same key answers the first subscription"}},
   "request": {
     "type": "object",
     "required": ["serviceId"],
     "properties": {"serviceId": {"type": "string", "format": "uuid"}}
   },
   "requestRequired": true,
   "response": {"$ref": "#/components/schemas/SubscriptionPurchase"},
   "errors": [400, 402, 404, 409]},
  {"method": "GET", "path": "/api/v1/subscriptions/stats", "function": "api.subscriptions_stats", "access": "user",
   "status": 200, "message": "Subscription statistics retrieved successfully", "tag": "subscriptions",
   "summary": "Counts by status, monthly spend, balance and the next renewals",
   "response": {
     "type": "object",
     "required": ["total", "activeCount", "byStatus", "monthlySpend", "currency", "balance", "balanceCoversNextRenewals",
                  "totalSpent", "nextRenewals"],
     "properties": {
       "total": {"type": "integer"},
       "activeCount": {"type": "integer"},
       "byStatus": {"$ref": "#/components/schemas/SubscriptionCounts"},
       "monthlySpend": {"$ref": "#/components/schemas/Amount"},
       "currency": {"const": "IDR"},
       "balance": {"$ref": "#/components/schemas/Amount"},
       "balanceCoversNextRenewals": {"type": "boolean"},
       "totalSpent": {"$ref": "#/components/schemas/Amount"},
       "nextRenewals": {
         "type": "array",
         "maxItems": 5,
         "items": {
           "type": "object",
           "required": ["subscriptionId", "serviceId", "serviceName", "displayName", "status", "renewsAt", "amount"],
           "properties": {
             "subscriptionId": {"type": "string", "format": "uuid"},
             "serviceId": {"type": "string", "format": "uuid"},
             "serviceName": {"type": "string"},
             "displayName": {"type": "string"},
             "status": {"$ref": "#/components/schemas/SubscriptionStatus"},
             "renewsAt": {"type": "string", "format": "date-time"},
             "amount": {"$ref": "#/components/schemas/Amount"}
           }
         }
       }
     }
   }},
  {"method": "GET", "path": "/api/v1/subscriptions/:id", "function": "api.subscriptions_get", "access": "user",
   "status": 200, "message": "Subscription retrieved successfully", "tag": "subscriptions",
   "summary": "One of the caller's subscriptions with its paid periods",
   "response": {"allOf": [
     {"$ref": "#/components/schemas/Subscription"},
     {"type": "object", "required": ["charges"],
      "properties": {"charges": {"type": "array", "items": {"$ref": "#/components/schemas/SubscriptionCharge"}}}}
   ]},
   "errors": [404]},
  {"method": "PUT", "path": "/api/v1/subscriptions/:id/renew", "function": "api.subscriptions_renew", "access": "user",
   "status": 200, "message": "Subscription renewed successfully", "flags": ["money"], "tag": "subscriptions",
   "summary": "Pay one more period now (revives a suspended or expired one at the list price)",
   "headers": {"Idempotency-Key": {"$ref": "#/components/schemas/IdempotencyKey",
                                   "description": "a retry with the same key charges nothing and answers the first renewal"}},
   "response": {"$ref": "#/components/schemas/SubscriptionPurchase"},
   "errors": [402, 404, 409]},
  {"method": "DELETE", "path": "/api/v1/subscriptions/:id", "function": "api.subscriptions_cancel", "access": "user",
   "status": 200, "message": "Subscription cancelled; it stays active until the end of the paid period",
   "tag": "subscriptions",
   "summary": "Cancel at the end of the paid period (no refund)",
   "request": {
     "type": "object",
     "properties": {"reason": {"type": "string", "maxLength": 500}}
   },
   "response": {"allOf": [
     {"$ref": "#/components/schemas/Subscription"},
     {"type": "object", "required": ["accessUntil", "refund"],
      "properties": {
        "accessUntil": {"type": "string", "format": "date-time"},
        "refund": {"const": 0}
      }}
   ]},
   "errors": [400, 404, 409]},
  {"method": "GET", "path": "/api/v1/admin/subscriptions", "function": "api.subscriptions_admin_list", "access": "admin",
   "status": 200, "message": "Subscriptions retrieved successfully", "flags": ["paginated"], "tag": "admin-subscriptions",
   "summary": "Every subscription, newest first",
   "query": {
     "page": {"$ref": "#/components/schemas/Page"},
     "limit": {"type": "integer", "minimum": 1, "maximum": 100, "default": 20, "description": "rows per page"},
     "userId": {"type": "string", "format": "uuid", "description": "only this user's"},
     "status": {"$ref": "#/components/schemas/SubscriptionStatus"},
     "serviceId": {"type": "string", "format": "uuid"}
   },
   "response": {"type": "array", "items": {"$ref": "#/components/schemas/Subscription"}},
   "errors": [400, 404]},
  {"method": "GET", "path": "/api/v1/admin/subscriptions/stats", "function": "api.subscriptions_admin_stats",
   "access": "admin", "status": 200, "message": "Subscription statistics retrieved successfully",
   "tag": "admin-subscriptions",
   "summary": "Counts by status and by service, recurring revenue, due renewals, recent charges",
   "response": {
     "type": "object",
     "required": ["total", "byStatus", "monthlyRecurringRevenue", "dueNow", "renewingWithin", "gracePeriod", "currency",
                  "chargesLast30Days", "byService"],
     "properties": {
       "total": {"type": "integer"},
       "byStatus": {"$ref": "#/components/schemas/SubscriptionCounts"},
       "monthlyRecurringRevenue": {"$ref": "#/components/schemas/Amount"},
       "dueNow": {"type": "integer"},
       "renewingWithin": {
         "type": "object",
         "required": ["window", "count"],
         "properties": {"window": {"type": "string", "description": "an interval, e.g. \"7 days\""}, "count": {"type": "integer"}}
       },
       "gracePeriod": {"type": "string", "description": "an interval, e.g. \"3 days\""},
       "currency": {"const": "IDR"},
       "chargesLast30Days": {
         "type": "object",
         "required": ["count", "amount"],
         "properties": {"count": {"type": "integer"}, "amount": {"$ref": "#/components/schemas/Amount"}}
       },
       "byService": {
         "type": "array",
         "items": {
           "type": "object",
           "required": ["serviceId", "name", "displayName", "live", "active", "total", "monthlyRecurringRevenue"],
           "properties": {
             "serviceId": {"type": "string", "format": "uuid"},
             "name": {"type": "string"},
             "displayName": {"type": "string"},
             "live": {"type": "integer"},
             "active": {"type": "integer"},
             "total": {"type": "integer"},
             "monthlyRecurringRevenue": {"$ref": "#/components/schemas/Amount"}
           }
         }
       }
     }
   }},
  {"method": "GET", "path": "/api/v1/admin/subscriptions/notices", "function": "api.subscriptions_admin_notices",
   "access": "admin", "status": 200, "message": "Subscription notices retrieved successfully", "flags": ["paginated"],
   "tag": "admin-subscriptions",
   "summary": "Subscriptions to notify: expiring soon, in grace, suspended",
   "query": {
     "page": {"$ref": "#/components/schemas/Page"},
     "limit": {"type": "integer", "minimum": 1, "maximum": 100, "default": 20, "description": "rows per page"},
     "notice": {"type": "string", "enum": ["expiring_soon", "grace", "suspended"]}
   },
   "response": {
     "type": "array",
     "items": {
       "type": "object",
       "required": ["notice", "subscriptionId", "user", "service", "status", "price", "balance", "currentPeriodEnd",
                    "graceUntil", "suspendedAt", "dueAt"],
       "properties": {
         "notice": {"type": "string", "enum": ["expiring_soon", "grace", "suspended"]},
         "subscriptionId": {"type": "string", "format": "uuid"},
         "user": {"$ref": "#/components/schemas/UserRef"},
         "service": {
           "type": "object",
           "required": ["id", "name", "displayName"],
           "properties": {
             "id": {"type": "string", "format": "uuid"},
             "name": {"type": "string"},
             "displayName": {"type": "string"}
           }
         },
         "status": {"$ref": "#/components/schemas/SubscriptionStatus"},
         "price": {"$ref": "#/components/schemas/Amount"},
         "balance": {"$ref": "#/components/schemas/Amount"},
         "currentPeriodEnd": {"type": "string", "format": "date-time"},
         "graceUntil": {"type": ["string", "null"], "format": "date-time"},
         "suspendedAt": {"type": ["string", "null"], "format": "date-time"},
         "dueAt": {"type": ["string", "null"], "format": "date-time"}
       }
     }
   },
   "errors": [400]},
  {"method": "GET", "path": "/api/v1/admin/subscriptions/users/:userId", "function": "api.subscriptions_admin_list",
   "access": "admin", "status": 200, "message": "User subscriptions retrieved successfully", "flags": ["paginated"],
   "tag": "admin-subscriptions", "operationId": "subscriptionsAdminListByUser",
   "summary": "One user's subscriptions, newest first",
   "query": {
     "page": {"$ref": "#/components/schemas/Page"},
     "limit": {"type": "integer", "minimum": 1, "maximum": 100, "default": 20, "description": "rows per page"},
     "status": {"$ref": "#/components/schemas/SubscriptionStatus"},
     "serviceId": {"type": "string", "format": "uuid"}
   },
   "response": {"type": "array", "items": {"$ref": "#/components/schemas/Subscription"}},
   "errors": [400, 404]},
  {"method": "GET", "path": "/api/v1/admin/subscriptions/:id", "function": "api.subscriptions_admin_get",
   "access": "admin", "status": 200, "message": "Subscription retrieved successfully", "tag": "admin-subscriptions",
   "summary": "Any subscription with its owner, charges and status history",
   "response": {"allOf": [
     {"$ref": "#/components/schemas/Subscription"},
     {
       "type": "object",
       "required": ["user", "balance", "charges", "events"],
       "properties": {
         "user": {"$ref": "#/components/schemas/UserRef"},
         "balance": {"$ref": "#/components/schemas/Amount"},
         "charges": {"type": "array", "items": {"$ref": "#/components/schemas/SubscriptionCharge"}},
         "events": {
           "type": "array",
           "items": {
             "type": "object",
             "required": ["event", "from", "to", "actorId", "reason", "createdAt"],
             "properties": {
               "event": {"type": "string"},
               "from": {"type": ["string", "null"]},
               "to": {"type": "string"},
               "actorId": {"type": ["string", "null"], "format": "uuid"},
               "reason": {"type": ["string", "null"]},
               "createdAt": {"type": "string", "format": "date-time"}
             }
           }
         }
       }
     }
   ]},
   "errors": [404]},
  {"method": "PUT", "path": "/api/v1/admin/subscriptions/:id/status", "function": "api.subscriptions_admin_set_status",
   "access": "admin", "status": 200, "message": "Subscription status updated successfully", "tag": "admin-subscriptions",
   "summary": "Set a subscription's status through the status machine (no charge, no refund)",
   "request": {
     "type": "object",
     "required": ["status", "reason"],
     "properties": {
       "status": {"type": "string", "enum": ["ACTIVE", "SUSPENDED", "CANCELLED", "EXPIRED"]},
       "reason": {"type": "string", "minLength": 3, "maxLength": 500}
     }
   },
   "requestRequired": true,
   "response": {"allOf": [
     {"$ref": "#/components/schemas/Subscription"},
     {"type": "object", "required": ["previousStatus"],
      "properties": {"previousStatus": {"$ref": "#/components/schemas/SubscriptionStatus"}}}
   ]},
   "errors": [400, 404, 409]}
]$routes$);

------------------------------------------------------------------------------
-- the OpenAPI document
------------------------------------------------------------------------------

-- "api.users_list" of a route's function (NULL for a built-in).
CREATE FUNCTION paas.route_function_name(fn regprocedure) RETURNS text
	LANGUAGE sql STABLE PARALLEL SAFE
	RETURN (SELECT quote_ident(n.nspname) || '.' || quote_ident(p.proname)
			  FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
			 WHERE p.oid = fn);
COMMENT ON FUNCTION paas.route_function_name(regprocedure) IS
	'schema-qualified name of a route''s function, without its arguments';

-- The schema of a path capture the route does not describe itself.
CREATE FUNCTION paas.route_path_param(name text) RETURNS jsonb
	LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
	RETURN CASE name
		WHEN 'id' THEN '{"type": "string", "format": "uuid", "description": "the resource''s id"}'
		WHEN 'userId' THEN '{"type": "string", "format": "uuid", "description": "the user''s id"}'
		WHEN 'tokenId' THEN '{"type": "string", "format": "uuid", "description": "the join token''s id"}'
		WHEN 'nodeId' THEN '{"type": "string", "description": "the node''s id or name"}'
		WHEN 'nodeName' THEN '{"type": "string", "description": "the node''s name or id"}'
		WHEN 'name' THEN '{"type": "string", "description": "the service''s slug (case-insensitive)"}'
		ELSE '{"type": "string"}' END::jsonb;
COMMENT ON FUNCTION paas.route_path_param(text) IS
	'the default JSON Schema of a path capture, by its name';

-- The security requirements of an access rule.
CREATE FUNCTION paas.route_security(access text) RETURNS jsonb
	LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
	RETURN CASE access
		WHEN 'public' THEN '[]'
		WHEN 'user' THEN '[{"bearerAuth": []}]'
		WHEN 'admin' THEN '[{"bearerAuth": []}]'
		WHEN 'node' THEN '[{"nodeToken": []}]'
		WHEN 'local' THEN '[{"bearerAuth": []}]' END::jsonb;
COMMENT ON FUNCTION paas.route_security(text) IS
	'OpenAPI security requirements of an access rule (local: an administrator''s token on the API listener)';

-- Every error status a route can answer: its function's, then those of the
-- gateway (a malformed or oversized body, the database unavailable), of
-- the access rule and of the flags (rate limits, the payment gateway).
CREATE FUNCTION paas.route_error_statuses(r paas.routes) RETURNS integer[]
	LANGUAGE sql IMMUTABLE PARALLEL SAFE
	RETURN (SELECT coalesce(array_agg(DISTINCT e ORDER BY e), '{}')
			  FROM unnest(r.errors
				|| CASE WHEN r.function IS NOT NULL THEN ARRAY[400, 413, 503] ELSE '{}' END
				|| CASE r.access WHEN 'user' THEN ARRAY[401] WHEN 'admin' THEN ARRAY[401, 403]
								 WHEN 'local' THEN ARRAY[403] ELSE '{}' END
				|| CASE WHEN r.flags && ARRAY['rate_login', 'rate_register', 'rate_refresh', 'snap']
						THEN ARRAY[429] ELSE '{}' END
				|| CASE WHEN 'snap' = ANY (r.flags) THEN ARRAY[502] ELSE '{}' END) e);
COMMENT ON FUNCTION paas.route_error_statuses(paas.routes) IS
	'the error statuses of a route: its own, the gateway''s, its access rule''s and its flags''';

-- components.responses: one error envelope per status.
CREATE FUNCTION paas.openapi_responses() RETURNS jsonb
	LANGUAGE sql IMMUTABLE PARALLEL SAFE
	RETURN (SELECT jsonb_object_agg(x.name, jsonb_strip_nulls(jsonb_build_object(
				'description', x.descr,
				'headers', CASE WHEN x.retry THEN jsonb_build_object('Retry-After', jsonb_build_object(
								'description', 'seconds to wait before retrying',
								'schema', jsonb_build_object('type', 'integer', 'minimum', 0))) END,
				'content', jsonb_build_object('application/json', jsonb_build_object('schema',
					CASE WHEN x.codes IS NULL THEN '{"$ref": "#/components/schemas/Error"}'::jsonb
						 ELSE jsonb_build_object('allOf', jsonb_build_array(
								'{"$ref": "#/components/schemas/Error"}'::jsonb,
								jsonb_build_object('type', 'object', 'properties', jsonb_build_object(
									'code', CASE WHEN cardinality(x.codes) = 1
												 THEN jsonb_build_object('const', x.codes[1])
												 ELSE jsonb_build_object('enum', to_jsonb(x.codes)) END,
									'statusCode', jsonb_build_object('const', x.status))))) END)))))
			  FROM (VALUES
				(400, 'BadRequest', ARRAY['VALIDATION_ERROR', 'INVALID_PASSWORD'], false,
				 'Invalid input: a malformed JSON body, or fields that fail validation (every failing field is listed in errors); '
				 'INVALID_PASSWORD: the current password is wrong (POST /auth/change-password)'),
				(401, 'Unauthorized', ARRAY['AUTH_ERROR'], false,
				 'Missing, invalid or expired credentials, a revoked session or an inactive account'),
				(402, 'PaymentRequired', ARRAY['INSUFFICIENT_BALANCE'], false, 'The wallet does not cover the charge'),
				(403, 'Forbidden', ARRAY['FORBIDDEN_ERROR'], false, 'The caller may not do this'),
				(404, 'NotFound', ARRAY['NOT_FOUND_ERROR', 'USER_NOT_FOUND', 'SERVICE_NOT_FOUND', 'WORKER_NODE_NOT_FOUND'], false,
				 'No such resource (another user''s answers the same; so does an id that cannot exist): USER_NOT_FOUND, '
				 'SERVICE_NOT_FOUND, WORKER_NODE_NOT_FOUND on the routes of users, services and worker nodes, '
				 'NOT_FOUND_ERROR elsewhere'),
				(409, 'Conflict', ARRAY['CONFLICT_ERROR', 'USER_EXISTS', 'EMAIL_EXISTS', 'SERVICE_EXISTS', 'WORKER_NODE_EXISTS'], false,
				 'The request conflicts with the current state: USER_EXISTS (POST /users), EMAIL_EXISTS (PUT /users/:id), '
				 'SERVICE_EXISTS (POST /services), WORKER_NODE_EXISTS (a worker node''s name or hostname is taken), '
				 'CONFLICT_ERROR otherwise'),
				(413, 'PayloadTooLarge', ARRAY['PAYLOAD_TOO_LARGE'], false, 'The request body exceeds 1 MiB'),
				(429, 'TooManyRequests', ARRAY['RATE_LIMITED'], true, 'Too many requests: retry after Retry-After seconds'),
				(502, 'BadGateway', ARRAY['GATEWAY_ERROR', 'CLUSTER_ERROR'], false,
				 'GATEWAY_ERROR: the payment gateway could not be reached; the top-up stays pending and can be retried. '
				 'CLUSTER_ERROR: the Kubernetes API refused an action on a worker node or did not answer (its status, '
				 'reason and message are in details); nothing was changed'),
				(503, 'ServiceUnavailable', ARRAY['SERVICE_UNAVAILABLE'], true,
				 'The database is unavailable or busy: retry after Retry-After seconds'),
				(NULL, 'UnexpectedError', NULL::text[], false, 'Any other error (500 INTERNAL_ERROR: a server fault)'))
				AS x (status, name, codes, retry, descr));
COMMENT ON FUNCTION paas.openapi_responses() IS
	'components.responses of the OpenAPI document: the error envelope of each status';

CREATE FUNCTION paas.openapi_response_name(status integer) RETURNS text
	LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
	RETURN CASE status WHEN 400 THEN 'BadRequest' WHEN 401 THEN 'Unauthorized' WHEN 402 THEN 'PaymentRequired'
					   WHEN 403 THEN 'Forbidden' WHEN 404 THEN 'NotFound' WHEN 409 THEN 'Conflict'
					   WHEN 413 THEN 'PayloadTooLarge' WHEN 429 THEN 'TooManyRequests'
					   WHEN 502 THEN 'BadGateway' WHEN 503 THEN 'ServiceUnavailable' END;
COMMENT ON FUNCTION paas.openapi_response_name(integer) IS
	'the name in components.responses of an error status';

-- The operation object of a route.  names: the capture names of the path
-- template the document files it under (the first route of its shape).
CREATE FUNCTION paas.route_operation(r paas.routes, names text[]) RETURNS jsonb
	LANGUAGE plpgsql STABLE
	SET search_path = pg_catalog, paas, pg_temp
AS $$
DECLARE
	own text[] := paas.route_captures(r.path);
	params jsonb := '[]';
	responses jsonb;
	s jsonb;
	i integer;
	p record;
BEGIN
	FOR i IN 1 .. coalesce(cardinality(own), 0) LOOP
		s := coalesce(r.path_schema -> own[i], paas.route_path_param(own[i]));
		params := params || jsonb_build_array(jsonb_strip_nulls(jsonb_build_object(
			'name', names[i], 'in', 'path', 'required', true,
			'description', s ->> 'description', 'schema', s - 'description')));
	END LOOP;
	FOR p IN SELECT x.* FROM (SELECT 'query' AS place, key, value FROM jsonb_each(r.query_schema)
							  UNION ALL
							  SELECT 'header', key, value FROM jsonb_each(r.header_schema)) x
			 ORDER BY x.place DESC, (x.key = 'page') DESC, (x.key = 'limit') DESC, x.key LOOP
		params := params || jsonb_build_array(jsonb_strip_nulls(jsonb_build_object(
			'name', p.key, 'in', p.place, 'required', false,
			'description', p.value ->> 'description', 'schema', p.value - 'description')));
	END LOOP;

	-- the route's own success reply, then the others its function may choose
	SELECT jsonb_object_agg(x.status, jsonb_build_object('description', x.message, 'content',
		CASE r.response_type
		WHEN 'envelope' THEN jsonb_build_object('application/json', jsonb_build_object('schema',
			jsonb_build_object('allOf', jsonb_build_array(
				jsonb_build_object('$ref', CASE WHEN 'paginated' = ANY (r.flags)
												THEN '#/components/schemas/PaginatedSuccess'
												ELSE '#/components/schemas/Success' END),
				jsonb_build_object('type', 'object', 'properties', jsonb_build_object(
					'message', jsonb_build_object('const', x.message),
					'statusCode', jsonb_build_object('const', x.status::integer),
					'data', r.response_schema))))))
		WHEN 'json' THEN jsonb_build_object('application/json', jsonb_build_object('schema', r.response_schema))
		WHEN 'pdf' THEN '{"application/pdf": {"schema": {"type": "string", "format": "binary"}}}'
		WHEN 'text' THEN jsonb_build_object('text/plain', jsonb_build_object('schema', r.response_schema)) END))
	  INTO responses
	  FROM (SELECT r.status::text AS status, r.message
			UNION ALL
			SELECT e.key, e.value #>> '{}' FROM jsonb_each(r.other_replies) e) x;
	SELECT responses || coalesce(jsonb_object_agg(e::text, jsonb_build_object(
			'$ref', '#/components/responses/' || paas.openapi_response_name(e))), '{}')
	  INTO responses
	  FROM unnest(paas.route_error_statuses(r)) e;
	responses := responses || '{"default": {"$ref": "#/components/responses/UnexpectedError"}}';

	RETURN jsonb_strip_nulls(jsonb_build_object(
		'operationId', r.operation_id,
		'summary', r.summary,
		'description', coalesce(r.description, obj_description(r.function, 'pg_proc')),
		'tags', jsonb_build_array(r.tag),
		'security', coalesce(r.security, paas.route_security(r.access)),
		'parameters', CASE WHEN jsonb_array_length(params) > 0 THEN params END,
		'requestBody', CASE WHEN r.request_schema IS NOT NULL THEN jsonb_build_object(
			'required', r.request_required,
			'content', jsonb_build_object('application/json', jsonb_build_object('schema', r.request_schema))) END,
		'responses', responses,
		'x-access', r.access,
		'x-paas-function', paas.route_function_name(r.function),
		'x-paas-flags', CASE WHEN cardinality(r.flags) > 0 THEN to_jsonb(r.flags) END));
END
$$;
COMMENT ON FUNCTION paas.route_operation(paas.routes, text[]) IS
	'the OpenAPI operation object of a route, its path parameters named as in the document''s template';

CREATE FUNCTION api.openapi(ctx jsonb DEFAULT '{}') RETURNS jsonb
	LANGUAGE plpgsql STABLE
	SECURITY DEFINER SET search_path = pg_catalog, paas, pg_temp
AS $$
DECLARE
	paths jsonb;
BEGIN
	-- Routes of one shape share a path template ("/services/{name}"), named
	-- after the first of them in table order.
	WITH rt AS (
		SELECT r, first_value(r.path) OVER (PARTITION BY paas.route_shape(r.path) ORDER BY r.seq) AS key_path
		  FROM paas.routes r),
	items AS (
		SELECT paas.route_openapi_path(rt.key_path) AS p,
			   jsonb_object_agg(lower((rt.r).method),
								paas.route_operation(rt.r, paas.route_captures(rt.key_path))) AS item
		  FROM rt
		 GROUP BY 1)
	SELECT coalesce(jsonb_object_agg(p, item), '{}') INTO paths FROM items;

	RETURN jsonb_build_object(
		'openapi', '3.1.0',
		'info', jsonb_build_object(
			'title', 'paas API',
			'version', coalesce((SELECT extversion FROM pg_extension WHERE extname = 'paas'), paas.version()),
			'description', 'Platform-as-a-service backend: accounts, the service catalog, a prepaid IDR wallet '
				'topped up through Midtrans, subscriptions paid from it, worker nodes. Every JSON answer uses one '
				'envelope: {success, message, data, timestamp, statusCode} (lists add pagination), errors '
				'{success: false, message, code, details, errors, timestamp, statusCode}; statusCode always equals '
				'the HTTP status. Money is a JSON integer of whole rupiah; ids are opaque strings; timestamps are '
				'ISO-8601 UTC. A request''s fields are its JSON body''s, then its query string''s, then its path''s '
				'(later wins). Generated from the route table paas.routes.'),
		'servers', jsonb_build_array(jsonb_build_object(
			'url', coalesce(nullif(ctx ->> 'serverUrl', ''), '/'),
			'description', 'this server')),
		'tags', (SELECT coalesce(jsonb_agg(jsonb_build_object('name', t.name, 'description', t.description)
										   ORDER BY t.seq), '[]')
				   FROM paas.route_tags t WHERE EXISTS (SELECT 1 FROM paas.routes r WHERE r.tag = t.name)),
		'paths', paths,
		'components', jsonb_build_object(
			'schemas', (SELECT coalesce(jsonb_object_agg(s.name, s.schema), '{}') FROM paas.route_schemas s),
			'responses', paas.openapi_responses(),
			'securitySchemes', jsonb_build_object(
				'bearerAuth', jsonb_build_object('type', 'http', 'scheme', 'bearer', 'bearerFormat', 'JWT',
					'description', 'an access token from /auth/login, /auth/register or /auth/refresh'),
				'nodeToken', jsonb_build_object('type', 'http', 'scheme', 'bearer',
					'description', 'the node token POST /workers/register returned to this node'),
				'joinToken', jsonb_build_object('type', 'http', 'scheme', 'bearer',
					'description', 'a cluster join token (POST /workers/join-tokens, or the configured one)'))));
END
$$;
COMMENT ON FUNCTION api.openapi(jsonb) IS
	'GET /openapi.json: the OpenAPI 3.1 document of every route, from paas.routes (ctx.serverUrl: the servers URL, default "/")';

-- The route table as the gateway loads it, in table order.
CREATE FUNCTION api.routes()
	RETURNS TABLE (seq integer, method text, path text, function text, access text, status integer,
				   message text, flags text[], tag text)
	LANGUAGE sql STABLE
	SECURITY DEFINER SET search_path = pg_catalog, paas, pg_temp
AS $$
	SELECT r.seq, r.method, r.path, paas.route_function_name(r.function), r.access, r.status, r.message,
		   r.flags, r.tag
	  FROM paas.routes r
	 ORDER BY r.seq
$$;
COMMENT ON FUNCTION api.routes() IS
	'the route table as the gateway loads it at start and on NOTIFY paas_routes: seq, method, path, function, access, status, message, flags, tag';

REVOKE ALL ON FUNCTION api.openapi(jsonb), api.routes() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION api.openapi(jsonb), api.routes() TO paas_api, paas_owner;
