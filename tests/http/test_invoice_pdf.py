"""The invoice PDF as a reader sees it (httpd/invoice_pdf.c): rendered by
poppler (pdftoppm), words read back with their boxes (pdftotext -bbox), and
no two words of the page overlap, whatever the length of a description."""
import json
import os
import re
import subprocess
import tempfile

from conftest import Api, psql

LONG = ("n8n workflow automation, monthly plan with 2 vCPU, 4 GiB memory and 20 GiB storage, "
        "period 2026-12-01 to 2027-01-01, renewal 12 of the subscription "
        "Supercalifragilisticexpialidociousandthensomemorelettersinonewordwithoutspaces "
        "and a tail that goes on and on to fill several lines of the description column")


def words(pdf_bytes):
    with tempfile.TemporaryDirectory() as d:
        path = os.path.join(d, "inv.pdf")
        with open(path, "wb") as f:
            f.write(pdf_bytes)
        # poppler renders every page (a broken page is an error here)
        subprocess.run(["pdftoppm", "-r", "50", "-png", path, os.path.join(d, "page")], check=True)
        pages = sorted(p for p in os.listdir(d) if p.startswith("page"))
        html = subprocess.run(["pdftotext", "-bbox", path, "-"], capture_output=True, text=True,
                              check=True).stdout
    out = []
    for page_no, page in enumerate(html.split("<page ")[1:]):
        for m in re.finditer(r'<word xMin="([\d.]+)" yMin="([\d.]+)" xMax="([\d.]+)" yMax="([\d.]+)">([^<]*)</word>', page):
            x0, y0, x1, y1 = map(float, m.groups()[:4])
            out.append((page_no, x0, y0, x1, y1, m.group(5)))
    return pages, out


def overlaps(a, b):
    # a sliver of shared edge is no overlap
    return a[0] == b[0] and a[1] < b[3] - 0.5 and b[1] < a[3] - 0.5 and a[2] < b[4] - 0.5 and b[2] < a[4] - 0.5


def test_long_lines_never_overprint(user):
    lines = [{"description": LONG, "quantity": 1000000, "unitPrice": 999999999999, "amount": 999999999999},
             {"description": "short", "quantity": 1, "unitPrice": 10000, "amount": 10000}]
    lines += [{"description": f"line {i} " + LONG[: 40 + i], "quantity": i, "unitPrice": 1000, "amount": 1000 * i}
              for i in range(1, 40)]
    total = sum(l["amount"] for l in lines)
    inv = json.loads(psql("SELECT paas.issue_invoice(:'a1'::uuid, 'SUBSCRIPTION', :'a2'::bigint, '{}', :'a3'::jsonb)",
                          user["id"], str(total), json.dumps(lines)))
    r = Api(user["access"]).get(f"/api/v1/billing/invoices/{inv['id']}/pdf")
    assert r.status_code == 200 and r.headers["Content-Type"] == "application/pdf"
    pages, ws = words(r.content)
    assert len(pages) >= 2, "40 lines need more than one page"
    text = " ".join(w[5] for w in ws)
    # every line is there, the long word is cut rather than lost
    assert "line 39" in text and "short" in text and "Supercalifragilistic" in text
    assert "999.999.999.999" in text
    bad = [(a[5], b[5]) for i, a in enumerate(ws) for b in ws[i + 1:] if overlaps(a, b)]
    assert bad == [], bad[:10]
    # nothing runs off the page (A4 is 595 x 842 points)
    assert all(0 <= w[1] and w[3] <= 595 and 0 <= w[2] and w[4] <= 842 for w in ws)


def test_seller_block_comes_from_settings(user):
    # tests/run.sh starts httpd with PAAS_SELLER_* set
    inv = json.loads(psql("SELECT paas.issue_invoice(:'a1'::uuid, 'SUBSCRIPTION', 10000, '{}')", user["id"]))
    r = Api(user["access"]).get(f"/api/v1/billing/invoices/{inv['id']}/pdf")
    _, ws = words(r.content)
    text = " ".join(w[5] for w in ws)
    assert os.environ["PAAS_SELLER_NAME"] in text
    assert os.environ["PAAS_SELLER_TAX_ID"] in text
    assert "paas platform" not in text
