-- paas -- user administration: the administrators' /users API over the
-- accounts of 10_identity.sql, and the first administrator of `make run`.
--
-- Administrators.  Every change that can take the role from someone
-- (demote, deactivate, delete, bulk) first takes paas.lock_admins: one at a
-- time, the caller re-read under the lock, and at least one active
-- administrator left afterwards -- so two administrators removing each
-- other at the same moment cannot both succeed (api.auth_delete_account,
-- 11_auth.sql, takes it too).
--
-- Reads take no row locks (paas.read_user); changes lock the row
-- (paas.find_user).

------------------------------------------------------------------------------
-- administrators: at least one stays (see the header)
------------------------------------------------------------------------------

-- Serialises the changes that can remove an administrator: a
-- transaction-level advisory lock (classid 0x70616173, "paas"; objid 1),
-- taken before any row lock, so the statements after it see every such
-- change that committed meanwhile.  The calling administrator ("admin";
-- NULL for a DBA session) is re-read under the lock: one demoted or
-- deactivated meanwhile is refused (PT403).
CREATE FUNCTION paas.lock_admins(admin paas.users) RETURNS void
	LANGUAGE plpgsql VOLATILE
	SET search_path = pg_catalog, paas, pg_temp
AS $$
BEGIN
	PERFORM pg_advisory_xact_lock(1885430131, 1);
	IF admin.id IS NOT NULL AND NOT EXISTS (
		SELECT 1 FROM paas.users
		 WHERE id = admin.id AND role = 'ADMINISTRATOR' AND is_active AND deleted_at IS NULL) THEN
		RAISE EXCEPTION 'Insufficient permissions' USING ERRCODE = 'PT403';
	END IF;
END
$$;
COMMENT ON FUNCTION paas.lock_admins(paas.users) IS
	'serialises changes that can remove an administrator; PT403 when the caller no longer is one';

-- After such a change (under paas.lock_admins): PT409 unless an active
-- administrator is left.
CREATE FUNCTION paas.check_admin_left() RETURNS void
	LANGUAGE plpgsql VOLATILE
	SET search_path = pg_catalog, paas, pg_temp
AS $$
BEGIN
	IF NOT EXISTS (SELECT 1 FROM paas.users WHERE role = 'ADMINISTRATOR' AND is_active AND deleted_at IS NULL) THEN
		RAISE EXCEPTION 'At least one active administrator must remain' USING ERRCODE = 'PT409';
	END IF;
END
$$;
COMMENT ON FUNCTION paas.check_admin_left() IS 'PT409 when no active administrator is left';

------------------------------------------------------------------------------
-- api: admin user management (/users)
------------------------------------------------------------------------------

CREATE FUNCTION api.users_list(req jsonb DEFAULT '{}', ctx jsonb DEFAULT '{}') RETURNS jsonb
	LANGUAGE plpgsql STABLE
	SECURITY DEFINER SET search_path = pg_catalog, paas, pg_temp
AS $$
DECLARE
	errs jsonb := '[]';
	lim int;
	off int;
	total bigint;
	rows jsonb;
	sort_col text;
	sort_dir text;
	search text;
	pg jsonb;
BEGIN
	PERFORM paas.require_admin(ctx);
	req := paas.require_object(req);
	errs := paas.check_paging(errs, req);
	errs := paas.check_text(errs, req, 'search', false, 1, 100);
	errs := paas.check_enum(errs, req, 'role', false, ARRAY['USER', 'ADMINISTRATOR']);
	errs := paas.check_bool(errs, req, 'isActive', false);
	errs := paas.check_enum(errs, req, 'sortBy', false, ARRAY['createdAt', 'updatedAt', 'name', 'email', 'role']);
	errs := paas.check_enum(errs, req, 'sortOrder', false, ARRAY['asc', 'desc']);
	PERFORM paas.raise_if_invalid(errs);

	lim := coalesce((req ->> 'limit')::int, 10);
	off := (coalesce((req ->> 'page')::int, 1) - 1) * lim;
	sort_col := CASE req ->> 'sortBy' WHEN 'updatedAt' THEN 'u.updated_at' WHEN 'name' THEN 'u.name'
				WHEN 'email' THEN 'lower(u.email)' WHEN 'role' THEN 'u.role' ELSE 'u.created_at' END;
	sort_dir := CASE WHEN req ->> 'sortOrder' = 'asc' THEN 'ASC' ELSE 'DESC' END;

	search := replace(replace(replace(req ->> 'search', '\', '\\'), '%', '\%'), '_', '\_');
	SELECT count(*) INTO total FROM paas.users u
	 WHERE u.deleted_at IS NULL
	   AND (search IS NULL OR (u.name || ' ' || u.email) ILIKE '%' || search || '%')
	   AND (req ->> 'role' IS NULL OR u.role = req ->> 'role')
	   AND (req ->> 'isActive' IS NULL OR u.is_active = (req ->> 'isActive')::boolean);

	EXECUTE format($q$
		SELECT coalesce(jsonb_agg(paas.user_json(s.u) || jsonb_build_object('_count', paas.user_counts((s.u).id))
								  ORDER BY s.rn), '[]')
		  FROM (SELECT u, row_number() OVER (ORDER BY %1$s %2$s, u.id) AS rn
				  FROM paas.users u
				 WHERE u.deleted_at IS NULL
				   AND ($1 IS NULL OR (u.name || ' ' || u.email) ILIKE '%%' || $1 || '%%')
				   AND ($2 IS NULL OR u.role = $2)
				   AND ($3 IS NULL OR u.is_active = $3)
				 ORDER BY %1$s %2$s, u.id
				 LIMIT $4 OFFSET $5) s
		$q$, sort_col, sort_dir)
	INTO rows
	USING search, req ->> 'role', (req ->> 'isActive')::boolean, lim, off;

	pg := paas.pagination(req, total);
	RETURN jsonb_build_object(
		'data', jsonb_build_object('users', rows, 'pagination', jsonb_build_object(
			'currentPage', pg -> 'page', 'totalPages', pg -> 'totalPages',
			'totalCount', total, 'hasNext', pg -> 'hasNext', 'hasPrev', pg -> 'hasPrev')),
		'pagination', pg);
END
$$;
COMMENT ON FUNCTION api.users_list(jsonb, jsonb) IS
	'GET /users: page, limit, search, role, isActive, sortBy, sortOrder';

CREATE FUNCTION api.users_stats(req jsonb DEFAULT '{}', ctx jsonb DEFAULT '{}') RETURNS jsonb
	LANGUAGE plpgsql STABLE
	SECURITY DEFINER SET search_path = pg_catalog, paas, pg_temp
AS $$
DECLARE
	r jsonb;
BEGIN
	PERFORM paas.require_admin(ctx);
	SELECT jsonb_build_object(
		'totalUsers', count(*),
		'activeUsers', count(*) FILTER (WHERE is_active),
		'inactiveUsers', count(*) FILTER (WHERE NOT is_active),
		'adminUsers', count(*) FILTER (WHERE role = 'ADMINISTRATOR'),
		'regularUsers', count(*) FILTER (WHERE role = 'USER'),
		'byRole', jsonb_build_object('USER', count(*) FILTER (WHERE role = 'USER'),
									 'ADMINISTRATOR', count(*) FILTER (WHERE role = 'ADMINISTRATOR')),
		'newLast7Days', count(*) FILTER (WHERE created_at > now() - interval '7 days'),
		'newLast30Days', count(*) FILTER (WHERE created_at > now() - interval '30 days'))
	  INTO r
	  FROM paas.users WHERE deleted_at IS NULL;
	RETURN r;
END
$$;
COMMENT ON FUNCTION api.users_stats(jsonb, jsonb) IS 'GET /users/stats: counts by role, state and age';

-- The live account of a path id; PU404 (USER_NOT_FOUND) when there is none.
CREATE FUNCTION paas.find_user(id_text text) RETURNS paas.users
	LANGUAGE plpgsql VOLATILE
	SET search_path = pg_catalog, paas, pg_temp
AS $$
DECLARE
	u paas.users;
BEGIN
	SELECT * INTO u FROM paas.users
	 WHERE id = paas.to_uuid(id_text) AND deleted_at IS NULL
	 FOR UPDATE;
	IF NOT FOUND THEN
		RAISE EXCEPTION 'User not found' USING ERRCODE = 'PU404';
	END IF;
	RETURN u;
END
$$;
COMMENT ON FUNCTION paas.find_user(text) IS 'locks and returns a live account by id; PU404 otherwise';

-- The same for reads: no row lock, so a read never waits for a login or an
-- administrator's change of that account.
CREATE FUNCTION paas.read_user(id_text text) RETURNS paas.users
	LANGUAGE plpgsql STABLE
	SET search_path = pg_catalog, paas, pg_temp
AS $$
DECLARE
	u paas.users;
BEGIN
	SELECT * INTO u FROM paas.users
	 WHERE id = paas.to_uuid(id_text) AND deleted_at IS NULL;
	IF NOT FOUND THEN
		RAISE EXCEPTION 'User not found' USING ERRCODE = 'PU404';
	END IF;
	RETURN u;
END
$$;
COMMENT ON FUNCTION paas.read_user(text) IS 'a live account by id, unlocked; PU404 otherwise';

CREATE FUNCTION api.users_get(req jsonb, ctx jsonb DEFAULT '{}') RETURNS jsonb
	LANGUAGE plpgsql STABLE
	SECURITY DEFINER SET search_path = pg_catalog, paas, pg_temp
AS $$
DECLARE
	u paas.users;
BEGIN
	PERFORM paas.require_admin(ctx);
	u := paas.read_user(req ->> 'id');
	RETURN paas.user_json(u) || jsonb_build_object(
		'lastLoginAt', paas.iso(u.last_login_at),
		'activeSessions', (SELECT count(*) FROM paas.sessions
							WHERE user_id = u.id AND revoked_at IS NULL AND expires_at > now()),
		-- the original's relation: the newest 100 (_count has them all)
		'subscriptions', (SELECT coalesce(jsonb_agg(jsonb_build_object(
								'id', x.id, 'status', x.status, 'expiresAt', paas.iso(x.current_period_end),
								'service', jsonb_build_object('id', v.id, 'name', v.name, 'displayName', v.display_name))
								ORDER BY x.created_at DESC, x.id), '[]')
							FROM (SELECT * FROM paas.subscriptions WHERE user_id = u.id
								   ORDER BY created_at DESC, id LIMIT 100) x
							JOIN paas.services v ON v.id = x.service_id),
		'_count', paas.user_counts(u.id));
END
$$;
COMMENT ON FUNCTION api.users_get(jsonb, jsonb) IS
	'GET /users/:id: the account, its sessions, its newest 100 subscriptions and _count';

CREATE FUNCTION api.users_create(req jsonb, ctx jsonb DEFAULT '{}') RETURNS jsonb
	LANGUAGE plpgsql VOLATILE
	SECURITY DEFINER SET search_path = pg_catalog, paas, pg_temp
AS $$
DECLARE
	errs jsonb := '[]';
	u paas.users;
BEGIN
	PERFORM paas.require_admin(ctx);
	req := paas.require_object(req);
	errs := paas.check_text(errs, req, 'name', true, 2, 100);
	errs := paas.check_email(errs, req, 'email', true);
	errs := paas.check_password(errs, req, 'password');
	errs := paas.check_enum(errs, req, 'role', false, ARRAY['USER', 'ADMINISTRATOR']);
	errs := paas.check_bool(errs, req, 'isActive', false);
	PERFORM paas.raise_if_invalid(errs);
	IF paas.email_taken(req ->> 'email') THEN
		RAISE EXCEPTION 'User with this email already exists' USING ERRCODE = 'PU409';
	END IF;
	INSERT INTO paas.users (email, name, password_hash, role, is_active)
	VALUES (req ->> 'email', btrim(req ->> 'name'), paas.hash_password(req ->> 'password'),
			coalesce(req ->> 'role', 'USER'), coalesce((req ->> 'isActive')::boolean, true))
	RETURNING * INTO u;
	RETURN paas.user_json(u);
END
$$;
COMMENT ON FUNCTION api.users_create(jsonb, jsonb) IS 'POST /users: an account of any role';

-- Refuses changes by which an administrator would lock themself out.
CREATE FUNCTION paas.guard_self(admin paas.users, target uuid, deactivate boolean,
								new_role text, deleting boolean) RETURNS void
	LANGUAGE plpgsql IMMUTABLE
AS $$
BEGIN
	IF admin.id IS NULL OR admin.id <> target THEN
		RETURN;
	END IF;
	IF deleting THEN
		RAISE EXCEPTION 'You cannot delete your own account' USING ERRCODE = 'PT409';
	END IF;
	IF deactivate THEN
		RAISE EXCEPTION 'You cannot deactivate your own account' USING ERRCODE = 'PT409';
	END IF;
	IF new_role IS NOT NULL AND new_role <> 'ADMINISTRATOR' THEN
		RAISE EXCEPTION 'You cannot remove your own administrator role' USING ERRCODE = 'PT409';
	END IF;
END
$$;
COMMENT ON FUNCTION paas.guard_self(paas.users, uuid, boolean, text, boolean) IS
	'PT409 when an administrator would deactivate, demote or delete themself';

CREATE FUNCTION api.users_update(req jsonb, ctx jsonb DEFAULT '{}') RETURNS jsonb
	LANGUAGE plpgsql VOLATILE
	SECURITY DEFINER SET search_path = pg_catalog, paas, pg_temp
AS $$
DECLARE
	admin paas.users := paas.require_admin(ctx);
	errs jsonb := '[]';
	u paas.users;
BEGIN
	req := paas.require_object(req);
	errs := paas.check_text(errs, req, 'name', false, 2, 100);
	errs := paas.check_email(errs, req, 'email', false);
	errs := paas.check_enum(errs, req, 'role', false, ARRAY['USER', 'ADMINISTRATOR']);
	errs := paas.check_bool(errs, req, 'isActive', false);
	IF NOT (req ?| ARRAY['name', 'email', 'role', 'isActive']) THEN
		errs := paas.add_err(errs, '', 'at least one of name, email, role, isActive is required');
	END IF;
	PERFORM paas.raise_if_invalid(errs);
	IF req ?| ARRAY['role', 'isActive'] THEN
		PERFORM paas.lock_admins(admin);
	END IF;
	u := paas.find_user(req ->> 'id');
	PERFORM paas.guard_self(admin, u.id, (req ->> 'isActive')::boolean IS FALSE, req ->> 'role', false);
	IF req ? 'email' AND paas.email_taken(req ->> 'email', u.id) THEN
		RAISE EXCEPTION 'Email already exists' USING ERRCODE = 'PE409';
	END IF;
	UPDATE paas.users
	   SET name = coalesce(btrim(req ->> 'name'), name),
		   email = coalesce(req ->> 'email', email),
		   role = coalesce(req ->> 'role', role),
		   is_active = coalesce((req ->> 'isActive')::boolean, is_active),
		   updated_at = now()
	 WHERE id = u.id
	RETURNING * INTO u;
	IF req ?| ARRAY['role', 'isActive'] THEN
		PERFORM paas.check_admin_left();
	END IF;
	IF NOT u.is_active THEN
		PERFORM paas.revoke_sessions(u.id, 'deactivated by an administrator');
		PERFORM paas.subscriptions_cancel_for_users(ARRAY[u.id], 'account deactivated by an administrator', admin.id);
	END IF;
	RETURN paas.user_json(u);
END
$$;
COMMENT ON FUNCTION api.users_update(jsonb, jsonb) IS 'PUT /users/:id: name, email, role, isActive';

CREATE FUNCTION api.users_set_password(req jsonb, ctx jsonb DEFAULT '{}') RETURNS jsonb
	LANGUAGE plpgsql VOLATILE
	SECURITY DEFINER SET search_path = pg_catalog, paas, pg_temp
AS $$
DECLARE
	errs jsonb := '[]';
	u paas.users;
BEGIN
	PERFORM paas.require_admin(ctx);
	req := paas.require_object(req);
	errs := paas.check_password(errs, req, 'newPassword');
	PERFORM paas.raise_if_invalid(errs);
	u := paas.find_user(req ->> 'id');
	UPDATE paas.users
	   SET password_hash = paas.hash_password(req ->> 'newPassword'),
		   password_changed_at = now(), updated_at = now()
	 WHERE id = u.id
	RETURNING * INTO u;
	PERFORM paas.revoke_sessions(u.id, 'password reset by an administrator');
	RETURN paas.user_json(u);
END
$$;
COMMENT ON FUNCTION api.users_set_password(jsonb, jsonb) IS
	'PATCH /users/:id/password: sets a password and revokes the user''s sessions';

CREATE FUNCTION api.users_toggle_status(req jsonb, ctx jsonb DEFAULT '{}') RETURNS jsonb
	LANGUAGE plpgsql VOLATILE
	SECURITY DEFINER SET search_path = pg_catalog, paas, pg_temp
AS $$
DECLARE
	admin paas.users := paas.require_admin(ctx);
	u paas.users;
BEGIN
	PERFORM paas.lock_admins(admin);
	u := paas.find_user(req ->> 'id');
	PERFORM paas.guard_self(admin, u.id, u.is_active, NULL, false);
	UPDATE paas.users SET is_active = NOT is_active, updated_at = now()
	 WHERE id = u.id
	RETURNING * INTO u;
	PERFORM paas.check_admin_left();
	IF NOT u.is_active THEN
		PERFORM paas.revoke_sessions(u.id, 'deactivated by an administrator');
		PERFORM paas.subscriptions_cancel_for_users(ARRAY[u.id], 'account deactivated by an administrator', admin.id);
	END IF;
	RETURN paas.user_json(u);
END
$$;
COMMENT ON FUNCTION api.users_toggle_status(jsonb, jsonb) IS 'PATCH /users/:id/toggle-status';

CREATE FUNCTION api.users_delete(req jsonb, ctx jsonb DEFAULT '{}') RETURNS jsonb
	LANGUAGE plpgsql VOLATILE
	SECURITY DEFINER SET search_path = pg_catalog, paas, pg_temp
AS $$
DECLARE
	admin paas.users := paas.require_admin(ctx);
	u paas.users;
BEGIN
	PERFORM paas.lock_admins(admin);
	u := paas.find_user(req ->> 'id');
	PERFORM paas.guard_self(admin, u.id, false, NULL, true);
	UPDATE paas.users SET deleted_at = now(), is_active = false, updated_at = now()
	 WHERE id = u.id
	RETURNING * INTO u;
	PERFORM paas.check_admin_left();
	PERFORM paas.revoke_sessions(u.id, 'deleted by an administrator');
	PERFORM paas.subscriptions_cancel_for_users(ARRAY[u.id], 'account deleted by an administrator', admin.id);
	RETURN jsonb_build_object('id', u.id, 'name', u.name, 'email', u.email, 'role', u.role);
END
$$;
COMMENT ON FUNCTION api.users_delete(jsonb, jsonb) IS
	'DELETE /users/:id: soft delete (history is kept), sessions revoked';

CREATE FUNCTION api.users_bulk(req jsonb, ctx jsonb DEFAULT '{}') RETURNS jsonb
	LANGUAGE plpgsql VOLATILE
	SECURITY DEFINER SET search_path = pg_catalog, paas, pg_temp
AS $$
DECLARE
	admin paas.users := paas.require_admin(ctx);
	errs jsonb := '[]';
	ids uuid[];
	missing jsonb;
	act text;
	n integer;
BEGIN
	req := paas.require_object(req);
	errs := paas.check_enum(errs, req, 'action', true, ARRAY['activate', 'deactivate', 'delete', 'set-role']);
	IF jsonb_typeof(req -> 'ids') IS DISTINCT FROM 'array' OR jsonb_array_length(req -> 'ids') = 0 THEN
		errs := paas.add_err(errs, 'ids', 'ids must be a non-empty array');
	ELSIF jsonb_array_length(req -> 'ids') > 1000 THEN
		errs := paas.add_err(errs, 'ids', 'ids must hold at most 1000 entries');
	ELSIF EXISTS (SELECT 1 FROM jsonb_array_elements(req -> 'ids') e WHERE jsonb_typeof(e) <> 'string') THEN
		errs := paas.add_err(errs, 'ids', 'ids must be user ids (strings)');
	END IF;
	IF req ->> 'action' = 'set-role' THEN
		errs := paas.check_enum(errs, req, 'role', true, ARRAY['USER', 'ADMINISTRATOR']);
	END IF;
	PERFORM paas.raise_if_invalid(errs);

	act := req ->> 'action';
	IF act <> 'activate' THEN
		PERFORM paas.lock_admins(admin);
	END IF;
	-- an id that cannot be one is missing like any unknown id (404)
	SELECT array_agg(DISTINCT paas.to_uuid(e #>> '{}')) FILTER (WHERE paas.to_uuid(e #>> '{}') IS NOT NULL)
	  INTO ids FROM jsonb_array_elements(req -> 'ids') e;
	PERFORM 1 FROM paas.users WHERE id = ANY (ids) AND deleted_at IS NULL ORDER BY id FOR UPDATE;
	SELECT jsonb_agg(DISTINCT e #>> '{}') INTO missing FROM jsonb_array_elements(req -> 'ids') e
	 WHERE NOT EXISTS (SELECT 1 FROM paas.users u
						WHERE u.id = paas.to_uuid(e #>> '{}') AND u.deleted_at IS NULL);
	IF missing IS NOT NULL THEN
		RAISE EXCEPTION 'Some users were not found; nothing was changed'
			USING ERRCODE = 'PU404', DETAIL = (SELECT jsonb_agg(jsonb_build_object('field', 'ids', 'message', m #>> '{}'))
											   FROM jsonb_array_elements(missing) m)::text;
	END IF;
	IF admin.id = ANY (ids) THEN
		PERFORM paas.guard_self(admin, admin.id, act = 'deactivate',
								CASE WHEN act = 'set-role' THEN req ->> 'role' END, act = 'delete');
	END IF;

	UPDATE paas.users
	   SET is_active = CASE act WHEN 'activate' THEN true WHEN 'deactivate' THEN false
							   WHEN 'delete' THEN false ELSE is_active END,
		   deleted_at = CASE WHEN act = 'delete' THEN now() ELSE deleted_at END,
		   role = CASE WHEN act = 'set-role' THEN req ->> 'role' ELSE role END,
		   updated_at = now()
	 WHERE id = ANY (ids);
	GET DIAGNOSTICS n = ROW_COUNT;
	IF act <> 'activate' THEN
		PERFORM paas.check_admin_left();
	END IF;
	IF act IN ('deactivate', 'delete') THEN
		UPDATE paas.sessions SET revoked_at = now(), revoke_reason = 'bulk ' || act
		 WHERE user_id = ANY (ids) AND revoked_at IS NULL;
		PERFORM paas.subscriptions_cancel_for_users(ids, format('account %s by an administrator (bulk)',
			CASE act WHEN 'delete' THEN 'deleted' ELSE 'deactivated' END), admin.id);
	END IF;
	RETURN jsonb_build_object('action', act, 'affected', n);
END
$$;
COMMENT ON FUNCTION api.users_bulk(jsonb, jsonb) IS
	'POST /users/bulk: activate | deactivate | delete | set-role over ids, all or nothing';

-- The first administrator, from `make run` (DBA only: not granted to paas_api).
CREATE FUNCTION api.seed_admin(email text, password text, name text DEFAULT 'System Administrator')
	RETURNS uuid
	LANGUAGE plpgsql VOLATILE
	SECURITY DEFINER SET search_path = pg_catalog, paas, pg_temp
AS $$
DECLARE
	errs jsonb;
	uid uuid;
BEGIN
	errs := paas.check_email('[]', jsonb_build_object('email', email), 'email', true);
	errs := paas.check_password(errs, jsonb_build_object('password', password), 'password');
	PERFORM paas.raise_if_invalid(errs);
	SELECT id INTO uid FROM paas.users u WHERE lower(u.email) = lower(seed_admin.email) AND deleted_at IS NULL;
	IF FOUND THEN
		UPDATE paas.users SET role = 'ADMINISTRATOR', is_active = true, updated_at = now() WHERE id = uid;
		RETURN uid;
	END IF;
	INSERT INTO paas.users (email, name, password_hash, role)
	VALUES (seed_admin.email, seed_admin.name, paas.hash_password(seed_admin.password), 'ADMINISTRATOR')
	RETURNING id INTO uid;
	RETURN uid;
END
$$;
COMMENT ON FUNCTION api.seed_admin(text, text, text) IS
	'creates (or promotes) an administrator; for set-up scripts and DBAs';

DO $grants$
DECLARE
	f text;
BEGIN
	FOREACH f IN ARRAY ARRAY[
		'api.users_list(jsonb, jsonb)',
		'api.users_stats(jsonb, jsonb)', 'api.users_get(jsonb, jsonb)',
		'api.users_create(jsonb, jsonb)', 'api.users_update(jsonb, jsonb)',
		'api.users_set_password(jsonb, jsonb)', 'api.users_toggle_status(jsonb, jsonb)',
		'api.users_delete(jsonb, jsonb)', 'api.users_bulk(jsonb, jsonb)']
	LOOP
		EXECUTE format('REVOKE ALL ON FUNCTION %s FROM PUBLIC', f);
		EXECUTE format('GRANT EXECUTE ON FUNCTION %s TO paas_api, paas_owner', f);
	END LOOP;
	REVOKE ALL ON FUNCTION api.seed_admin(text, text, text) FROM PUBLIC;
	GRANT EXECUTE ON FUNCTION api.seed_admin(text, text, text) TO paas_owner;
END
$grants$;
