/*-------------------------------------------------------------------------
 *
 * ledger.c
 *	  paas.ledger_post(idempotency_key text, entries jsonb): the one writer
 *	  of the double-entry ledger (tables in sql/parts/40_ledger.sql).
 *
 * entries is a JSON array of
 *	  {"kind": text, "memo": text?, "ref": any?,
 *	   "postings": [{"account": bigint, "amount": bigint}, ...]}
 * A positive amount raises the account's balance, a negative one lowers it;
 * the postings of each entry sum to zero.
 *
 * Rules a reader must know:
 *	- Everything is validated before anything is written; a failing call
 *	  writes nothing (all entries of a call are one unit).
 *	- The involved accounts are locked with one SELECT ... ORDER BY id FOR
 *	  UPDATE, i.e. in ascending id order, so two calls never deadlock on
 *	  accounts.  Posting and entry ids are drawn after the locks are held,
 *	  so an account's postings in id order are its history: each posting's
 *	  balance_before is the previous posting's balance_after.
 *	- A wallet may never go below zero, after any single posting (PT402).
 *	  Platform accounts may.
 *	- Platform accounts are hot (every charge credits 'revenue').  Each has
 *	  LEDGER_SLOTS slot rows; a posting for a platform account is written to
 *	  slot MyBackendId % LEDGER_SLOTS.  Backend ids are small and dense, so
 *	  concurrent sessions mostly get distinct slots and rarely queue on one
 *	  row lock.  The result still names the platform account; its
 *	  balanceBefore/balanceAfter are those of the slot, whose id is given as
 *	  "slotAccount".  Slot rows cannot be named in a call (PT404).
 *	- Idempotency: the key row (SHA-256 of the entries' jsonb text, the
 *	  entry ids) is inserted by the write statement with ON CONFLICT DO
 *	  NOTHING, so a concurrent first use makes this call wait, then write
 *	  nothing.  A key seen before with the same entries returns the first
 *	  result, rebuilt by paas.ledger_replay, with "replayed": true; other
 *	  entries are PT409.  A refusal (PT402, overflow) is only raised after
 *	  checking that the key is new.
 *	- After pg_restore the platform slots are made again by CREATE EXTENSION
 *	  with balance 0 while their postings come back from the dump: a posting
 *	  would break their chain for good.  So a locked row must be verified
 *	  (ledger_accounts.balance_verified), or no unverified row anywhere may
 *	  have postings or a balance (paas.ledger_restore_needed(): a fresh
 *	  install; the write verifies the row); otherwise the call is refused
 *	  with PT503 until the background worker has rebuilt the balances
 *	  (paas.ledger_restore_balances).  The check is part of the lock
 *	  statement and a verified row costs nothing more: the probe runs only
 *	  for a row's first posting.
 *	- Errors: PT400 bad input or bigint overflow (DETAIL is the JSON array of
 *	  {field, message} the gateway prints), PT404 unknown account, PT402
 *	  insufficient balance, PT409 idempotency conflict, PT503 balances not yet
 *	  rebuilt after a restore.
 *	- Whatever the batch size, a call runs two statements: one resolves and
 *	  locks the accounts, one writes the key, entries, postings and cached
 *	  balances.  Plans are prepared once per backend and kept
 *	  (SPI_keepplan).
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <errno.h>

#include "catalog/namespace.h"
#include "catalog/pg_type.h"
#include "commands/sequence.h"
#include "common/int.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "lib/stringinfo.h"
#include "mb/pg_wchar.h"
#include "miscadmin.h"
#include "storage/backendid.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/json.h"
#include "utils/jsonb.h"
#include "utils/lsyscache.h"
#include "utils/numeric.h"

#include "paas.h"

PG_FUNCTION_INFO_V1(paas_ledger_post);

#define LEDGER_MAX_ENTRIES		10000
#define LEDGER_MAX_POSTINGS		100000
#define LEDGER_MAX_ERRORS		20
#define LEDGER_SLOTS			16	/* slot rows per platform account */

typedef struct LedgerPosting
{
	int64		account;		/* as given: a wallet or a platform account */
	int64		row;			/* the row written: the account or its slot */
	int64		amount;
	int64		before;
	int64		after;
} LedgerPosting;

typedef struct LedgerEntry
{
	text	   *kind;
	text	   *memo;
	Jsonb	   *ref;			/* NULL when absent or JSON null */
	int			first;			/* index of its first posting */
	int			npostings;
} LedgerEntry;

typedef struct LedgerAccount
{
	int64		id;
	bool		wallet;
	int64		balance;
	bool		ready;			/* verified, or nothing posted to it yet */
} LedgerAccount;

/* Validation errors, collected as the JSON array the gateway prints. */
typedef struct ErrList
{
	StringInfoData buf;
	int			n;
} ErrList;

static SPIPlanPtr plan_replay = NULL;
static SPIPlanPtr plan_lock = NULL;
static SPIPlanPtr plan_write = NULL;

static void
err_add(ErrList *errs, const char *field, const char *message)
{
	if (errs->n >= LEDGER_MAX_ERRORS)
		return;
	appendStringInfoString(&errs->buf, errs->n == 0 ? "[" : ",");
	appendStringInfoString(&errs->buf, "{\"field\":");
	escape_json(&errs->buf, field);
	appendStringInfoString(&errs->buf, ",\"message\":");
	escape_json(&errs->buf, message);
	appendStringInfoChar(&errs->buf, '}');
	errs->n++;
}

static void
err_raise_if_any(ErrList *errs)
{
	if (errs->n == 0)
		return;
	appendStringInfoChar(&errs->buf, ']');
	ereport(ERROR,
			(errcode(ERRCODE_PAAS_VALIDATION),
			 errmsg("Validation failed"),
			 errdetail_internal("%s", errs->buf.data)));
}

/*
 * A JSON number that is an integer in bigint range.  Returns false (and
 * leaves *out alone) for anything else; *overflow tells an integer out of
 * range apart from a non-integer.
 */
static bool
jsonb_to_int64(JsonbValue *v, int64 *out, bool *overflow)
{
	char	   *s;
	char	   *p;
	char	   *end;
	long long	n;

	*overflow = false;
	if (v == NULL || v->type != jbvNumeric)
		return false;
	s = DatumGetCString(DirectFunctionCall1(numeric_out,
											NumericGetDatum(v->val.numeric)));
	p = s;
	if (*p == '-')
		p++;
	if (*p == '\0')
		return false;
	for (; *p; p++)
		if (*p < '0' || *p > '9')
			return false;
	errno = 0;
	n = strtoll(s, &end, 10);
	if (errno == ERANGE || *end != '\0')
	{
		*overflow = true;
		return false;
	}
	*out = (int64) n;
	return true;
}

static JsonbValue *
get_key(JsonbContainer *obj, const char *key)
{
	return getKeyJsonValueFromContainer(obj, key, strlen(key), NULL);
}

static bool
is_container(JsonbValue *v, bool array)
{
	if (v == NULL || v->type != jbvBinary)
		return false;
	return array ? JsonContainerIsArray(v->val.binary.data)
		: JsonContainerIsObject(v->val.binary.data);
}

/* kind: ^[a-z][a-z0-9_]{0,62}$ */
static bool
valid_kind(const char *s, int len)
{
	if (len < 1 || len > 63 || s[0] < 'a' || s[0] > 'z')
		return false;
	for (int i = 1; i < len; i++)
		if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= '0' && s[i] <= '9') ||
			  s[i] == '_'))
			return false;
	return true;
}

/*
 * Parses and validates the whole batch (raises PT400 listing every failing
 * field).  Fills *entries and *postings, allocated in the current context.
 */
static void
parse_entries(Jsonb *jb, LedgerEntry **entries_out, int *nentries_out,
			  LedgerPosting **postings_out, int *npostings_out)
{
	ErrList		errs;
	int			nentries;
	int			total = 0;
	LedgerEntry *entries;
	LedgerPosting *postings;
	char		field[96];

	initStringInfo(&errs.buf);
	errs.n = 0;

	if (JB_ROOT_IS_SCALAR(jb) || !JB_ROOT_IS_ARRAY(jb))
	{
		err_add(&errs, "entries", "entries must be a JSON array");
		err_raise_if_any(&errs);
	}
	nentries = JB_ROOT_COUNT(jb);
	if (nentries < 1 || nentries > LEDGER_MAX_ENTRIES)
	{
		snprintf(field, sizeof(field), "entries must hold 1 to %d entries",
				 LEDGER_MAX_ENTRIES);
		err_add(&errs, "entries", field);
		err_raise_if_any(&errs);
	}

	/* First pass: sizes, so that the arrays are allocated once. */
	for (int i = 0; i < nentries; i++)
	{
		JsonbValue *e = getIthJsonbValueFromContainer(&jb->root, i);
		JsonbValue *ps;

		if (!is_container(e, false))
			continue;
		ps = get_key(e->val.binary.data, "postings");
		if (is_container(ps, true))
			total += JsonContainerSize(ps->val.binary.data);
	}
	if (total > LEDGER_MAX_POSTINGS)
	{
		snprintf(field, sizeof(field), "a call may hold at most %d postings",
				 LEDGER_MAX_POSTINGS);
		err_add(&errs, "entries", field);
		err_raise_if_any(&errs);
	}

	entries = palloc0(sizeof(LedgerEntry) * nentries);
	postings = palloc0(sizeof(LedgerPosting) * Max(total, 1));
	total = 0;

	for (int i = 0; i < nentries; i++)
	{
		JsonbValue *e = getIthJsonbValueFromContainer(&jb->root, i);
		JsonbContainer *obj;
		JsonbValue *kind;
		JsonbValue *memo;
		JsonbValue *ref;
		JsonbValue *ps;
		int			np;
		int64		sum = 0;
		bool		sum_ok = true;
		bool		amounts_ok = true;

		entries[i].first = total;
		if (!is_container(e, false))
		{
			snprintf(field, sizeof(field), "entries[%d]", i);
			err_add(&errs, field, "an entry must be a JSON object");
			continue;
		}
		obj = e->val.binary.data;

		kind = get_key(obj, "kind");
		if (kind == NULL || kind->type != jbvString ||
			!valid_kind(kind->val.string.val, kind->val.string.len))
		{
			snprintf(field, sizeof(field), "entries[%d].kind", i);
			err_add(&errs, field,
					"kind must be a string of lower-case letters, digits and _ (1 to 63 characters)");
		}
		else
			entries[i].kind = cstring_to_text_with_len(kind->val.string.val,
													   kind->val.string.len);

		memo = get_key(obj, "memo");
		if (memo == NULL || memo->type == jbvNull)
			entries[i].memo = cstring_to_text("");
		else if (memo->type != jbvString ||
				 pg_mbstrlen_with_len(memo->val.string.val,
									  memo->val.string.len) > 1000)
		{
			snprintf(field, sizeof(field), "entries[%d].memo", i);
			err_add(&errs, field, "memo must be a string of at most 1000 characters");
		}
		else
			entries[i].memo = cstring_to_text_with_len(memo->val.string.val,
													   memo->val.string.len);

		ref = get_key(obj, "ref");
		if (ref != NULL && ref->type != jbvNull)
			entries[i].ref = JsonbValueToJsonb(ref);

		ps = get_key(obj, "postings");
		if (!is_container(ps, true) ||
			(np = JsonContainerSize(ps->val.binary.data)) < 2)
		{
			snprintf(field, sizeof(field), "entries[%d].postings", i);
			err_add(&errs, field, "postings must be an array of at least 2 postings");
			continue;
		}

		for (int j = 0; j < np; j++)
		{
			JsonbValue *p = getIthJsonbValueFromContainer(ps->val.binary.data, j);
			LedgerPosting *lp = &postings[total + j];
			bool		overflow;

			if (!is_container(p, false))
			{
				snprintf(field, sizeof(field), "entries[%d].postings[%d]", i, j);
				err_add(&errs, field, "a posting must be a JSON object");
				amounts_ok = false;
				continue;
			}
			if (!jsonb_to_int64(get_key(p->val.binary.data, "account"),
								&lp->account, &overflow) || lp->account <= 0)
			{
				snprintf(field, sizeof(field), "entries[%d].postings[%d].account", i, j);
				err_add(&errs, field, "account must be a positive integer");
			}
			if (!jsonb_to_int64(get_key(p->val.binary.data, "amount"),
								&lp->amount, &overflow) ||
				lp->amount == 0 || lp->amount == PG_INT64_MIN)
			{
				snprintf(field, sizeof(field), "entries[%d].postings[%d].amount", i, j);
				err_add(&errs, field, overflow ?
						"amount is out of range" :
						"amount must be a non-zero integer");
				amounts_ok = false;
				continue;
			}
			if (sum_ok && pg_add_s64_overflow(sum, lp->amount, &sum))
				sum_ok = false;
		}
		if (amounts_ok && !sum_ok)
		{
			snprintf(field, sizeof(field), "entries[%d].postings", i);
			err_add(&errs, field, "the sum of the amounts is out of range");
		}
		else if (amounts_ok && sum != 0)
		{
			snprintf(field, sizeof(field), "entries[%d].postings", i);
			err_add(&errs, field, "the amounts of an entry must sum to zero");
		}
		entries[i].npostings = np;
		total += np;
	}
	err_raise_if_any(&errs);

	*entries_out = entries;
	*nentries_out = nentries;
	*postings_out = postings;
	*npostings_out = total;
}

static int
cmp_int64(const void *a, const void *b)
{
	int64		x = *(const int64 *) a;
	int64		y = *(const int64 *) b;

	return (x > y) - (x < y);
}

/*
 * A kept plan, always generic: the array parameters make every custom plan
 * look cheaper than the generic one, so the plan cache would re-plan each
 * call; the generic plans (index nested loops) are the right ones anyway.
 */
static SPIPlanPtr
prepare(const char *sql, int nargs, Oid *types)
{
	SPIPlanPtr	plan = SPI_prepare_cursor(sql, nargs, types,
										  CURSOR_OPT_GENERIC_PLAN);

	if (plan == NULL)
		elog(ERROR, "SPI_prepare failed for \"%s\": %s", sql,
			 SPI_result_code_string(SPI_result));
	if (SPI_keepplan(plan) != 0)
		elog(ERROR, "SPI_keepplan failed");
	return plan;
}

static void
prepare_plans(void)
{
	Oid			key_types[2] = {TEXTOID, JSONBOID};
	Oid			lock_types[2] = {INT8ARRAYOID, INT2OID};
	Oid			write_types[14] = {
		INT8ARRAYOID, TEXTARRAYOID, TEXTARRAYOID, JSONBARRAYOID, TEXTOID,
		INT8ARRAYOID, INT8ARRAYOID, INT8ARRAYOID, INT8ARRAYOID, INT8ARRAYOID,
		INT8ARRAYOID, INT8ARRAYOID, INT8ARRAYOID, JSONBOID};

	if (plan_write != NULL)
		return;
	plan_replay = prepare(
		"SELECT same_content, result FROM paas.ledger_replay($1, $2)",
		2, key_types);

	/*
	 * Resolves the given accounts to the rows written (a platform account to
	 * its slot $2, when it has slots; slot rows themselves are not
	 * accepted) and locks those rows in ascending id order.  Column 4 is the
	 * account as given, so the caller can map back and spot unknown ids;
	 * column 5 whether the row may take a posting (see the file header: the
	 * probe runs only for an unverified row).
	 */
	plan_lock = prepare(
		"SELECT a.id, a.kind OPERATOR(pg_catalog.=) 'wallet', a.balance, "
		"COALESCE(a.parent_id, a.id), "
		"a.balance_verified OR NOT paas.ledger_restore_needed() "
		"FROM paas.ledger_accounts a "
		"WHERE a.id OPERATOR(pg_catalog.=) ANY (ARRAY("
		"SELECT COALESCE(s.id, r.id) FROM paas.ledger_accounts r "
		"LEFT JOIN paas.ledger_accounts s ON s.parent_id OPERATOR(pg_catalog.=) r.id "
		"AND s.slot OPERATOR(pg_catalog.=) $2 "
		"WHERE r.id OPERATOR(pg_catalog.=) ANY ($1) "
		"AND r.kind OPERATOR(pg_catalog.<>) 'platform_slot')) "
		"ORDER BY a.id FOR UPDATE OF a",
		2, lock_types);

	/*
	 * Every write of a call in one statement: the idempotency key (when $5
	 * is one), entries, postings and the cached balances.  When the key
	 * already exists (ON CONFLICT waits for a concurrent first use to end)
	 * nothing is written and the statement reports 0 rows; otherwise the
	 * number of rows locked.
	 */
	plan_write = prepare(
		"WITH k AS ("
		"INSERT INTO paas.ledger_idempotency (key, request_hash, entry_ids) "
		"SELECT $5, pg_catalog.sha256(pg_catalog.convert_to($14::pg_catalog.text, 'UTF8')), $1 "
		"WHERE $5 IS NOT NULL ON CONFLICT (key) DO NOTHING RETURNING 1), "
		"g AS (SELECT $5 IS NULL OR EXISTS (SELECT 1 FROM k) AS ok), "
		"e AS ("
		"INSERT INTO paas.ledger_entries (id, kind, memo, ref, idempotency_key) "
		"SELECT u.id, u.kind, u.memo, u.ref, $5 "
		"FROM unnest($1, $2, $3, $4) AS u(id, kind, memo, ref) WHERE (SELECT ok FROM g)), "
		"p AS ("
		"INSERT INTO paas.ledger_postings "
		"(id, entry_id, account_id, amount, balance_before, balance_after) "
		"SELECT * FROM unnest($6, $7, $8, $9, $10, $11) WHERE (SELECT ok FROM g)) "
		"UPDATE paas.ledger_accounts a SET balance = u.b, updated_at = pg_catalog.now(), "
		"balance_verified = true "
		"FROM unnest($12, $13) AS u(id, b) "
		"WHERE a.id OPERATOR(pg_catalog.=) u.id AND (SELECT ok FROM g)",
		14, write_types);
}

static Datum
int8_array(int64 *values, int n)
{
	Datum	   *d = palloc(sizeof(Datum) * Max(n, 1));

	for (int i = 0; i < n; i++)
		d[i] = Int64GetDatum(values[i]);
	return PointerGetDatum(construct_array(d, n, INT8OID, sizeof(int64),
										   FLOAT8PASSBYVAL, TYPALIGN_DOUBLE));
}

static void
execute(SPIPlanPtr plan, Datum *values, const char *nulls, int expected)
{
	int			rc = SPI_execute_plan(plan, values, nulls, false, 0);

	if (rc < 0)
		elog(ERROR, "SPI_execute_plan failed: %s", SPI_result_code_string(rc));
	if (expected >= 0 && SPI_processed != (uint64) expected)
		elog(ERROR, "ledger statement affected " UINT64_FORMAT " rows, expected %d",
			 SPI_processed, expected);
}

static Oid
sequence_oid(const char *name)
{
	Oid			nsp = get_namespace_oid("paas", false);
	Oid			relid = get_relname_relid(name, nsp);

	if (!OidIsValid(relid))
		elog(ERROR, "sequence paas.%s does not exist", name);
	return relid;
}

static LedgerAccount *
find_account(LedgerAccount *accounts, int n, int64 id)
{
	return bsearch(&id, accounts, n, sizeof(LedgerAccount), cmp_int64);
}

/* Index of id in the sorted array ids[0..n), or -1. */
static int
find_id(const int64 *ids, int n, int64 id)
{
	const int64 *hit = bsearch(&id, ids, n, sizeof(int64), cmp_int64);

	return hit ? (int) (hit - ids) : -1;
}

/*
 * The stored answer for an idempotency key seen before: the first result
 * with "replayed": true, copied out of SPI memory.  PT409 when the entries
 * differ from the first use.  Returns false when the key is unknown.
 */
static bool
replay(text *key, Jsonb *jb, Datum *result)
{
	Datum		args[2];
	bool		isnull;
	Datum		same;

	args[0] = PointerGetDatum(key);
	args[1] = JsonbPGetDatum(jb);
	execute(plan_replay, args, NULL, 1);
	same = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull);
	if (isnull)
		return false;
	if (!DatumGetBool(same))
		ereport(ERROR,
				(errcode(ERRCODE_PAAS_CONFLICT),
				 errmsg("idempotency key was already used with different content"),
				 errhint("Use a new idempotency key for a different request.")));
	*result = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 2, &isnull);
	if (isnull)
		elog(ERROR, "idempotency key without a result");
	*result = SPI_datumTransfer(*result, false, -1);
	return true;
}

Datum
paas_ledger_post(PG_FUNCTION_ARGS)
{
	text	   *key = PG_ARGISNULL(0) ? NULL : PG_GETARG_TEXT_PP(0);
	Jsonb	   *jb;
	MemoryContext outer = CurrentMemoryContext;
	LedgerEntry *entries;
	LedgerPosting *postings;
	int			nentries;
	int			npostings;
	int64	   *ids;			/* distinct accounts as given, ascending */
	int64	   *rows;			/* ids[i] is written to rows[i] */
	int			nids;
	LedgerAccount *accounts;	/* the locked rows, ascending */
	int			naccounts;
	int64	   *entry_ids;
	int64	   *posting_ids;
	StringInfoData out;
	Jsonb	   *result;
	Datum		args[14];
	char		nulls[14];

	if (PG_ARGISNULL(1))
		ereport(ERROR,
				(errcode(ERRCODE_PAAS_VALIDATION),
				 errmsg("Validation failed"),
				 errdetail_internal("[{\"field\":\"entries\",\"message\":\"entries is required\"}]")));
	jb = PG_GETARG_JSONB_P(1);
	if (key != NULL &&
		(VARSIZE_ANY_EXHDR(key) < 1 || VARSIZE_ANY_EXHDR(key) > 255))
		ereport(ERROR,
				(errcode(ERRCODE_PAAS_VALIDATION),
				 errmsg("Validation failed"),
				 errdetail_internal("[{\"field\":\"idempotencyKey\",\"message\":\"idempotency key must be 1 to 255 characters\"}]")));

	parse_entries(jb, &entries, &nentries, &postings, &npostings);

	ids = palloc(sizeof(int64) * npostings);
	for (int i = 0; i < npostings; i++)
		ids[i] = postings[i].account;
	qsort(ids, npostings, sizeof(int64), cmp_int64);
	nids = 0;
	for (int i = 0; i < npostings; i++)
		if (nids == 0 || ids[nids - 1] != ids[i])
			ids[nids++] = ids[i];

	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	prepare_plans();

	/* Resolve and lock, in ascending row id order; read the balances. */
	args[0] = int8_array(ids, nids);
	args[1] = Int16GetDatum((int16) (MyBackendId % LEDGER_SLOTS));
	execute(plan_lock, args, NULL, -1);
	naccounts = (int) SPI_processed;
	accounts = palloc(sizeof(LedgerAccount) * Max(naccounts, 1));
	rows = palloc0(sizeof(int64) * nids);
	for (int i = 0; i < naccounts; i++)
	{
		HeapTuple	tup = SPI_tuptable->vals[i];
		TupleDesc	desc = SPI_tuptable->tupdesc;
		bool		isnull;
		int			k;

		accounts[i].id = DatumGetInt64(SPI_getbinval(tup, desc, 1, &isnull));
		accounts[i].wallet = DatumGetBool(SPI_getbinval(tup, desc, 2, &isnull));
		accounts[i].balance = DatumGetInt64(SPI_getbinval(tup, desc, 3, &isnull));
		k = find_id(ids, nids, DatumGetInt64(SPI_getbinval(tup, desc, 4, &isnull)));
		if (k >= 0)
			rows[k] = accounts[i].id;
		accounts[i].ready = DatumGetBool(SPI_getbinval(tup, desc, 5, &isnull));
	}
	for (int i = 0; i < nids; i++)
		if (rows[i] == 0)
			ereport(ERROR,
					(errcode(ERRCODE_PAAS_NOT_FOUND),
					 errmsg("ledger account " INT64_FORMAT " does not exist",
							ids[i])));
	for (int i = 0; i < npostings; i++)
		postings[i].row = rows[find_id(ids, nids, postings[i].account)];
	for (int i = 0; i < naccounts; i++)
		if (!accounts[i].ready)
			ereport(ERROR,
					(errcode(ERRCODE_PAAS_UNAVAILABLE),
					 errmsg("Ledger temporarily unavailable: balances are being rebuilt after a restore"),
					 errdetail("The cached balances of the platform accounts (ledger account "
							   INT64_FORMAT " among them) are not yet rebuilt from their postings.",
							   accounts[i].id),
					 errhint("Retry shortly: the background worker rebuilds the balances; "
							 "a superuser can run SELECT paas.ledger_restore_balances().")));

	/*
	 * Apply the postings in order, checking every intermediate balance.  A
	 * repeated key is answered before any refusal: the first call may have
	 * spent the money this one finds missing.
	 */
	for (int i = 0; i < npostings; i++)
	{
		LedgerPosting *p = &postings[i];
		LedgerAccount *a = find_account(accounts, naccounts, p->row);
		bool		overflow;

		p->before = a->balance;
		overflow = pg_add_s64_overflow(a->balance, p->amount, &p->after);
		if ((overflow || (a->wallet && p->after < 0)) && key != NULL)
		{
			Datum		prior;

			if (replay(key, jb, &prior))
			{
				SPI_finish();
				PG_RETURN_DATUM(prior);
			}
		}
		if (overflow)
			ereport(ERROR,
					(errcode(ERRCODE_PAAS_VALIDATION),
					 errmsg("Validation failed"),
					 errdetail_internal("[{\"field\":\"amount\",\"message\":\"the balance of account "
										INT64_FORMAT " would overflow\"}]", p->account)));
		if (a->wallet && p->after < 0)
			ereport(ERROR,
					(errcode(ERRCODE_PAAS_INSUFFICIENT),
					 errmsg("Insufficient balance"),
					 errdetail("Account " INT64_FORMAT " holds " INT64_FORMAT
							   " IDR, less than the debit of " INT64_FORMAT " IDR.",
							   a->id, a->balance, -p->amount)));
		a->balance = p->after;
	}

	/* Ids drawn while the locks are held: id order is history order. */
	{
		Oid			eseq = sequence_oid("ledger_entry_id_seq");
		Oid			pseq = sequence_oid("ledger_posting_id_seq");

		entry_ids = palloc(sizeof(int64) * nentries);
		posting_ids = palloc(sizeof(int64) * npostings);
		for (int i = 0; i < nentries; i++)
			entry_ids[i] = nextval_internal(eseq, false);
		for (int i = 0; i < npostings; i++)
			posting_ids[i] = nextval_internal(pseq, false);
	}

	/* The result, built in the caller's context so that it outlives SPI. */
	{
		MemoryContext spi = MemoryContextSwitchTo(outer);

		initStringInfo(&out);
		appendStringInfoString(&out, "{\"replayed\": false, \"entries\": [");
		for (int i = 0; i < nentries; i++)
		{
			appendStringInfo(&out, "%s{\"id\": " INT64_FORMAT ", \"kind\": ",
							 i ? ", " : "", entry_ids[i]);
			escape_json(&out, text_to_cstring(entries[i].kind));
			appendStringInfoString(&out, ", \"postings\": [");
			for (int j = 0; j < entries[i].npostings; j++)
			{
				LedgerPosting *p = &postings[entries[i].first + j];

				appendStringInfo(&out,
								 "%s{\"account\": " INT64_FORMAT
								 ", \"amount\": " INT64_FORMAT
								 ", \"balanceBefore\": " INT64_FORMAT
								 ", \"balanceAfter\": " INT64_FORMAT,
								 j ? ", " : "", p->account, p->amount,
								 p->before, p->after);
				if (p->row != p->account)
					appendStringInfo(&out, ", \"slotAccount\": " INT64_FORMAT,
									 p->row);
				appendStringInfoChar(&out, '}');
			}
			appendStringInfoString(&out, "]}");
		}
		appendStringInfoString(&out, "]}");
		result = DatumGetJsonbP(DirectFunctionCall1(jsonb_in,
													CStringGetDatum(out.data)));
		MemoryContextSwitchTo(spi);
	}

	/* Every write in one statement. */
	memset(nulls, ' ', sizeof(nulls));
	{
		Datum	   *kinds = palloc(sizeof(Datum) * nentries);
		Datum	   *memos = palloc(sizeof(Datum) * nentries);
		Datum	   *refs = palloc(sizeof(Datum) * nentries);
		bool	   *refnulls = palloc(sizeof(bool) * nentries);
		int			dims[1] = {nentries};
		int			lbs[1] = {1};

		for (int i = 0; i < nentries; i++)
		{
			kinds[i] = PointerGetDatum(entries[i].kind);
			memos[i] = PointerGetDatum(entries[i].memo);
			refs[i] = PointerGetDatum(entries[i].ref);
			refnulls[i] = entries[i].ref == NULL;
		}
		args[0] = int8_array(entry_ids, nentries);
		args[1] = PointerGetDatum(construct_array(kinds, nentries, TEXTOID, -1,
												  false, TYPALIGN_INT));
		args[2] = PointerGetDatum(construct_array(memos, nentries, TEXTOID, -1,
												  false, TYPALIGN_INT));
		args[3] = PointerGetDatum(construct_md_array(refs, refnulls, 1, dims, lbs,
													 JSONBOID, -1, false,
													 TYPALIGN_INT));
		args[4] = key ? PointerGetDatum(key) : (Datum) 0;
		nulls[4] = key ? ' ' : 'n';
	}
	{
		int64	   *eid = palloc(sizeof(int64) * npostings);
		int64	   *acc = palloc(sizeof(int64) * npostings);
		int64	   *amt = palloc(sizeof(int64) * npostings);
		int64	   *bef = palloc(sizeof(int64) * npostings);
		int64	   *aft = palloc(sizeof(int64) * npostings);

		for (int i = 0; i < nentries; i++)
			for (int j = entries[i].first; j < entries[i].first + entries[i].npostings; j++)
				eid[j] = entry_ids[i];
		for (int i = 0; i < npostings; i++)
		{
			acc[i] = postings[i].row;
			amt[i] = postings[i].amount;
			bef[i] = postings[i].before;
			aft[i] = postings[i].after;
		}
		args[5] = int8_array(posting_ids, npostings);
		args[6] = int8_array(eid, npostings);
		args[7] = int8_array(acc, npostings);
		args[8] = int8_array(amt, npostings);
		args[9] = int8_array(bef, npostings);
		args[10] = int8_array(aft, npostings);
	}
	{
		int64	   *aid = palloc(sizeof(int64) * naccounts);
		int64	   *bal = palloc(sizeof(int64) * naccounts);

		for (int i = 0; i < naccounts; i++)
		{
			aid[i] = accounts[i].id;
			bal[i] = accounts[i].balance;
		}
		args[11] = int8_array(aid, naccounts);
		args[12] = int8_array(bal, naccounts);
	}
	args[13] = JsonbPGetDatum(jb);
	execute(plan_write, args, nulls, -1);
	if (SPI_processed == 0)
	{
		/* The key was taken meanwhile: answer as its first use did. */
		Datum		prior;

		if (key == NULL || !replay(key, jb, &prior))
			elog(ERROR, "ledger write affected no rows");
		SPI_finish();
		PG_RETURN_DATUM(prior);
	}
	if (SPI_processed != (uint64) naccounts)
		elog(ERROR, "ledger write updated " UINT64_FORMAT " accounts, expected %d",
			 SPI_processed, naccounts);

	SPI_finish();
	PG_RETURN_JSONB_P(result);
}
