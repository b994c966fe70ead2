/*
 * invoice_pdf.c - sends an invoice (or credit note) as a PDF for the
 * ROUTE_PDF route GET /billing/invoices/:id/pdf.
 *
 * The data comes from api.billing_invoice_pdf (the owner check and the
 * download counter live there); the layout is invoice_layout.c (shared with
 * the extension's mail attachment).  The seller block comes from the
 * environment (PAAS_SELLER_NAME, PAAS_SELLER_ADDRESS, PAAS_SELLER_TAX_ID).
 * Any libharu error makes the reply a 500 and is logged.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <civetweb.h>

#include "httpd.h"
#include "invoice_layout.h"

/* ASCII copy of s (at most len-1 bytes) for a file name. */
static const char *
file_name(const char *s, char *out, size_t len)
{
	size_t i = 0;

	for (; s && *s && i + 1 < len; s++) {
		unsigned char c = (unsigned char) *s;
		out[i++] = ((c >= '0' && c <= '9') || (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
		            c == '-' || c == '_' || c == '.')
		               ? (char) c
		               : '_';
	}
	out[i] = '\0';
	return out;
}

static const char *
member(json_t *obj, const char *key)
{
	return json_string_value(json_object_get(obj, key));
}

static const char *
nested(json_t *obj, const char *key, const char *field)
{
	json_t *o = json_object_get(obj, key);
	return json_is_object(o) ? json_string_value(json_object_get(o, field)) : NULL;
}

int
invoice_pdf_reply(struct mg_connection *conn, json_t *inv)
{
	struct invoice_seller who = {getenv("PAAS_SELLER_NAME"), getenv("PAAS_SELLER_ADDRESS"),
	                             getenv("PAAS_SELLER_TAX_ID")};
	unsigned char *bytes = NULL;
	size_t size = 0;
	unsigned code = 0, detail = 0;
	char disp[160], name[64];
	int status = -1;
	json_t *lines = json_object_get(inv, "lines"), *line;
	json_t *topup = json_object_get(inv, "topUpTransaction");
	struct invoice_doc doc;
	struct invoice_line *items = NULL;
	size_t i;

	memset(&doc, 0, sizeof(doc));
	doc.id = member(inv, "id");
	doc.number = member(inv, "invoiceNumber");
	doc.type = member(inv, "type");
	doc.status = member(inv, "status");
	doc.issued_at = member(inv, "issuedAt");
	doc.amount = (long long) json_integer_value(json_object_get(inv, "amount"));
	doc.user_name = nested(inv, "user", "name");
	doc.user_email = nested(inv, "user", "email");
	if (json_is_object(topup)) {
		doc.topup_order_id = member(topup, "orderId") ? member(topup, "orderId") : "";
		doc.topup_payment_type = member(topup, "paymentType");
	}
	doc.credit_note_for = nested(inv, "creditNoteFor", "invoiceNumber");
	doc.voided_by = nested(inv, "voidedBy", "invoiceNumber");
	items = calloc(json_array_size(lines) + 1, sizeof(*items));
	if (items == NULL)
		goto done;
	json_array_foreach(lines, i, line) {
		items[i].description = member(line, "description");
		items[i].quantity = (long long) json_integer_value(json_object_get(line, "quantity"));
		items[i].unit_price = (long long) json_integer_value(json_object_get(line, "unitPrice"));
		items[i].amount = (long long) json_integer_value(json_object_get(line, "amount"));
	}
	doc.nlines = (int) json_array_size(lines);
	doc.lines = items;

	if (invoice_pdf_render(&doc, &who, &bytes, &size, &code, &detail) != 0)
		goto done;
	file_name(json_string_value(json_object_get(inv, "invoiceNumber")), name, sizeof(name));
	snprintf(disp, sizeof(disp), "Content-Disposition: attachment; filename=\"%s.pdf\"\r\n",
	         name[0] ? name : "invoice");
	status = reply_body(conn, 200, "application/pdf", "private, no-store", (const char *) bytes,
	                    size, disp);

done:
	if (status != 200) {
		log_event("{\"event\":\"pdf_failed\",\"error\":\"0x%04X\",\"detail\":%u}\n", code, detail);
		status = reply_error(conn, 500, "INTERNAL_ERROR", "Internal server error", NULL, NULL);
	}
	free(bytes);
	free(items);
	return status;
}
