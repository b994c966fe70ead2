/*-------------------------------------------------------------------------
 *
 * quantity.c
 *	  Kubernetes resource quantities ("3800m", "16331368Ki", "94998384074",
 *	  "1e3", "1.5Gi") parsed exactly, as SQL-callable functions.
 *
 * Grammar (kubernetes/apimachinery pkg/api/resource, quantity.go):
 *	  quantity ::= [+|-] number suffix
 *	  number   ::= digits | digits "." digits | digits "." | "." digits
 *	  suffix   ::= "" | n u m k M G T P E	  (10^-9 .. 10^18)
 *				 | Ki Mi Gi Ti Pi Ei		  (2^10 .. 2^60)
 *				 | (e|E) [+|-] digits		  (decimal exponent)
 * Rules a reader must know:
 *	  - case matters: "k" is kilo, "K" and "ki" are errors; "m" is milli and
 *		"M" mega; "E" alone is exa, "E" followed by digits an exponent.
 *	  - no white space, no empty string, at least one digit: the oddities
 *		Go lets through ("+", ".", "-" parse as zero there) are errors here.
 *	  - the value is kept exactly down to nano units (10^-9); a finer
 *		non-zero remainder rounds away from zero ("0.9n" -> 1n), as in Go.
 *	  - integer accessors round away from zero too (Go's Value() and
 *		MilliValue()): quantity_value("1.5") = 2, quantity_milli("0.1m") = 1.
 *	  - nothing is capped silently: a result outside bigint is an error
 *		(Go caps binary-SI values at 2^63-1; we refuse them instead).
 *	  - exponents beyond +-1000 are refused as out of range.
 *
 * Errors: ERRCODE_INVALID_TEXT_REPRESENTATION for text that is not a
 * quantity, ERRCODE_NUMERIC_VALUE_OUT_OF_RANGE for values that do not fit.
 * paas.quantity_error() reports the same problems as text without raising,
 * so that SQL validation can turn them into PT400 field errors.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "fmgr.h"
#include "lib/stringinfo.h"
#include "utils/builtins.h"
#include "utils/fmgrprotos.h"
#include "utils/numeric.h"

#include "paas.h"

#define QTY_MAX_EXPONENT 1000

typedef struct QtyParts
{
	bool		negative;
	const char *num;			/* integer digits (may be empty) */
	int			num_len;
	const char *frac;			/* fraction digits (may be empty) */
	int			frac_len;
	int			exp10;			/* decimal exponent of the suffix */
	int			exp2;			/* binary exponent of the suffix */
} QtyParts;

static const struct
{
	const char *suffix;
	int			exp10;
	int			exp2;
} qty_suffixes[] =
{
	{"n", -9, 0}, {"u", -6, 0}, {"m", -3, 0}, {"k", 3, 0}, {"M", 6, 0},
	{"G", 9, 0}, {"T", 12, 0}, {"P", 15, 0}, {"E", 18, 0},
	{"Ki", 0, 10}, {"Mi", 0, 20}, {"Gi", 0, 30}, {"Ti", 0, 40},
	{"Pi", 0, 50}, {"Ei", 0, 60},
};

/*
 * Splits "s" by the grammar.  Returns NULL on success, else a message
 * (static text) saying what is wrong; *out_of_range tells the two error
 * kinds apart.
 */
static const char *
qty_split(const char *s, QtyParts *p, bool *out_of_range)
{
	const char *c = s;
	const char *suffix;
	int			i;

	memset(p, 0, sizeof(*p));
	*out_of_range = false;
	if (*c == '\0')
		return "quantity must not be empty";
	if (*c == '+' || *c == '-')
		p->negative = (*c++ == '-');
	p->num = c;
	while (*c >= '0' && *c <= '9')
		c++;
	p->num_len = (int) (c - p->num);
	if (*c == '.')
	{
		p->frac = ++c;
		while (*c >= '0' && *c <= '9')
			c++;
		p->frac_len = (int) (c - p->frac);
	}
	if (p->num_len == 0 && p->frac_len == 0)
		return "quantity must start with a number (e.g. 100m, 1.5Gi, 129e6)";

	suffix = c;
	if (*suffix == '\0')
		return NULL;
	for (i = 0; i < lengthof(qty_suffixes); i++)
	{
		if (strcmp(suffix, qty_suffixes[i].suffix) == 0)
		{
			p->exp10 = qty_suffixes[i].exp10;
			p->exp2 = qty_suffixes[i].exp2;
			return NULL;
		}
	}
	if (*suffix == 'e' || *suffix == 'E')
	{
		bool		neg = false;
		int			e = 0;
		const char *d;

		c = suffix + 1;
		if (*c == '+' || *c == '-')
			neg = (*c++ == '-');
		d = c;
		while (*c >= '0' && *c <= '9')
		{
			if (e <= QTY_MAX_EXPONENT)
				e = e * 10 + (*c - '0');
			c++;
		}
		if (c > d && *c == '\0')
		{
			if (e > QTY_MAX_EXPONENT)
			{
				*out_of_range = true;
				return "quantity exponent is out of range";
			}
			p->exp10 = neg ? -e : e;
			return NULL;
		}
	}
	return "quantity has an invalid suffix (allowed: n u m k M G T P E, Ki Mi Gi Ti Pi Ei, or an exponent such as e3)";
}

/*
 * The value of "p" times 10^scale, after rounding the value itself to nano
 * units; "whole": rounded away from zero to a whole number.  Returns a
 * Numeric (palloc'd in the current context).
 */
static Numeric
qty_scaled(const QtyParts *p, int scale, bool whole)
{
	StringInfoData buf;
	Numeric		nano;
	Numeric		v;

	/* |value| * 10^9, exactly, then ceil: the nano-rounded magnitude */
	initStringInfo(&buf);
	if (p->num_len > 0)
		appendBinaryStringInfo(&buf, p->num, p->num_len);
	else
		appendStringInfoChar(&buf, '0');
	if (p->frac_len > 0)
	{
		appendStringInfoChar(&buf, '.');
		appendBinaryStringInfo(&buf, p->frac, p->frac_len);
	}
	appendStringInfo(&buf, "e%d", p->exp10 + 9);
	nano = DatumGetNumeric(DirectFunctionCall3(numeric_in,
											   CStringGetDatum(buf.data),
											   ObjectIdGetDatum(InvalidOid),
											   Int32GetDatum(-1)));
	if (p->exp2 > 0)
		nano = numeric_mul_opt_error(nano, int64_to_numeric(INT64CONST(1) << p->exp2), NULL);
	nano = DatumGetNumeric(DirectFunctionCall1(numeric_ceil, NumericGetDatum(nano)));

	/* back from nano units to 10^-scale units */
	resetStringInfo(&buf);
	appendStringInfo(&buf, "1e%d", scale - 9);
	v = numeric_mul_opt_error(nano,
							  DatumGetNumeric(DirectFunctionCall3(numeric_in,
																  CStringGetDatum(buf.data),
																  ObjectIdGetDatum(InvalidOid),
																  Int32GetDatum(-1))),
							  NULL);
	pfree(buf.data);
	if (whole)
		v = DatumGetNumeric(DirectFunctionCall1(numeric_ceil, NumericGetDatum(v)));
	else
		v = DatumGetNumeric(DirectFunctionCall1(numeric_trim_scale, NumericGetDatum(v)));
	if (p->negative)
		v = DatumGetNumeric(DirectFunctionCall1(numeric_uminus, NumericGetDatum(v)));
	return v;
}

static void
qty_parse_or_raise(text *t, QtyParts *p, char **str)
{
	bool		range;
	const char *problem;

	*str = text_to_cstring(t);
	problem = qty_split(*str, p, &range);
	if (problem != NULL)
		ereport(ERROR,
				(errcode(range ? ERRCODE_NUMERIC_VALUE_OUT_OF_RANGE
						 : ERRCODE_INVALID_TEXT_REPRESENTATION),
				 errmsg("invalid quantity \"%s\"", *str),
				 errdetail("%s", problem)));
}

/*
 * The common case in 128-bit integers: at most 18 significant digits.
 * ceil(v * 10^scale) equals the result of the exact path (rounding to nano
 * first cannot move a ceiling at scale <= 9).  Returns false when the fast
 * path does not apply; *fits tells whether the result fits an int64.
 */
static bool
qty_int64_fast(const QtyParts *p, int scale, int64 *result, bool *fits)
{
	__int128	m = 0;
	__int128	d = 1;
	int			e;
	int			i;

	if (p->num_len + p->frac_len > 18)
		return false;
	for (i = 0; i < p->num_len; i++)
		m = m * 10 + (p->num[i] - '0');
	for (i = 0; i < p->frac_len; i++)
		m = m * 10 + (p->frac[i] - '0');
	m <<= p->exp2;				/* < 10^18 * 2^60 < 2^120 */
	e = p->exp10 + scale - p->frac_len;
	*fits = true;
	if (e >= 0)
	{
		for (; e > 0 && m != 0; e--)
		{
			m *= 10;
			if (m > PG_INT64_MAX)
			{
				*fits = false;
				return true;
			}
		}
	}
	else if (e < -36)
		m = (m != 0);			/* 0 < v * 10^scale < 1 */
	else
	{
		for (; e < 0; e++)
			d *= 10;
		m = (m + d - 1) / d;
	}
	if (m > PG_INT64_MAX)
	{
		*fits = false;
		return true;
	}
	*result = p->negative ? -(int64) m : (int64) m;
	return true;
}

/* Whole-number result of "p" at "scale" as int64; false when it overflows. */
static bool
qty_int64(const QtyParts *p, int scale, int64 *result)
{
	Numeric		v;
	Numeric		lo;
	Numeric		hi;
	bool		fits;

	if (qty_int64_fast(p, scale, result, &fits))
		return fits;
	v = qty_scaled(p, scale, true);
	lo = int64_to_numeric(PG_INT64_MIN);
	hi = int64_to_numeric(PG_INT64_MAX);
	if (DatumGetInt32(DirectFunctionCall2(numeric_cmp, NumericGetDatum(v), NumericGetDatum(lo))) < 0 ||
		DatumGetInt32(DirectFunctionCall2(numeric_cmp, NumericGetDatum(v), NumericGetDatum(hi))) > 0)
		return false;
	*result = DatumGetInt64(DirectFunctionCall1(numeric_int8, NumericGetDatum(v)));
	return true;
}

/*
 * paas.parse_quantity(text) -> numeric: the exact value (nano precision).
 */
PG_FUNCTION_INFO_V1(paas_parse_quantity);
Datum
paas_parse_quantity(PG_FUNCTION_ARGS)
{
	QtyParts	p;
	char	   *s;

	qty_parse_or_raise(PG_GETARG_TEXT_PP(0), &p, &s);
	PG_RETURN_NUMERIC(qty_scaled(&p, 0, false));
}

static Datum
qty_int_result(FunctionCallInfo fcinfo, int scale)
{
	QtyParts	p;
	char	   *s;
	int64		v;

	qty_parse_or_raise(PG_GETARG_TEXT_PP(0), &p, &s);
	if (!qty_int64(&p, scale, &v))
		ereport(ERROR,
				(errcode(ERRCODE_NUMERIC_VALUE_OUT_OF_RANGE),
				 errmsg("quantity \"%s\" is out of range", s)));
	PG_RETURN_INT64(v);
}

/*
 * paas.quantity_value(text) -> bigint: the value rounded away from zero
 * (bytes of memory and storage, pods).
 */
PG_FUNCTION_INFO_V1(paas_quantity_value);
Datum
paas_quantity_value(PG_FUNCTION_ARGS)
{
	return qty_int_result(fcinfo, 0);
}

/*
 * paas.quantity_milli(text) -> bigint: value * 1000 rounded away from zero
 * (CPU millicores).
 */
PG_FUNCTION_INFO_V1(paas_quantity_milli);
Datum
paas_quantity_milli(PG_FUNCTION_ARGS)
{
	return qty_int_result(fcinfo, 3);
}

/*
 * paas.quantity_error(q text, milli boolean) -> text: NULL when "q" is a
 * non-negative quantity whose value (milli: value * 1000) fits a bigint,
 * else a message for a field error.  Never raises for bad input.
 */
/*
 * The problem with quantity "s" as a field value, or NULL when it is a
 * non-negative quantity whose value (milli: value * 1000, rounded away from
 * zero) fits a bigint; that value is then stored in *value.
 */
const char *
paas_quantity_problem(const char *s, bool milli, int64 *value)
{
	QtyParts	p;
	bool		range;
	const char *problem;
	int64		v;

	problem = qty_split(s, &p, &range);
	if (problem == NULL && !qty_int64(&p, milli ? 3 : 0, &v))
		problem = "quantity is out of range";
	if (problem == NULL && v < 0)
		problem = "quantity must not be negative";
	if (problem == NULL)
		*value = v;
	return problem;
}

PG_FUNCTION_INFO_V1(paas_quantity_error);
Datum
paas_quantity_error(PG_FUNCTION_ARGS)
{
	char	   *s = text_to_cstring(PG_GETARG_TEXT_PP(0));
	int64		v;
	const char *problem = paas_quantity_problem(s, PG_GETARG_BOOL(1), &v);

	if (problem == NULL)
		PG_RETURN_NULL();
	PG_RETURN_TEXT_P(cstring_to_text(problem));
}
