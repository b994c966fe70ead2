-- paas.check_text and paas.check_int (extension/nodes.c, shared with the
-- node checks) give what their former plpgsql definitions, kept below as
-- the references, give: on values of every JSON type, strings of many
-- lengths and scripts, integers in many spellings, at and past the bounds
-- of bigint, absent and null fields, required or not.  In one
-- transaction, rolled back.
BEGIN;
SELECT plan(16);

CREATE FUNCTION pg_temp.check_text_sql(errs jsonb, req jsonb, field text,
									   required boolean, min_len int, max_len int)
	RETURNS jsonb
	LANGUAGE plpgsql IMMUTABLE
AS $$
DECLARE
	v jsonb := req -> field;
	n int;
BEGIN
	IF v IS NULL OR v = 'null'::jsonb THEN
		IF required THEN
			RETURN paas.add_err(errs, field, field || ' is required');
		END IF;
		RETURN errs;
	END IF;
	IF jsonb_typeof(v) <> 'string' THEN
		RETURN paas.add_err(errs, field, field || ' must be a string');
	END IF;
	n := char_length(v #>> '{}');
	IF n < min_len THEN
		RETURN paas.add_err(errs, field, format('%s must be at least %s characters', field, min_len));
	END IF;
	IF n > max_len THEN
		RETURN paas.add_err(errs, field, format('%s must be at most %s characters', field, max_len));
	END IF;
	RETURN errs;
END
$$;

CREATE FUNCTION pg_temp.check_int_sql(errs jsonb, req jsonb, field text,
									  required boolean, min_v bigint, max_v bigint)
	RETURNS jsonb
	LANGUAGE plpgsql IMMUTABLE
AS $$
DECLARE
	v jsonb := req -> field;
	t text;
	n numeric;
BEGIN
	IF v IS NULL OR v = 'null'::jsonb THEN
		IF required THEN
			RETURN paas.add_err(errs, field, field || ' is required');
		END IF;
		RETURN errs;
	END IF;
	t := v #>> '{}';
	IF jsonb_typeof(v) NOT IN ('number', 'string') OR t !~ '^\s*-?[0-9]{1,19}\s*$' THEN
		RETURN paas.add_err(errs, field, field || ' must be an integer');
	END IF;
	n := t::numeric;
	IF n < min_v OR n > max_v THEN
		RETURN paas.add_err(errs, field, format('%s must be between %s and %s', field, min_v, max_v));
	END IF;
	RETURN errs;
END
$$;

-- the values: each as the field "f" of a request, and the request without it
CREATE TEMP TABLE val (v jsonb);
INSERT INTO val VALUES (NULL), ('null'), ('true'), ('false'), ('{}'), ('[]'), ('[1]'), ('{"a": 1}'),
	('""'), ('"a"'), ('"ab"'), ('"abc"'), ('"abcdef"'), ('"ééé"'), ('"日本語テキスト"'), ('"😀😀"'),
	('"  "'), ('"\t"'), ('"a\u0001b"'),
	('0'), ('1'), ('-1'), ('5'), ('9'), ('10'), ('1.0'), ('1.5'), ('-0'), ('1e2'), ('1E+2'), ('0.1e1'),
	('"0"'), ('"1"'), ('"-1"'), ('" 7 "'), ('"\t8\n"'), ('"+1"'), ('"1.0"'), ('"1e2"'), ('"0x10"'),
	('"--1"'), ('"- 1"'), ('"1 2"'), ('"007"'), ('""'), ('" "'), ('"abc"'), ('"١٢"'),
	('9223372036854775807'), ('9223372036854775808'), ('-9223372036854775808'), ('-9223372036854775809'),
	('"9223372036854775807"'), ('"9223372036854775808"'), ('"-9223372036854775808"'),
	('"-9223372036854775809"'), ('9999999999999999999'), ('"9999999999999999999"'),
	('-9999999999999999999'), ('99999999999999999999'), ('"99999999999999999999"'),
	('"0000000000000000001"'), ('"00000000000000000001"'), ('1000000'), ('1000001'), ('100000'),
	('"100001"'), ('2147483647'), ('2147483648'), ('-2147483648'), ('"-2147483649"');

CREATE TEMP TABLE req AS
	SELECT CASE WHEN v IS NULL THEN '{"other": 1}'::jsonb ELSE jsonb_build_object('f', v) END AS r FROM val;

CREATE TEMP TABLE text_bounds (required boolean, lo int, hi int);
INSERT INTO text_bounds VALUES (true, 1, 5), (false, 1, 5), (true, 0, 255), (false, 2, 3),
	(true, 3, 3), (false, 0, 0), (true, 2, 253);

CREATE TEMP TABLE int_bounds (required boolean, lo bigint, hi bigint);
INSERT INTO int_bounds VALUES (true, 1, 9), (false, 1, 9), (true, 0, 1000000), (false, 1, 100000),
	(true, -1000000000000, 1000000000000), (false, 1, 9223372036854775807),
	(true, -9223372036854775808, 9223372036854775807), (false, 0, 2147483647), (true, -5, -1);

SELECT cmp_ok((SELECT count(*)::int FROM req), '>', 60, 'over 60 values');
SELECT is((SELECT count(*) FROM req, text_bounds
		    WHERE paas.check_text('[]', r, 'f', required, lo, hi)
		          IS DISTINCT FROM pg_temp.check_text_sql('[]', r, 'f', required, lo, hi)),
	0::bigint, 'check_text gives what its former definition gives, for every value and bound');
SELECT is((SELECT count(*) FROM req, int_bounds
		    WHERE paas.check_int('[]', r, 'f', required, lo, hi)
		          IS DISTINCT FROM pg_temp.check_int_sql('[]', r, 'f', required, lo, hi)),
	0::bigint, 'check_int gives what its former definition gives, for every value and bound');
-- the comparisons find errors and passes alike (they are not all empty)
SELECT cmp_ok((SELECT count(*) FROM req, int_bounds
		        WHERE jsonb_array_length(paas.check_int('[]', r, 'f', required, lo, hi)) = 0)::int, '>', 50,
	'check_int passes many of the values');
SELECT cmp_ok((SELECT count(DISTINCT paas.check_int('[]', r, 'f', required, lo, hi) -> 0 ->> 'message')
		         FROM req, int_bounds)::int, '>=', 10, 'check_int gives many distinct messages');
SELECT cmp_ok((SELECT count(DISTINCT paas.check_text('[]', r, 'f', required, lo, hi) -> 0 ->> 'message')
		         FROM req, text_bounds)::int, '>=', 8, 'check_text gives many distinct messages');

-- errors accumulate in order, and a NULL list stays NULL
SELECT is(paas.check_int(paas.check_text('[{"field": "x", "message": "m"}]', '{"a": 5}', 'a', true, 1, 5),
						 '{"b": "x"}', 'b', true, 1, 9),
	'[{"field": "x", "message": "m"}, {"field": "a", "message": "a must be a string"},
	  {"field": "b", "message": "b must be an integer"}]'::jsonb, 'errors are appended in order');
SELECT is(paas.check_text(NULL, '{"a": 5}', 'a', true, 1, 5), NULL, 'a NULL list stays NULL (text)');
SELECT is(paas.check_int(NULL, '{}', 'a', true, 1, 5), NULL, 'a NULL list stays NULL (int)');
SELECT is(paas.check_int('[]', NULL, 'a', true, 1, 5), '[{"field": "a", "message": "a is required"}]',
	'a NULL request has no fields');
SELECT is(paas.check_text('[]', '[1, 2]', 'a', false, 1, 5), '[]', 'a request that is not an object has no fields');
SELECT is(paas.check_int('[]', '{"a": 7}', 'a', false, NULL, NULL), '[]', 'NULL bounds are no bounds');
-- where the two differ: white space beyond ASCII is no part of an integer
-- (the former definition let the regex take it, then failed on the cast)
SELECT is(paas.check_int('[]', jsonb_build_object('a', U&'\2003' || '12'), 'a', true, 1, 99) -> 0 ->> 'message',
	'a must be an integer', 'a number after an em space is not an integer');
SELECT throws_ok($$SELECT paas.check_text('{}', '{}', 'a', true, 1, 5)$$, '22023', NULL,
	'errs must be a JSON array');
SELECT throws_ok($$SELECT paas.check_int('[]', '{}', NULL, true, 1, 5)$$, '22004', NULL,
	'a NULL field name is refused');
SELECT is(paas.check_qty('[]', 'q', '"1x"', NULL, false, true) -> 0 ->> 'field', 'q',
	'check_qty appends through the same code');

SELECT * FROM finish();
ROLLBACK;
