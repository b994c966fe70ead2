-- Everything the paas extension defines, one row per object or column, in
-- a form that two databases can be compared by: a fresh install of the
-- current version and an older version brought up with ALTER EXTENSION
-- paas UPDATE must print the same rows (tests/upgrade/check.sh).
WITH ext_fn AS (
	SELECT p.oid FROM pg_proc p
	  JOIN pg_depend d ON d.classid = 'pg_proc'::regclass AND d.objid = p.oid AND d.deptype = 'e'
	  JOIN pg_extension e ON e.oid = d.refobjid AND e.extname = 'paas'
), rels AS (
	SELECT c.oid, c.relname, n.nspname, c.relkind
	  FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
	 WHERE n.nspname IN ('paas', 'api', 'reporting') AND c.relkind IN ('r', 'v', 'm', 'S', 'c', 'p')
)
SELECT kind, name, def FROM (
	SELECT 'function' AS kind, p.oid::regprocedure::text AS name,
		   pg_get_functiondef(p.oid) || ' acl=' || coalesce(p.proacl::text, '-')
		   || ' comment=' || coalesce(obj_description(p.oid, 'pg_proc'), '-') AS def
	  FROM pg_proc p JOIN ext_fn USING (oid) WHERE p.prokind <> 'a'
	UNION ALL
	SELECT 'relation', r.nspname || '.' || r.relname,
		   r.relkind::text || ' options=' || coalesce(c.reloptions::text, '-') || ' acl=' || coalesce(c.relacl::text, '-')
		   || ' comment=' || coalesce(obj_description(c.oid, 'pg_class'), '-')
	  FROM rels r JOIN pg_class c ON c.oid = r.oid
	UNION ALL
	SELECT 'column', r.nspname || '.' || r.relname || '.' || a.attname,
		   a.attnum || ' ' || format_type(a.atttypid, a.atttypmod) || ' notnull=' || a.attnotnull
		   || ' default=' || coalesce(pg_get_expr(ad.adbin, ad.adrelid), '-')
		   || ' identity=' || a.attidentity::text || ' generated=' || a.attgenerated::text
		   || ' comment=' || coalesce(col_description(r.oid, a.attnum), '-')
	  FROM rels r JOIN pg_attribute a ON a.attrelid = r.oid AND a.attnum > 0 AND NOT a.attisdropped
	  LEFT JOIN pg_attrdef ad ON ad.adrelid = r.oid AND ad.adnum = a.attnum
	UNION ALL
	SELECT 'view', r.nspname || '.' || r.relname, pg_get_viewdef(r.oid)
	  FROM rels r WHERE r.relkind IN ('v', 'm')
	UNION ALL
	SELECT 'constraint', coalesce(r.nspname || '.' || r.relname, t.typname::text) || '.' || co.conname,
		   pg_get_constraintdef(co.oid)
	  FROM pg_constraint co
	  LEFT JOIN rels r ON r.oid = co.conrelid
	  LEFT JOIN pg_type t ON t.oid = co.contypid
	  LEFT JOIN pg_namespace tn ON tn.oid = t.typnamespace
	 WHERE r.oid IS NOT NULL OR tn.nspname IN ('paas', 'api', 'reporting')
	UNION ALL
	SELECT 'index', n.nspname || '.' || i.relname, pg_get_indexdef(i.oid)
	  FROM pg_index x JOIN pg_class i ON i.oid = x.indexrelid JOIN pg_namespace n ON n.oid = i.relnamespace
	 WHERE n.nspname IN ('paas', 'api', 'reporting')
	UNION ALL
	SELECT 'trigger', r.nspname || '.' || r.relname || '.' || tg.tgname, pg_get_triggerdef(tg.oid)
	  FROM pg_trigger tg JOIN rels r ON r.oid = tg.tgrelid WHERE NOT tg.tgisinternal
	UNION ALL
	SELECT 'type', n.nspname || '.' || t.typname,
		   t.typtype::text || ' base=' || format_type(t.typbasetype, t.typtypmod) || ' notnull=' || t.typnotnull
		   || ' comment=' || coalesce(obj_description(t.oid, 'pg_type'), '-')
	  FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace
	 WHERE n.nspname IN ('paas', 'api', 'reporting') AND t.typtype IN ('c', 'd', 'e')
	   AND (t.typtype <> 'c' OR EXISTS (SELECT 1 FROM pg_class c WHERE c.oid = t.typrelid AND c.relkind = 'c'))
	UNION ALL
	SELECT 'schema', n.nspname, coalesce(n.nspacl::text, '-') || ' comment=' || coalesce(obj_description(n.oid, 'pg_namespace'), '-')
	  FROM pg_namespace n WHERE n.nspname IN ('paas', 'api', 'reporting')
	UNION ALL
	SELECT 'dumped', c.oid::regclass::text, coalesce(e.extcondition[array_position(e.extconfig, c.oid)], '-')
	  FROM pg_extension e, unnest(e.extconfig) AS x (oid) JOIN pg_class c ON c.oid = x.oid
	 WHERE e.extname = 'paas'
	UNION ALL
	SELECT 'rows', r.nspname || '.' || r.relname,
		   (xpath('/row/n/text()', query_to_xml(format('SELECT count(*) AS n FROM %s', r.oid::regclass),
												false, true, '')))[1]::text
	  FROM rels r WHERE r.relkind IN ('r', 'p') AND r.nspname = 'paas'
	UNION ALL
	-- the install rows of the ledger keep their fixed ids (40_ledger.sql): the
	-- dumped postings name them by id
	SELECT 'ledger_account', coalesce(a.code, p.code || '/' || a.slot), a.id || ' ' || a.kind
	  FROM paas.ledger_accounts a LEFT JOIN paas.ledger_accounts p ON p.id = a.parent_id
	 WHERE a.kind <> 'wallet'
	UNION ALL
	SELECT 'sequence', s.schemaname || '.' || s.sequencename,
		   s.data_type::text || ' start=' || s.start_value || ' min=' || s.min_value || ' max=' || s.max_value
		   || ' increment=' || s.increment_by || ' cycle=' || s.cycle || ' cache=' || s.cache_size
	  FROM pg_sequences s WHERE s.schemaname = 'paas' AND s.sequencename = 'ledger_accounts_id_seq'
	UNION ALL
	SELECT 'job', j.name, j.fn::text || ' every=' || j.run_every::text || ' enabled=' || j.enabled
	  FROM paas.job j
	UNION ALL
	SELECT 'route', r.seq || ' ' || r.method || ' ' || r.path, md5(row_to_json(r)::text)
	  FROM paas.routes r
	UNION ALL
	SELECT 'route_schema', s.name, md5(s.schema::text) FROM paas.route_schemas s
	UNION ALL
	SELECT 'route_tag', t.name, t.seq || ' ' || t.description FROM paas.route_tags t
) x
ORDER BY 1, 2, 3;
