#!/usr/bin/env node
// Validates Kubernetes objects against Kubernetes' published schemas, with a validator nobody
// here wrote: the npm package kubernetes-models (classes generated from the OpenAPI spec of
// Kubernetes; .validate() runs ajv on the object and throws on the first invalid one).
//
// Input: files named on the command line, or stdin: JSON, JSON lines, or YAML documents.
// A line {"method", "path", "code", "body"} is a record of tests/fakes/kubeapi.py --capture:
// its body is checked. What is checked, recursively:
//   - any object with apiVersion/kind (models of kubernetes-models, then meta/v1 of
//     @kubernetes-models/apimachinery: Status, APIResourceList, APIGroupList, APIVersions, ...)
//   - typed lists (FooList): items get the list's apiVersion and kind first when they lack
//     them (the API server omits them in lists and clients fill them in; the published model
//     requires them), then the list model is validated;
//   - kind List (kubectl's and the stand-in's dumps): every item;
//   - watch events {type, object}: the WatchEvent model, then the object;
//   - Tables: metadata as ListMeta, each row's object; PartialObjectMetadata: metadata as ObjectMeta;
//   - version.Info (/version).
// Documents without a published model (APIGroupDiscoveryList, the OpenAPI documents, the root
// path list) are counted as skipped, by name.
// Prints a line per failure (and per object with --verbose) and, last, a JSON summary
// {"checked", "failed", "skipped", "kinds", "skippedKinds"}; exits 1 when an object is invalid
// or nothing was checked.
//
//   node tests/kube/validate.mjs [--verbose] [FILE...] < objects
import fs from "node:fs";
import { parseAllDocuments } from "yaml";

const META = "@kubernetes-models/apimachinery/apis/meta/v1";
const args = process.argv.slice(2);
const verbose = args.includes("--verbose");
const files = args.filter((a) => !a.startsWith("--"));

const summary = { checked: 0, failed: 0, skipped: 0, kinds: {}, skippedKinds: {} };
const models = new Map();

async function model(apiVersion, kind) {
  const key = `${apiVersion}/${kind}`;
  if (models.has(key)) return models.get(key);
  const candidates = [];
  if (apiVersion === "meta.k8s.io/v1") candidates.push(`${META}/${kind}`);
  else candidates.push(`kubernetes-models/${apiVersion}/${kind}`);
  if (apiVersion === "v1") candidates.push(`${META}/${kind}`);
  let found = null;
  for (const c of candidates) {
    try {
      const mod = await import(c);
      if (mod[kind]) {
        found = mod[kind];
        break;
      }
    } catch (e) {
      if (e.code !== "ERR_PACKAGE_PATH_NOT_EXPORTED" && e.code !== "ERR_MODULE_NOT_FOUND") throw e;
    }
  }
  models.set(key, found);
  return found;
}

function count(table, key) {
  table[key] = (table[key] || 0) + 1;
}

function label(obj) {
  const m = (obj && obj.metadata) || {};
  return m.namespace ? `${m.namespace}/${m.name}` : m.name || "";
}

async function validateAs(Model, obj, key, where) {
  try {
    new Model(obj).validate();
    summary.checked++;
    count(summary.kinds, key);
    if (verbose) console.log(`ok   ${key} ${label(obj)}`);
    return true;
  } catch (e) {
    summary.failed++;
    count(summary.kinds, key);
    console.log(`FAIL ${key} ${label(obj)} (${where}): ${e.message}`);
    return false;
  }
}

async function meta(kind, value, where) {
  const Model = await model("meta.k8s.io/v1", kind);
  return validateAs(Model, value, `meta/${kind}`, where);
}

function skip(name) {
  summary.skipped++;
  count(summary.skippedKinds, name);
}

async function check(obj, where) {
  if (obj === null || typeof obj !== "object" || Array.isArray(obj)) return skip("not an object");
  if (!obj.kind && "type" in obj && "object" in obj) {
    await meta("WatchEvent", obj, where);
    return check(obj.object, where);
  }
  if (!obj.kind) {
    if ("gitVersion" in obj) {
      const { Info } = await import("@kubernetes-models/apimachinery/version");
      return validateAs(Info, obj, "version.Info", where);
    }
    if ("paths" in obj) return skip(obj.openapi ? "OpenAPI v3 document" : "path list / OpenAPI v3 index");
    if ("swagger" in obj) return skip("OpenAPI v2 document");
    return skip("object without kind");
  }
  const { apiVersion = "", kind } = obj;
  if (kind === "Table") {
    await meta("ListMeta", obj.metadata || {}, where);
    for (const row of obj.rows || []) if (row.object) await check(row.object, where);
    return;
  }
  if (kind === "PartialObjectMetadata") return meta("ObjectMeta", obj.metadata || {}, where);
  if (kind === "PartialObjectMetadataList") {
    await meta("ListMeta", obj.metadata || {}, where);
    for (const it of obj.items || []) await check(it, where);
    return;
  }
  if (kind === "List" && apiVersion === "v1") {
    await meta("ListMeta", obj.metadata || {}, where);
    for (const it of obj.items || []) await check(it, where);
    return;
  }
  // /api answers APIVersions without an apiVersion
  const Model = await model(apiVersion || "meta.k8s.io/v1", kind);
  if (!Model) return skip(`${apiVersion}/${kind}`);
  if (kind.endsWith("List") && Array.isArray(obj.items)) {
    const itemKind = kind.slice(0, -4);
    const filled = {
      ...obj,
      items: obj.items.map((it) => ({ apiVersion, kind: itemKind, ...it })),
    };
    if (await validateAs(Model, filled, `${apiVersion}/${kind}`, where)) {
      for (const it of filled.items) count(summary.kinds, `${apiVersion}/${itemKind}`);
    }
    return;
  }
  return validateAs(Model, obj, `${apiVersion || "meta"}/${kind}`, where);
}

function documents(text, name) {
  const trimmed = text.trim();
  if (!trimmed) return [];
  if (trimmed.startsWith("{") || trimmed.startsWith("[")) {
    try {
      const one = JSON.parse(trimmed);
      return (Array.isArray(one) ? one : [one]).map((d, i) => [d, `${name}#${i + 1}`]);
    } catch {
      // JSON lines
      return trimmed.split("\n").filter((l) => l.trim()).map((l, i) => [JSON.parse(l), `${name}:${i + 1}`]);
    }
  }
  return parseAllDocuments(text).map((d, i) => [d.toJS(), `${name}#${i + 1}`]).filter(([d]) => d != null);
}

const inputs = files.length ? files.map((f) => [fs.readFileSync(f, "utf8"), f]) : [[fs.readFileSync(0, "utf8"), "stdin"]];
for (const [text, name] of inputs) {
  for (let [doc, where] of documents(text, name)) {
    if (doc && typeof doc === "object" && "body" in doc && "path" in doc && "code" in doc) {
      where = `${where} ${doc.method} ${doc.path} ${doc.code}`;
      doc = doc.body;
    }
    await check(doc, where);
  }
}
console.log(JSON.stringify(summary));
process.exit(summary.failed > 0 || summary.checked === 0 ? 1 : 0);
