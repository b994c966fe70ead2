// validate_paas.mjs - validates Kubernetes objects (a JSON array on stdin)
// against the published schemas of kubernetes-models (npm), as the test of
// what paas applies and what the stand-in stores (tests/http/test_instances.py).
// Prints {"valid": n} and exits 0 when every object is valid; otherwise
// prints each failure (kind/name and the schema's errors) and exits 1.
import { readFileSync } from "node:fs";

const objects = JSON.parse(readFileSync(0, "utf8"));
let valid = 0;
const failures = [];
for (const o of objects) {
  const [group, version] = o.apiVersion.includes("/") ? o.apiVersion.split("/") : ["", o.apiVersion];
  const path = group ? `kubernetes-models/${group}/${version}/${o.kind}` : `kubernetes-models/${version}/${o.kind}`;
  const id = `${o.apiVersion} ${o.kind} ${o.metadata?.namespace ?? ""}/${o.metadata?.name ?? ""}`;
  let Model;
  try {
    Model = (await import(path))[o.kind];
  } catch (e) {
    failures.push({ object: id, error: `no schema: ${e.message}` });
    continue;
  }
  try {
    new Model(o).validate();
    valid++;
  } catch (e) {
    failures.push({ object: id, error: e.message, details: e.errors ?? null });
  }
}
if (failures.length > 0) {
  console.log(JSON.stringify({ valid, failures }, null, 2));
  process.exit(1);
}
console.log(JSON.stringify({ valid }));
