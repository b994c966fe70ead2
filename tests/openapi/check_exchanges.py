"""Checks recorded HTTP exchanges (record_exchanges.py) against an OpenAPI
document (SELECT api.openapi()): every answer of a documented operation has
a documented status and content type and validates against its schema; the
body and query of every request that succeeded validate against the
operation's request schemas.  Needs python3-jsonschema (Debian package).

    python3 tests/openapi/check_exchanges.py openapi.json exchanges.jsonl

Exits 1 when anything does not fit, listing each problem once with a count.
"""
import collections
import json
import re
import sys
from urllib.parse import parse_qsl, urlparse

from jsonschema import Draft202012Validator, RefResolver
from jsonschema.exceptions import best_match

doc = json.load(open(sys.argv[1]))
resolver = RefResolver.from_schema(doc)
FORMATS = Draft202012Validator.FORMAT_CHECKER

# the gateway's matcher: literal segments score 2, captures 1; case-insensitive
ops = []
for path, item in doc["paths"].items():
    segs = path.strip("/").split("/")
    rx = re.compile("^/" + "/".join("[^/]+" if s.startswith("{") else re.escape(s) for s in segs) + "/?$", re.I)
    score = sum(1 if s.startswith("{") else 2 for s in segs)
    for method, op in item.items():
        ops.append((method.upper(), rx, score, path, op))


def operation(method, path):
    found = [(score, p, op) for m, rx, score, p, op in ops if m == method and rx.match(path)]
    return max(found, key=lambda f: f[0])[1:] if found else (None, None)


def resolve(o):
    while isinstance(o, dict) and "$ref" in o:
        target = doc
        for k in o["$ref"][2:].split("/"):
            target = target[k]
        o = target
    return o


def errors(schema, value):
    errs = list(Draft202012Validator(schema, resolver=resolver, format_checker=FORMATS).iter_errors(value))
    if not errs:
        return None
    e = best_match(errs)
    return "/".join(map(str, e.absolute_path)) + ": " + e.message[:200]


def query_value(v, schema):
    t = resolve(schema).get("type")
    if t == "integer" and re.fullmatch(r"-?[0-9]+", v):
        return int(v)
    if t == "boolean" and v.lower() in ("true", "false"):
        return v.lower() == "true"
    return v


problems = collections.Counter()
answered = collections.Counter()
for line in open(sys.argv[2]):
    x = json.loads(line)
    url = urlparse(x["url"])
    path, op = operation(x["method"], url.path)
    if op is None:
        continue  # not an API route (the stand-ins' control endpoints, unknown paths)
    where = f'{x["method"]} {path} {x["status"]}'
    resp = op["responses"].get(str(x["status"]))
    if resp is None:
        problems[where + ": status not documented"] += 1
        resp = op["responses"]["default"]
    content = resolve(resp).get("content", {})
    ct = x["contentType"].split(";")[0].strip()
    if ct not in content:
        problems[where + f": content type {ct} not documented"] += 1
        continue
    if x["response"] is not None and "schema" in content[ct]:
        e = errors(content[ct]["schema"], x["response"])
        if e:
            problems[where + ": answer " + e] += 1
            continue
    answered[(x["method"], path)] += 1
    if not 200 <= x["status"] < 300:
        continue
    body = op.get("requestBody")
    if x["request"] not in (None, "<raw>"):
        if body is None and x["request"] != {}:
            problems[where + ": a body was sent, none is documented"] += 1
        elif body is not None:
            e = errors(body["content"]["application/json"]["schema"], x["request"])
            if e:
                problems[where + ": request " + e] += 1
    elif x["request"] is None and body is not None and body.get("required"):
        problems[where + ": succeeded without the required body"] += 1
    params = {p["name"]: p for p in op.get("parameters", []) if p["in"] == "query"}
    for k, v in parse_qsl(url.query, keep_blank_values=True):
        if k not in params:
            problems[where + f": query parameter {k} not documented"] += 1
        else:
            e = errors(params[k]["schema"], query_value(v, params[k]["schema"]))
            if e:
                problems[where + f": query {k}={v}: {e}"] += 1

for p, n in sorted(problems.items()):
    print(f"{n:5d}  {p}")
every = {(m, p) for m, _, _, p, _ in ops}
print(f"{sum(answered.values())} answers fit; {len(set(answered))} of {len(every)} operations seen; "
      f"{sum(problems.values())} problems")
for m, p in sorted(every - set(answered)):
    print("      not seen:", m, p)
sys.exit(1 if problems else 0)
