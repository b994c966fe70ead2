/*
 * invoice_layout.c - the layout of an invoice (or credit note) as a PDF with
 * libharu, shared by the gateway (GET /billing/invoices/:id/pdf,
 * invoice_pdf.c) and the extension (paas.invoice_pdf(), the attachment of
 * the top-up mail, extension/notify.c), so that the download and the
 * attachment are the same document.
 *
 * Plain C with libharu only (no CivetWeb, no jansson, no PostgreSQL headers:
 * it is compiled into both processes, and in the backend jansson's
 * json_object() would clash with PostgreSQL's SQL function of that name).
 * The input is a struct invoice_doc filled from the JSON of
 * paas.invoice_detail() by each caller.  Text uses the built-in Helvetica (WinAnsi), so
 * characters outside printable ASCII are shown as '?'.  Columns never
 * overlap: a description wraps within its column (a new page when the lines
 * run out of room) and an amount that is too wide for its column is set
 * smaller.  Memory: the PDF bytes are malloc'd for the caller; nothing else
 * outlives a call.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <hpdf.h>

#include "invoice_layout.h"

struct pdf_err {
	HPDF_STATUS code;
	HPDF_STATUS detail;
};

static void
on_error(HPDF_STATUS code, HPDF_STATUS detail, void *user)
{
	struct pdf_err *e = user;

	if (e->code == 0) {
		e->code = code;
		e->detail = detail;
	}
}

/* ASCII copy of s (at most len-1 bytes) for the standard fonts. */
static const char *
ascii(const char *s, char *out, size_t len)
{
	size_t i = 0;

	for (; s && *s && i + 1 < len; s++) {
		unsigned char c = (unsigned char) *s;
		if ((c & 0xC0) == 0x80)
			continue; /* UTF-8 continuation byte: one '?' per character */
		out[i++] = (c >= 0x20 && c < 0x7F) ? (char) c : '?';
	}
	out[i] = '\0';
	return out;
}

static const char *
str(const char *v)
{
	return v ? v : "";
}

/* "1.234.567" with Indonesian digit grouping; handles negatives. */
static const char *
idr(long long v, char *out, size_t len)
{
	char digits[32], grouped[48];
	int n, i, j = 0;
	unsigned long long a = v < 0 ? (unsigned long long) (-(v + 1)) + 1 : (unsigned long long) v;

	n = snprintf(digits, sizeof(digits), "%llu", a);
	for (i = 0; i < n; i++) {
		if (i > 0 && (n - i) % 3 == 0)
			grouped[j++] = '.';
		grouped[j++] = digits[i];
	}
	grouped[j] = '\0';
	snprintf(out, len, "%sIDR %s", v < 0 ? "-" : "", grouped);
	return out;
}

static void
text(HPDF_Page page, HPDF_Font font, float size, float x, float y, const char *s)
{
	char buf[512];

	HPDF_Page_BeginText(page);
	HPDF_Page_SetFontAndSize(page, font, size);
	HPDF_Page_TextOut(page, x, y, ascii(s, buf, sizeof(buf)));
	HPDF_Page_EndText(page);
}

/*
 * Right-aligned at "right", never wider than "width": a text that does not
 * fit at "size" is set smaller (down to 5 points), so that a long amount
 * never runs into the column on its left.
 */
static void
text_right(HPDF_Page page, HPDF_Font font, float size, float right, float width, float y,
           const char *s)
{
	char buf[512];
	float w;

	ascii(s, buf, sizeof(buf));
	HPDF_Page_SetFontAndSize(page, font, size);
	w = HPDF_Page_TextWidth(page, buf);
	while (w > width && size > 5.0f) {
		size -= 0.5f;
		HPDF_Page_SetFontAndSize(page, font, size);
		w = HPDF_Page_TextWidth(page, buf);
	}
	text(page, font, size, right - w, y, buf);
}

/*
 * Sets s in lines of at most "width" points from (x, y) downwards, breaking
 * at spaces (a word longer than a line is cut); returns the y below the last
 * line.  At most max_lines lines are set.
 */
static float
text_wrapped(HPDF_Page page, HPDF_Font font, float size, float x, float y, float width,
             float leading, int max_lines, const char *s)
{
	char buf[1024], line[512];
	const char *p;
	int n = 0;

	ascii(s, buf, sizeof(buf));
	p = buf;
	HPDF_Page_SetFontAndSize(page, font, size);
	while (*p && n < max_lines) {
		HPDF_REAL real = 0;
		HPDF_UINT fit = HPDF_Page_MeasureText(page, p, width, HPDF_TRUE, &real);

		if (fit == 0) /* no space to break at: cut the word */
			fit = HPDF_Page_MeasureText(page, p, width, HPDF_FALSE, &real);
		if (fit == 0)
			fit = 1;
		if (fit >= sizeof(line))
			fit = sizeof(line) - 1;
		memcpy(line, p, fit);
		line[fit] = '\0';
		text(page, font, size, x, y, line);
		p += fit;
		while (*p == ' ')
			p++;
		y -= leading;
		n++;
	}
	return y;
}

/* Columns of the line table: left edge or right edge, and width. */
#define COL_DESC_X 50.0f
#define COL_DESC_W 230.0f
#define COL_QTY_R 330.0f
#define COL_QTY_W 40.0f
#define COL_UNIT_R 440.0f
#define COL_UNIT_W 100.0f
#define COL_AMT_R 545.0f
#define COL_AMT_W 100.0f
#define PAGE_BOTTOM 110.0f /* the footer and the notes below the total */

static void
table_head(HPDF_Page page, HPDF_Font bold, float y)
{
	HPDF_Page_SetLineWidth(page, 0.8f);
	HPDF_Page_MoveTo(page, 50, y + 16);
	HPDF_Page_LineTo(page, 545, y + 16);
	HPDF_Page_Stroke(page);
	text(page, bold, 10, COL_DESC_X, y, "Description");
	text_right(page, bold, 10, COL_QTY_R, COL_QTY_W, y, "Qty");
	text_right(page, bold, 10, COL_UNIT_R, COL_UNIT_W, y, "Unit price");
	text_right(page, bold, 10, COL_AMT_R, COL_AMT_W, y, "Amount");
}

/* The seller block (name, address lines separated by "|", tax id); returns the y below it. */
static float
seller(HPDF_Page page, HPDF_Font bold, HPDF_Font font, float y, const struct invoice_seller *who)
{
	const char *name = who ? who->name : NULL;
	const char *addr = who ? who->address : NULL;
	const char *tax = who ? who->tax_id : NULL;
	char buf[256];

	text(page, bold, 10, 50, y, name && *name ? name : "paas");
	y -= 12;
	while (addr && *addr) {
		size_t n = strcspn(addr, "|");

		snprintf(buf, sizeof(buf), "%.*s", (int) (n < 200 ? n : 200), addr);
		y = text_wrapped(page, font, 9, 50, y, 280, 11, 2, buf);
		addr += n;
		if (*addr == '|')
			addr++;
	}
	if (tax && *tax) {
		snprintf(buf, sizeof(buf), "Tax id: %s", tax);
		y = text_wrapped(page, font, 9, 50, y, 280, 11, 1, buf);
	}
	return y;
}

static void
layout(HPDF_Doc pdf, const struct invoice_doc *inv, const struct invoice_seller *who)
{
	HPDF_Page page = HPDF_AddPage(pdf);
	HPDF_Font bold = HPDF_GetFont(pdf, "Helvetica-Bold", NULL);
	HPDF_Font font = HPDF_GetFont(pdf, "Helvetica", NULL);
	const char *kind = str(inv->type);
	char buf[320], money[48];
	float y;
	int i;

	HPDF_Page_SetSize(page, HPDF_PAGE_SIZE_A4, HPDF_PAGE_PORTRAIT);
	text(page, bold, 22, 50, 780, strcmp(kind, "CREDIT_NOTE") == 0 ? "CREDIT NOTE" : "INVOICE");
	text_right(page, bold, 12, 545, 180, 786, str(inv->number));
	y = seller(page, bold, font, 758, who);

	snprintf(buf, sizeof(buf), "Issued: %.10s", str(inv->issued_at));
	text(page, font, 10, 350, 740, buf);
	snprintf(buf, sizeof(buf), "Status: %s", str(inv->status));
	text(page, font, 10, 350, 726, buf);
	snprintf(buf, sizeof(buf), "Type: %s", kind);
	text(page, font, 10, 350, 712, buf);

	y -= 10;
	text(page, bold, 11, 50, y, "Bill to");
	y = text_wrapped(page, font, 10, 50, y - 14, 280, 12, 2, str(inv->user_name));
	y = text_wrapped(page, font, 10, 50, y, 280, 12, 2, str(inv->user_email));

	y = (y < 690 ? y : 690) - 30;
	table_head(page, bold, y);
	y -= 20;
	for (i = 0; i < inv->nlines; i++) {
		const struct invoice_line *line = &inv->lines[i];
		float below;

		/* a line that would run into the footer goes on a new page */
		if (y < PAGE_BOTTOM + 12 * 6 + 90) {
			page = HPDF_AddPage(pdf);
			HPDF_Page_SetSize(page, HPDF_PAGE_SIZE_A4, HPDF_PAGE_PORTRAIT);
			text(page, bold, 10, 50, 800, str(inv->number));
			y = 760;
			table_head(page, bold, y);
			y -= 20;
		}
		below = text_wrapped(page, font, 10, COL_DESC_X, y, COL_DESC_W, 12, 6, str(line->description));
		snprintf(buf, sizeof(buf), "%lld", line->quantity);
		text_right(page, font, 10, COL_QTY_R, COL_QTY_W, y, buf);
		text_right(page, font, 10, COL_UNIT_R, COL_UNIT_W, y, idr(line->unit_price, money, sizeof(money)));
		text_right(page, font, 10, COL_AMT_R, COL_AMT_W, y, idr(line->amount, money, sizeof(money)));
		y = below - 4;
	}
	HPDF_Page_MoveTo(page, 50, y + 8);
	HPDF_Page_LineTo(page, 545, y + 8);
	HPDF_Page_Stroke(page);
	y -= 10;
	text(page, bold, 11, 350, y, "Total");
	text_right(page, bold, 11, COL_AMT_R, 130, y, idr(inv->amount, money, sizeof(money)));

	y -= 40;
	if (inv->topup_order_id) {
		snprintf(buf, sizeof(buf), "Midtrans order: %s   Payment: %s", inv->topup_order_id,
		         str(inv->topup_payment_type)[0] ? inv->topup_payment_type : "-");
		y = text_wrapped(page, font, 9, 50, y, 495, 11, 2, buf) - 3;
	}
	if (inv->credit_note_for) {
		snprintf(buf, sizeof(buf), "Voids invoice %s", inv->credit_note_for);
		y = text_wrapped(page, font, 9, 50, y, 495, 11, 1, buf) - 3;
	}
	if (inv->voided_by) {
		snprintf(buf, sizeof(buf), "Voided by credit note %s", inv->voided_by);
		y = text_wrapped(page, font, 9, 50, y, 495, 11, 1, buf) - 3;
	}
	snprintf(buf, sizeof(buf), "Invoice id: %s", str(inv->id));
	text(page, font, 8, 50, 60, buf);
	text(page, font, 8, 50, 48, "Amounts in Indonesian rupiah (IDR). Issued invoices are never changed.");
}

int
invoice_pdf_render(const struct invoice_doc *inv, const struct invoice_seller *who, unsigned char **bytes, size_t *size,
                   unsigned *err_code, unsigned *err_detail)
{
	struct pdf_err err = {0, 0};
	HPDF_Doc pdf = NULL;
	HPDF_UINT32 n = 0;
	HPDF_STATUS rc;
	char name[64];
	int result = -1;

	*bytes = NULL;
	*size = 0;
	pdf = HPDF_New(on_error, &err);
	if (pdf == NULL)
		goto done;
	HPDF_SetCompressionMode(pdf, HPDF_COMP_ALL);
	HPDF_SetInfoAttr(pdf, HPDF_INFO_CREATOR, "paas");
	HPDF_SetInfoAttr(pdf, HPDF_INFO_TITLE, ascii(str(inv->number), name, sizeof(name)));
	layout(pdf, inv, who);
	if (err.code != 0 || HPDF_SaveToStream(pdf) != HPDF_OK)
		goto done;
	n = HPDF_GetStreamSize(pdf);
	*bytes = malloc(n ? n : 1);
	if (*bytes == NULL)
		goto done;
	rc = HPDF_ReadFromStream(pdf, *bytes, &n);
	if ((rc != HPDF_OK && rc != HPDF_STREAM_EOF) || err.code != 0)
		goto done;
	*size = n;
	result = 0;

done:
	if (result != 0) {
		free(*bytes);
		*bytes = NULL;
	}
	if (err_code)
		*err_code = (unsigned) err.code;
	if (err_detail)
		*err_detail = (unsigned) err.detail;
	if (pdf)
		HPDF_Free(pdf);
	return result;
}
