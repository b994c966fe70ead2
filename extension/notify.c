/*-------------------------------------------------------------------------
 *
 * notify.c
 *	  SQL-callable helpers of the notifications area (the tables, templates
 *	  and triggers are in sql/parts/75_notifications.sql; the sender is
 *	  bgworker/mailer.c):
 *	    paas.mail_encode_header(text)  RFC 2047 encoded-words
 *	    paas.mail_wake()               wakes the mailer when the transaction commits
 *	    paas.mailer_state()            the mailer's published state
 *	    paas.invoice_pdf(jsonb)        the invoice PDF (httpd/invoice_layout.c)
 *
 * Rules a reader must know:
 *	  - header values that are not plain printable ASCII become encoded-words
 *		"=?UTF-8?B?...?=" of at most 75 characters, split between UTF-8
 *		characters, folded with CRLF SP (RFC 2047 sections 2 and 5); base64
 *		is PostgreSQL's pg_b64_encode.  No library routine of libcurl or
 *		PostgreSQL does this (libcurl's MIME API leaves headers as given).
 *	  - paas.mail_wake() sets the mailer's latch only after the calling
 *		transaction commits (a transaction callback), so the mailer never
 *		wakes for rows it cannot see yet, and a rollback wakes nothing.
 *	  - the invoice JSON is read with PostgreSQL's jsonb API (jansson would
 *		clash with the backend's json_object()); the PDF bytes come from
 *		libharu's malloc and are freed in PG_FINALLY.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/xact.h"
#include "common/base64.h"
#include "fmgr.h"
#include "funcapi.h"
#include "lib/stringinfo.h"
#include "mb/pg_wchar.h"
#include "utils/builtins.h"
#include "utils/jsonb.h"
#include "utils/timestamp.h"

#include "invoice_layout.h"
#include "notify.h"
#include "paas.h"

/* raw bytes per encoded-word: 45 bytes are 60 base64 characters, so a word
 * ("=?UTF-8?B?" + 60 + "?=") is 72 characters, within the 75 allowed */
#define WORD_BYTES 45

static bool
plain_ascii(const char *s)
{
	for (; *s; s++)
	{
		unsigned char c = (unsigned char) *s;

		if (c < 0x20 || c > 0x7E)
			return false;
		if (c == '=' && s[1] == '?')
			return false;		/* would read as the start of an encoded-word */
	}
	return true;
}

/*
 * s as an RFC 2047 header value (palloc'd): s itself when it is plain
 * printable ASCII, else encoded-words of UTF-8 split between characters.
 * s must be valid UTF-8 (it comes from the database).  Control characters
 * (CR, LF, ...) are encoded too, so a value can never end a header early.
 */
char *
paas_mail_encode_word(const char *s)
{
	StringInfoData out;
	int			len = (int) strlen(s);
	int			pos = 0;

	if (plain_ascii(s))
		return pstrdup(s);
	initStringInfo(&out);
	while (pos < len)
	{
		int			n = 0;
		char		b64[128];
		int			enc;

		/* whole characters only, up to WORD_BYTES */
		while (pos + n < len)
		{
			int			cl = pg_utf_mblen((const unsigned char *) s + pos + n);

			if (cl < 1)
				cl = 1;
			if (pos + n + cl > len)
				cl = len - pos - n;
			if (n > 0 && n + cl > WORD_BYTES)
				break;
			n += cl;
		}
		enc = pg_b64_encode(s + pos, n, b64, sizeof(b64) - 1);
		if (enc < 0)
			elog(ERROR, "base64 encoding of a header failed");
		b64[enc] = '\0';
		if (out.len > 0)
			appendStringInfoString(&out, "\r\n ");
		appendStringInfo(&out, "=?UTF-8?B?%s?=", b64);
		pos += n;
	}
	return out.data;
}

/*
 * A mailbox "Display Name <addr>" (palloc'd): the name as an encoded-word
 * when it is not ASCII, as a quoted-string otherwise; just "<addr>" without
 * a name.
 */
char *
paas_mail_encode_address(const char *name, const char *addr)
{
	StringInfoData out;

	initStringInfo(&out);
	if (name == NULL || name[0] == '\0')
		appendStringInfo(&out, "<%s>", addr);
	else if (plain_ascii(name))
	{
		appendStringInfoChar(&out, '"');
		for (const char *p = name; *p; p++)
		{
			if (*p == '"' || *p == '\\')
				appendStringInfoChar(&out, '\\');
			appendStringInfoChar(&out, *p);
		}
		appendStringInfo(&out, "\" <%s>", addr);
	}
	else
		appendStringInfo(&out, "%s <%s>", paas_mail_encode_word(name), addr);
	return out.data;
}

PG_FUNCTION_INFO_V1(paas_mail_encode_header);
Datum
paas_mail_encode_header(PG_FUNCTION_ARGS)
{
	char	   *s = text_to_cstring(PG_GETARG_TEXT_PP(0));

	PG_RETURN_TEXT_P(cstring_to_text(paas_mail_encode_word(s)));
}

/* ---- waking the mailer after commit ---------------------------------- */

static bool wake_pending = false;

static void
mail_xact_callback(XactEvent event, void *arg)
{
	switch (event)
	{
		case XACT_EVENT_COMMIT:
		case XACT_EVENT_PARALLEL_COMMIT:
			if (wake_pending && paas_mailer_shared != NULL)
			{
				Latch	   *latch;

				SpinLockAcquire(&paas_mailer_shared->mutex);
				latch = paas_mailer_shared->latch;
				SpinLockRelease(&paas_mailer_shared->mutex);
				if (latch != NULL)
					SetLatch(latch);
			}
			wake_pending = false;
			break;
		case XACT_EVENT_ABORT:
		case XACT_EVENT_PARALLEL_ABORT:
		case XACT_EVENT_PREPARE:
			wake_pending = false;
			break;
		default:
			break;
	}
}

/* Registers the transaction callback of paas.mail_wake() (every process). */
void
paas_mail_wake_init(void)
{
	RegisterXactCallback(mail_xact_callback, NULL);
}

PG_FUNCTION_INFO_V1(paas_mail_wake);
Datum
paas_mail_wake(PG_FUNCTION_ARGS)
{
	wake_pending = true;
	PG_RETURN_VOID();
}

/* ---- the mailer's state ---------------------------------------------- */

PG_FUNCTION_INFO_V1(paas_mailer_state);
Datum
paas_mailer_state(PG_FUNCTION_ARGS)
{
	TupleDesc	tupdesc;
	Datum		values[8];
	bool		nulls[8] = {false};
	PaasMailerShared snap;

	if (get_call_result_type(fcinfo, NULL, &tupdesc) != TYPEFUNC_COMPOSITE)
		elog(ERROR, "return type must be a row type");
	memset(&snap, 0, sizeof(snap));
	if (paas_mailer_shared != NULL)
	{
		SpinLockAcquire(&paas_mailer_shared->mutex);
		memcpy(&snap, paas_mailer_shared, sizeof(snap));
		SpinLockRelease(&paas_mailer_shared->mutex);
	}
	values[0] = BoolGetDatum(snap.pid != 0);
	values[1] = Int32GetDatum(snap.pid);
	nulls[1] = snap.pid == 0;
	values[2] = TimestampTzGetDatum(snap.started_at);
	nulls[2] = snap.started_at == 0;
	values[3] = TimestampTzGetDatum(snap.last_pass);
	nulls[3] = snap.last_pass == 0;
	values[4] = Int64GetDatum((int64) snap.sent);
	values[5] = Int64GetDatum((int64) snap.retried);
	values[6] = Int64GetDatum((int64) snap.failed);
	snap.last_error[sizeof(snap.last_error) - 1] = '\0';
	values[7] = CStringGetTextDatum(snap.last_error);
	nulls[7] = snap.last_error[0] == '\0';
	PG_RETURN_DATUM(HeapTupleGetDatum(heap_form_tuple(tupdesc, values, nulls)));
}

/* ---- the invoice PDF --------------------------------------------------- */

/* The value of key in an object container; NULL when absent. */
static JsonbValue *
jb_get(JsonbContainer *c, const char *key, JsonbValue *v)
{
	if (c == NULL || !JsonContainerIsObject(c))
		return NULL;
	return getKeyJsonValueFromContainer(c, key, strlen(key), v);
}

static const char *
jb_text(JsonbContainer *c, const char *key)
{
	JsonbValue	v;

	if (jb_get(c, key, &v) == NULL || v.type != jbvString)
		return NULL;
	return pnstrdup(v.val.string.val, v.val.string.len);
}

static long long
jb_int(JsonbContainer *c, const char *key)
{
	JsonbValue	v;

	if (jb_get(c, key, &v) == NULL || v.type != jbvNumeric)
		return 0;
	return (long long) DatumGetInt64(DirectFunctionCall1(numeric_int8, NumericGetDatum(v.val.numeric)));
}

/* A nested object or array; NULL when absent or a scalar. */
static JsonbContainer *
jb_container(JsonbContainer *c, const char *key)
{
	JsonbValue	v;

	if (jb_get(c, key, &v) == NULL || v.type != jbvBinary)
		return NULL;
	return v.val.binary.data;
}

/*
 * paas.invoice_pdf(invoice jsonb) -> bytea: the invoice (as
 * paas.invoice_detail() prints it) rendered by the gateway's layout, with
 * the seller block of the paas.invoice_seller_* settings.
 */
PG_FUNCTION_INFO_V1(paas_invoice_pdf);
Datum
paas_invoice_pdf(PG_FUNCTION_ARGS)
{
	Jsonb	   *jb = PG_GETARG_JSONB_P(0);
	JsonbContainer *root = &jb->root;
	JsonbContainer *lines;
	JsonbContainer *topup;
	struct invoice_doc doc;
	struct invoice_line *items = NULL;
	struct invoice_seller who = {paas_invoice_seller_name, paas_invoice_seller_address,
	paas_invoice_seller_tax_id};
	unsigned char *volatile bytes = NULL;
	bytea	   *result = NULL;

	if (!JsonContainerIsObject(root))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("invoice must be a JSON object")));
	memset(&doc, 0, sizeof(doc));
	doc.id = jb_text(root, "id");
	doc.number = jb_text(root, "invoiceNumber");
	doc.type = jb_text(root, "type");
	doc.status = jb_text(root, "status");
	doc.issued_at = jb_text(root, "issuedAt");
	doc.amount = jb_int(root, "amount");
	doc.user_name = jb_text(jb_container(root, "user"), "name");
	doc.user_email = jb_text(jb_container(root, "user"), "email");
	topup = jb_container(root, "topUpTransaction");
	if (topup != NULL && JsonContainerIsObject(topup))
	{
		doc.topup_order_id = jb_text(topup, "orderId");
		if (doc.topup_order_id == NULL)
			doc.topup_order_id = "";
		doc.topup_payment_type = jb_text(topup, "paymentType");
	}
	doc.credit_note_for = jb_text(jb_container(root, "creditNoteFor"), "invoiceNumber");
	doc.voided_by = jb_text(jb_container(root, "voidedBy"), "invoiceNumber");
	lines = jb_container(root, "lines");
	if (lines != NULL && JsonContainerIsArray(lines))
	{
		int			n = JsonContainerSize(lines);

		items = palloc0(sizeof(*items) * (n + 1));
		for (int i = 0; i < n; i++)
		{
			JsonbValue *e = getIthJsonbValueFromContainer(lines, i);

			if (e == NULL || e->type != jbvBinary)
				continue;
			items[i].description = jb_text(e->val.binary.data, "description");
			items[i].quantity = jb_int(e->val.binary.data, "quantity");
			items[i].unit_price = jb_int(e->val.binary.data, "unitPrice");
			items[i].amount = jb_int(e->val.binary.data, "amount");
		}
		doc.nlines = n;
		doc.lines = items;
	}

	PG_TRY();
	{
		unsigned char *b = NULL;
		size_t		size = 0;
		unsigned	code = 0,
					detail = 0;

		if (invoice_pdf_render(&doc, &who, &b, &size, &code, &detail) != 0)
			ereport(ERROR,
					(errcode(ERRCODE_INTERNAL_ERROR),
					 errmsg("rendering the invoice PDF failed: libharu error 0x%04X (%u)", code, detail)));
		bytes = b;
		result = (bytea *) palloc(VARHDRSZ + size);
		SET_VARSIZE(result, VARHDRSZ + size);
		memcpy(VARDATA(result), b, size);
	}
	PG_FINALLY();
	{
		free(bytes);
	}
	PG_END_TRY();
	PG_RETURN_BYTEA_P(result);
}
