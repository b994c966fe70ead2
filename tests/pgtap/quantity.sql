-- quantity: the Kubernetes quantity parser (extension/quantity.c).  Valid
-- cases and expected values from kubernetes.md section 2 (apimachinery's
-- quantity_test.go and real Node objects); invalid ones from the same tests.
BEGIN;
SELECT plan(54);

-- exact values
SELECT is(paas.parse_quantity('1.5Gi'), 1610612736::numeric, '1.5Gi');
SELECT is(paas.parse_quantity('3800m'), 3.8, 'milli');
SELECT is(paas.parse_quantity('1e3'), 1000::numeric, 'decimal exponent');
SELECT is(paas.parse_quantity('1E6'), 1000000::numeric, 'upper-case exponent');
SELECT is(paas.parse_quantity('1E-3'), 0.001, 'negative exponent');
SELECT is(paas.parse_quantity('1e+3'), 1000::numeric, 'signed exponent');
SELECT is(paas.parse_quantity('0.5e0'), 0.5, 'fraction with exponent');
SELECT is(paas.parse_quantity('1E'), 1000000000000000000::numeric, 'E alone is exa');
SELECT is(paas.parse_quantity('1k'), 1000::numeric, 'k is kilo');
SELECT is(paas.parse_quantity('5.'), 5::numeric, 'trailing point');
SELECT is(paas.parse_quantity('.5'), 0.5, 'leading point');
SELECT is(paas.parse_quantity('0.0005k'), 0.5, 'small kilo');
SELECT is(paas.parse_quantity('100.035k'), 100035::numeric, 'fractional kilo');
SELECT is(paas.parse_quantity('-1'), -1::numeric, 'negative quantities parse');
SELECT is(paas.parse_quantity('+7'), 7::numeric, 'leading plus');
SELECT is(paas.parse_quantity('0.9n'), 0.000000001, 'below nano rounds away from zero');
SELECT is(paas.parse_quantity('1.5e-12'), 0.000000001, 'tiny values keep one nano');
SELECT is(paas.parse_quantity('0'), 0::numeric, 'zero');
SELECT is(paas.parse_quantity('8Ei'), 9223372036854775808::numeric, 'binary values are exact, not capped');

-- integer accessors (bytes, millicores), as in real Node objects
SELECT is(paas.quantity_value('16331368Ki'), 16723320832::bigint, 'memory in Ki');
SELECT is(paas.quantity_value('94998384074'), 94998384074::bigint, 'storage in plain bytes');
SELECT is(paas.quantity_value('103079844Ki'), 105553760256::bigint, 'storage in Ki');
SELECT is(paas.quantity_value('3731881984500m'), 3731881985::bigint, 'milli-bytes round up');
SELECT is(paas.quantity_value('129e6'), 129000000::bigint, '129e6');
SELECT is(paas.quantity_value('123Mi'), 128974848::bigint, '123Mi');
SELECT is(paas.quantity_value('1.5'), 2::bigint, 'value rounds up');
SELECT is(paas.quantity_value('-1.5'), -2::bigint, 'value rounds away from zero');
SELECT is(paas.quantity_milli('4'), 4000::bigint, 'cores to millicores');
SELECT is(paas.quantity_milli('3800m'), 3800::bigint, 'millicores');
SELECT is(paas.quantity_milli('0.5'), 500::bigint, 'half a core');
SELECT is(paas.quantity_milli('1k'), 1000000::bigint, 'kwok 1k cores');
SELECT is(paas.quantity_milli('329087452n'), 330::bigint, 'nanocores round up to millicores');
SELECT is(paas.quantity_value('1234567890123456789012m'), 1234567890123456790::bigint, 'more than 18 digits take the exact path');
SELECT is(paas.quantity_milli('1e-40'), 1::bigint, 'a tiny positive value is at least one unit');

-- invalid text: 22P02 (and out of range: 22003)
SELECT throws_ok($$SELECT paas.parse_quantity('')$$, '22P02', 'invalid quantity ""', 'empty');
SELECT throws_ok($$SELECT paas.parse_quantity('1K')$$, '22P02', 'invalid quantity "1K"', 'K is not kilo');
SELECT throws_ok($$SELECT paas.parse_quantity('1ki')$$, '22P02', 'invalid quantity "1ki"', 'ki is not Ki');
SELECT throws_ok($$SELECT paas.parse_quantity('1.1.M')$$, '22P02', 'invalid quantity "1.1.M"', 'two points');
SELECT throws_ok($$SELECT paas.parse_quantity('1+1.0M')$$, '22P02', 'invalid quantity "1+1.0M"', 'sign inside');
SELECT throws_ok($$SELECT paas.parse_quantity('0.1mi')$$, '22P02', 'invalid quantity "0.1mi"', 'mi');
SELECT throws_ok($$SELECT paas.parse_quantity('0.1am')$$, '22P02', 'invalid quantity "0.1am"', 'unknown prefix');
SELECT throws_ok($$SELECT paas.parse_quantity('aoeu')$$, '22P02', 'invalid quantity "aoeu"', 'letters');
SELECT throws_ok($$SELECT paas.parse_quantity('.5i')$$, '22P02', 'invalid quantity ".5i"', 'i alone');
SELECT throws_ok($$SELECT paas.parse_quantity('-3.01e-')$$, '22P02', 'invalid quantity "-3.01e-"', 'exponent without digits');
SELECT throws_ok($$SELECT paas.parse_quantity('1e')$$, '22P02', 'invalid quantity "1e"', 'e alone');
SELECT throws_ok($$SELECT paas.parse_quantity(' 1')$$, '22P02', 'invalid quantity " 1"', 'leading blank');
SELECT throws_ok($$SELECT paas.parse_quantity('1 ')$$, '22P02', 'invalid quantity "1 "', 'trailing blank');
SELECT throws_ok($$SELECT paas.parse_quantity('.')$$, '22P02', 'invalid quantity "."', 'a point is no number');
SELECT throws_ok($$SELECT paas.parse_quantity('1e1001')$$, '22003', 'invalid quantity "1e1001"', 'huge exponent');
SELECT throws_ok($$SELECT paas.quantity_value('8Ei')$$, '22003', 'quantity "8Ei" is out of range', 'beyond bigint');

-- the non-raising check used for field errors
SELECT is(paas.quantity_error('16Gi', false), NULL, 'a valid quantity has no error');
SELECT alike(paas.quantity_error('16GB', false), '%invalid suffix%', 'bad suffix is reported');
SELECT is(paas.quantity_error('-1', false), 'quantity must not be negative', 'resources are never negative');
SELECT is(paas.quantity_error('9223372036854776', true), 'quantity is out of range', 'millicores overflow');

SELECT finish();
ROLLBACK;
