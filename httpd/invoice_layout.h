/*
 * invoice_layout.h - the invoice PDF layout shared by httpd and the
 * extension (invoice_layout.c): plain C, no JSON library.
 */
#ifndef PAAS_INVOICE_LAYOUT_H
#define PAAS_INVOICE_LAYOUT_H

#include <stddef.h>

/* The seller block of the invoice; NULL members are left out. */
struct invoice_seller {
	const char *name;
	const char *address; /* lines separated by "|" */
	const char *tax_id;
};

/* One line of the table. */
struct invoice_line {
	const char *description;
	long long quantity;
	long long unit_price;
	long long amount;
};

/* What the PDF shows of an invoice (paas.invoice_detail()); NULL strings are
 * left out or blank. */
struct invoice_doc {
	const char *id;
	const char *number;
	const char *type;      /* TOPUP, SUBSCRIPTION, CREDIT_NOTE */
	const char *status;
	const char *issued_at; /* ISO-8601; the date is printed */
	long long amount;
	const char *user_name;
	const char *user_email;
	const char *topup_order_id; /* NULL: not a top-up */
	const char *topup_payment_type;
	const char *credit_note_for; /* number of the invoice a credit note voids */
	const char *voided_by;       /* number of the credit note that voided it */
	int nlines;
	const struct invoice_line *lines;
};

/*
 * Lays out "inv" as a PDF.  0: *bytes
 * (malloc'd, the caller frees it) holds *size bytes; -1: a libharu error,
 * its code and detail in *err_code / *err_detail (either may be NULL).
 */
int invoice_pdf_render(const struct invoice_doc *inv, const struct invoice_seller *who, unsigned char **bytes,
                       size_t *size, unsigned *err_code, unsigned *err_detail);

#endif
