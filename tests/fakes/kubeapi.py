#!/usr/bin/env python3
"""A stand-in Kubernetes API server for the test suite (Python 3.11 stdlib; PyYAML only for YAML bodies).

paas drives Kubernetes from a C background worker with libcurl; no cluster is reachable from
the machines that build and test it. This server speaks the real protocol for the resources
paas uses, keeps every object in memory behind one lock, and runs a tiny controller so that
Deployments roll out the way `kubectl rollout status` expects. It is believed only as far as
real clients agree with it: tests/kube/ drives it with the real kubectl, with curl (libcurl)
and raw HTTP, and validates what it stores and returns against Kubernetes' published schemas
(npm kubernetes-models). Reference: ../../../shared/reference/kubernetes.md, platform.md §1-3.

Serves (apiVersion/resource):
  v1: namespaces, nodes, pods (+status, log, eviction, binding), secrets, configmaps,
      persistentvolumeclaims, services, resourcequotas, limitranges, events
  apps/v1: deployments (+status, scale), replicasets (+status, scale), daemonsets (+status; stored
      only: no controller makes their pods, which tests create with an ownerReference)
  networking.k8s.io/v1: ingresses, networkpolicies      policy/v1: poddisruptionbudgets
  /version, /healthz /livez /readyz, /api /apis (aggregated discovery apidiscovery.k8s.io/v2
  when the client asks for it, else the legacy APIVersions/APIGroupList; --discovery legacy
  forces the fallback), /api/v1 and /apis/<group>/<version> (APIResourceList), /apis/<group>,
  /openapi/v3 (+ one document per group version: only the PATCH operations and their
  fieldValidation parameter, which is all kubectl needs to leave validation to the server),
  /openapi/v2 (an empty document).

Protocol:
  - GET (object, list, all namespaces), POST (201; 409 AlreadyExists; generateName), PUT
    (409 Conflict on a stale resourceVersion), DELETE (propagationPolicy Background /
    Foreground / Orphan; finalizers hold an object with deletionTimestamp until removed;
    namespace deletion removes everything in it; default, kube-system, kube-public are
    protected), deletecollection, dryRun=All.
  - PATCH: application/apply-patch+yaml (server-side apply: fieldManager required, force,
    409 conflicts with FieldManagerConflict causes, create if absent (201), fields a manager
    stops applying are removed unless someone else owns them, lists of maps keyed as in the
    Go types (containers by name, ports, env, ...), other lists atomic; JSON bodies are YAML),
    application/strategic-merge-patch+json (merge keys, $patch, $retainKeys,
    $setElementOrder, $deleteFromPrimitiveList), application/merge-patch+json,
    application/json-patch+json. A patch carrying metadata.resourceVersion is a precondition.
  - metadata: uid, creationTimestamp, one global resourceVersion counter, generation (apps,
    policy, networking kinds) bumped when spec changes only, managedFields (FieldsV1, one entry
    per manager/operation/subresource; Update operations own what they change). A write that
    changes nothing is a no-op (same resourceVersion, no watch event).
  - Defaulting like the API server (strategy, revisionHistoryLimit, progressDeadlineSeconds,
    pod spec and container defaults, imagePullPolicy, Service clusterIP/ports/nodePorts,
    Secret stringData -> data, PVC storageClassName, namespace label and finalizer,
    NetworkPolicy policyTypes, LimitRange default/defaultRequest); quantities are stored in
    canonical form (1024Mi -> 1Gi, 0.5 -> 500m).
  - Validation -> 422 Invalid with details.causes (names, labels, selectors matching the
    template, containers/images/ports, Service ports, PVC access modes and size, immutable
    selector / clusterIP / PVC spec, Ingress paths, PDB min/max, ...). Malformed bodies and
    bad quantities -> 400 BadRequest.
  - Admission: LimitRanger (defaults, min/max -> 403) and ResourceQuota on create (403
    Forbidden "exceeded quota: ..." / "failed quota: ...: must specify ..."; counts, compute
    and storage requests/limits, count/<resource>). status.used kept current.
  - LIST: labelSelector (=, ==, !=, in, notin, exists, !exists, >, <), fieldSelector
    (metadata.name, metadata.namespace, spec.nodeName, status.phase, ... as the real server
    allows per resource; others 400), limit/continue (410 once the history is compacted).
    Typed lists omit the items' kind/apiVersion, like the real server.
  - Tables for kubectl (Accept ...;as=Table;g=meta.k8s.io), with the real printers' columns;
    PartialObjectMetadata(List).
  - WATCH (?watch=true) for every resource: chunked newline-delimited JSON events ADDED /
    MODIFIED / DELETED / BOOKMARK (allowWatchBookmarks, every --bookmark-interval seconds;
    sendInitialEvents), resourceVersion semantics (absent or "0": current objects first; N:
    every event after N from the history; older than the kept history: an ERROR event with a
    410 Expired Status; newer than the server's: after 3 s (--too-large-rv-wait) an ERROR event with a 504
    ResourceVersionTooLarge Status, e.g. after the stand-in restarted), selectors applied to old and new object (leaving the selection is a
    DELETED event), timeoutSeconds.
  - Errors are Status objects: 400, 401 (bearer token missing or wrong), 403, 404, 405, 406,
    409, 410, 415, 422, 429 (eviction blocked by a PodDisruptionBudget), 500.
  - pods/log: deterministic lines per pod and container (tailLines, timestamps, limitBytes,
    previous, container; follow returns what there is); 400 while the container waits.
  - pods/eviction (policy/v1 Eviction): deletes the pod unless a PDB selecting it would drop
    below minAvailable / above maxUnavailable (429 with a DisruptionBudget cause); more than
    one PDB -> 500; pending or terminating pods ignore PDBs.
  - deployments|replicasets/scale (autoscaling/v1 Scale: GET, PUT, PATCH).

Controller (one thread): Deployment -> ReplicaSet (pod-template-hash, revision annotations,
  RollingUpdate with maxSurge/maxUnavailable, Recreate, revisionHistoryLimit) -> Pods;
  scheduler: round-robin over Ready, schedulable nodes whose taints the pod tolerates, whose
  labels match nodeSelector and whose allocatable cpu/memory/pods fit the requests, else
  PodScheduled=False reason Unschedulable ("0/3 nodes are available: 3 Insufficient cpu...");
  a pod created with spec.nodeName skips the scheduler and is started by that node's "kubelet";
  "kubelet": a bound pod is Running and Ready after --ready-delay seconds, unless its image
  contains one of --bad-images (Waiting ErrImagePull, then ImagePullBackOff after
  --pull-backoff s) or --crash-images (CrashLoopBackOff, restartCount 1); Deployment status
  as the deployment controller writes it (observedGeneration, replicas, updatedReplicas,
  readyReplicas, availableReplicas, unavailableReplicas - zeros omitted; conditions
  Available, Progressing with NewReplicaSetCreated / ReplicaSetUpdated /
  NewReplicaSetAvailable / ProgressDeadlineExceeded after progressDeadlineSeconds without
  progress, ReplicaFailure FailedCreate when quota refuses pods); ReplicaSet status; PDB
  status; ResourceQuota status.used; PVCs bind at once (phase Bound, capacity, volumeName;
  a larger request expands them) and carry kubernetes.io/pvc-protection, which holds a deleted
  claim until no pod uses it;
  LoadBalancer Services get an address from 192.0.2.0/24; node lifecycle: cordon adds the
  node.kubernetes.io/unschedulable taint, a NotReady/Unknown node gets not-ready/unreachable
  NoSchedule+NoExecute taints and its pods turn Ready=False, a deleted node's pods are deleted
  (and replaced elsewhere); Events (Scheduled, FailedScheduling, SuccessfulCreate,
  FailedCreate, ScalingReplicaSet, Failed, BackOff, Killing), at most --max-events kept.

Speed: a thread per connection (keep-alive), one lock, no copies of stored objects on reads;
  measured with tests/kube/bench_apply.py on the 2-core build machine under light other load:
  about 2,500 ConfigMap and 1,250 Deployment server-side applies per second from a C client
  (wrk, 4 connections; 1,500 over TLS); the controller then needs ~5 s to have 1,000 new
  one-replica Deployments available. A saturated machine cuts this several-fold.

Test controls under /_fake/ (no token needed; not Kubernetes paths):
  GET  /_fake/state                  resourceVersion, history floor, counts, watchers, config
  GET  /_fake/objects[?resource=pods] every stored object (kind/apiVersion included)
  GET  /_fake/requests[?since=SEQ]   request log (method, path, query, status, content type,
  DELETE /_fake/requests                user agent, ms); "last" is the newest sequence number
  POST /_fake/config {readyDelay, pullBackoff, badImages, crashImages, events, latencyMs,
                      bookmarkInterval, namespaceDeleteDelay}
  POST /_fake/latency {"ms": 200}    added to every Kubernetes request
  POST /_fake/fail {count, code, reason?, message?, method?, path? (substring), retryAfter?,
                    drop?}           the next COUNT matching calls answer that Status (with
                                     Retry-After), or drop the connection; DELETE clears
  POST /_fake/compact                forget the watch history: older resourceVersions -> 410
  POST /_fake/tokens {"tokens": [...]}  extra accepted tokens (besides --token/--token-file)
  POST /_fake/nodes {name?, count?, cpu?, memory?, pods?, labels?}   add nodes
  DELETE /_fake/nodes/NAME           the node goes away (its pods too)
  POST /_fake/nodes/NAME/ready {"status": "True"|"False"|"Unknown", reason?, message?}
  POST /_fake/nodes/NAME/condition {"type": "DiskPressure", "status": "True", ...}
  POST /_fake/pods/NS/NAME/ready {"ready": false}   a readiness probe starts failing

Options: --port (0 = free port) --port-file --host --token / --token-file (one token a line,
  re-read when the file changes: rotation) --tls-dir DIR (HTTPS with a throw-away CA made by
  openssl: DIR/ca.crt is the CA file for kubectl and libcurl; kubectl/client-go never sends a
  bearer token over plain http, so use TLS for kubectl) --kubeconfig FILE (written at start:
  server, CA, token) --nodes N --node-cpu --node-memory --node-pods --node-prefix
  --nodes-file F (JSON Node, NodeList/List or array; repeatable) --ready-delay --pull-backoff
  --bad-images --crash-images --storage-class --watch-history N --bookmark-interval
  --discovery aggregated|legacy --too-large-rv-wait S --no-events --max-events --heartbeat S (nodes refresh
  lastHeartbeatTime) --namespace-delete-delay S --latency-ms --capture FILE (every JSON body
  returned and every watch event, one JSON line each) --seed.

  /usr/bin/python3 tests/fakes/kubeapi.py --tls-dir /tmp/k/tls --token-file /tmp/k/token \\
      --kubeconfig /tmp/k/kubeconfig --nodes 3 --port-file /tmp/k/port
  KUBECONFIG=/tmp/k/kubeconfig kubectl get nodes

Not implemented (a real cluster differs here): no RBAC/authorization (any valid token may do
everything), no admission webhooks, no CRDs or other kinds (404), no protobuf or CBOR (JSON and
YAML only: kubectl's imperative generators such as `kubectl create deployment NAME` send
protobuf and get 415; `kubectl create/apply -f` send JSON), no HTTP/2, no real OpenAPI schemas (fieldValidation=Strict is accepted but unknown
fields are not reported), no graceful termination (deleted pods vanish at once; no Terminating
phase unless a finalizer holds them), no pod exec/attach/port-forward/proxy, no log follow
streaming, no StatefulSets/Jobs/HPA, DaemonSets without a controller, no Services endpoints, no resourceVersionMatch
or consistent reads at an old resourceVersion (lists are always current), no
NoExecute-taint eviction of pods, no quota on updates or quota scopes, managedFields list
elements are keyed but sets (finalizers, ...) are atomic, quantities in node fixtures are kept
as given, Event series/aggregation is absent. State is in memory only and lost on exit.
"""
import argparse
import base64
import bisect
import collections
import hashlib
import heapq
import json
import marshal
import os
import queue
import random
import re
import socket
import ssl
import subprocess
import sys
import threading
import time
import uuid
from fractions import Fraction
from functools import lru_cache
from operator import itemgetter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, unquote, urlsplit

try:  # only needed for YAML request bodies; JSON bodies (what kubectl sends) need nothing
    import yaml
    _YAML_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
except ImportError:  # pragma: no cover
    yaml = None

SERVER_VERSION = "v1.32.4"
MISSING = object()


# --------------------------------------------------------------------------
# small helpers
# --------------------------------------------------------------------------

def now_ts(t=None):
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() if t is None else t))


def parse_ts(s):
    try:
        return time.mktime(time.strptime(s, "%Y-%m-%dT%H:%M:%SZ")) - time.timezone
    except (TypeError, ValueError):
        return None


def clone(v):
    """Deep copy of JSON data (marshal is C and far faster than copy.deepcopy)."""
    if isinstance(v, (dict, list)):
        return marshal.loads(marshal.dumps(v))
    return v


def dumps(obj):
    return json.dumps(obj, separators=(",", ":"))


def human_duration(secs):
    """Age as kubectl prints it (apimachinery duration.HumanDuration)."""
    s = int(secs)
    if s < -1:
        return "<invalid>"
    if s < 0:
        return "0s"
    if s < 120:
        return "%ds" % s
    m = s // 60
    if m < 10:
        return "%dm" % m if s % 60 == 0 else "%dm%ds" % (m, s % 60)
    if m < 180:
        return "%dm" % m
    h = s // 3600
    if h < 8:
        return "%dh" % h if m % 60 == 0 else "%dh%dm" % (h, m % 60)
    if h < 48:
        return "%dh" % h
    if h < 192:
        return "%dd" % (h // 24) if h % 24 == 0 else "%dd%dh" % (h // 24, h % 24)
    if h < 24 * 365 * 2:
        return "%dd" % (h // 24)
    if h < 24 * 365 * 8:
        y, d = divmod(h // 24, 365)
        return "%dy" % y if d == 0 else "%dy%dd" % (y, d)
    return "%dy" % (h // 24 // 365)


def age(obj):
    t = parse_ts(obj.get("metadata", {}).get("creationTimestamp"))
    return "<unknown>" if t is None else human_duration(time.time() - t)


def md(obj):
    return obj.setdefault("metadata", {})


SAFE_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"


def fnv32a(data):
    h = 0x811C9DC5
    for b in data:
        h = ((h ^ b) * 0x01000193) & 0xFFFFFFFF
    return h


def template_hash(template):
    digits = str(fnv32a(json.dumps(template, sort_keys=True, separators=(",", ":")).encode()))
    return "".join(SAFE_ALPHABET[ord(c) % len(SAFE_ALPHABET)] for c in digits)


# --------------------------------------------------------------------------
# resource.Quantity (apimachinery pkg/api/resource): parse, compare, canonical form
# --------------------------------------------------------------------------

_Q_RE = re.compile(r"^([+-]?)([0-9]+(?:\.[0-9]*)?|\.[0-9]+)(Ki|Mi|Gi|Ti|Pi|Ei|[eE][+-]?[0-9]+|[numkMGTPE])?$")
_BIN = {"Ki": 10, "Mi": 20, "Gi": 30, "Ti": 40, "Pi": 50, "Ei": 60}
_DEC = {"n": -9, "u": -6, "m": -3, "": 0, "k": 3, "M": 6, "G": 9, "T": 12, "P": 15, "E": 18}
_DEC_SUFFIX = {v: k for k, v in _DEC.items()}
_BIN_SUFFIX = [(60, "Ei"), (50, "Pi"), (40, "Ti"), (30, "Gi"), (20, "Mi"), (10, "Ki")]
QUANTITY_REGEX_MSG = ("quantities must match the regular expression "
                      "'^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'")


class QuantityError(ValueError):
    pass


def parse_quantity(s):
    """-> (Fraction value rounded up to nano, format) or QuantityError."""
    if isinstance(s, str):
        return _parse_quantity_str(s)
    return _parse_quantity(s)


@lru_cache(maxsize=4096)
def _parse_quantity_str(s):
    return _parse_quantity(s)


def _parse_quantity(s):
    if isinstance(s, bool):
        raise QuantityError(QUANTITY_REGEX_MSG)
    if isinstance(s, int):
        return Fraction(s), "DecimalSI"
    if isinstance(s, float):
        s = repr(s)
    if not isinstance(s, str):
        raise QuantityError(QUANTITY_REGEX_MSG)
    m = _Q_RE.match(s.strip())
    if not m or not s.strip():
        raise QuantityError(QUANTITY_REGEX_MSG)
    sign, num, suf = m.group(1), m.group(2), m.group(3) or ""
    v = Fraction(num if not num.endswith(".") else num[:-1] or "0")
    if suf in _BIN:
        v *= 2 ** _BIN[suf]
        fmt = "BinarySI"
    elif suf and suf[0] in "eE" and len(suf) > 1:
        v *= Fraction(10) ** int(suf[1:])
        fmt = "DecimalExponent"
    else:
        v *= Fraction(10) ** _DEC[suf]
        fmt = "DecimalSI"
    if sign == "-":
        v = -v
    # keep precision down to nano, rounding away from zero
    n = v * 10 ** 9
    if n.denominator != 1:
        n = -((-n.numerator) // n.denominator) if n > 0 else n.numerator // n.denominator
        v = Fraction(n, 10 ** 9)
    return v, fmt


def q_value(s, default=Fraction(0)):
    if s is None:
        return default
    return parse_quantity(s)[0]


def format_quantity(v, fmt="DecimalSI"):
    """Canonical string of a value (the way the API server re-serialises it)."""
    v = Fraction(v)
    if fmt == "BinarySI" and v.denominator == 1 and abs(v) >= 1024:
        n = int(v)
        for bits, suf in _BIN_SUFFIX:
            if n % (1 << bits) == 0:
                return "%d%s" % (n >> bits, suf)
        return str(n)
    if v == 0:
        return "0"
    nano = v * 10 ** 9
    if nano.denominator != 1:
        nano = Fraction(int(nano) + (1 if nano > 0 else -1))
    n = int(nano)
    t = 0
    while n % 10 == 0 and t < 27:
        n //= 10
        t += 1
    e = min((t // 3) * 3 - 9, 18)
    mant = int(nano / Fraction(10) ** (e + 9))
    if fmt == "DecimalExponent":
        return "%de%d" % (mant, e) if e else str(mant)
    return "%d%s" % (mant, _DEC_SUFFIX[e])


@lru_cache(maxsize=4096)
def _canonical_str(s):
    v, fmt = parse_quantity(s)
    return format_quantity(v, fmt)


def canonical_quantity(s):
    if isinstance(s, str):
        return _canonical_str(s)
    v, fmt = parse_quantity(s)
    return format_quantity(v, fmt)


def fmt_like(v, resource):
    """Format a sum for a resource name (memory/storage binary, others decimal)."""
    if any(x in resource for x in ("memory", "storage")) and Fraction(v).denominator == 1:
        return format_quantity(v, "BinarySI")
    return format_quantity(v, "DecimalSI")


def int_or_percent(v, total, round_up):
    if isinstance(v, int):
        return v
    if isinstance(v, str) and v.endswith("%") and v[:-1].isdigit():
        x = Fraction(int(v[:-1]) * total, 100)
        return -((-x.numerator) // x.denominator) if round_up else x.numerator // x.denominator
    if isinstance(v, str) and v.isdigit():
        return int(v)
    raise ValueError(v)


# --------------------------------------------------------------------------
# label and field selectors
# --------------------------------------------------------------------------

_REQ_SET = re.compile(r"^\s*([A-Za-z0-9_./-]+)\s+(in|notin)\s*\(([^)]*)\)\s*$")
_REQ_OP = re.compile(r"^\s*([A-Za-z0-9_./-]+)\s*(==|!=|=|>|<)\s*([A-Za-z0-9_.-]*)\s*$")
_REQ_EXISTS = re.compile(r"^\s*(!?)\s*([A-Za-z0-9_./-]+)\s*$")


class SelectorError(ValueError):
    pass


def _split_top(s):
    parts, depth, cur = [], 0, ""
    for ch in s:
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
        if ch == "," and depth == 0:
            parts.append(cur)
            cur = ""
        else:
            cur += ch
    parts.append(cur)
    return [p for p in parts if p.strip()]


def parse_label_selector(s):
    """'a=b,c!=d,e in (x,y),f notin (z),g,!h' -> list of (key, op, values)."""
    reqs = []
    if not s:
        return reqs
    for part in _split_top(s):
        m = _REQ_SET.match(part)
        if m:
            vals = [v.strip() for v in m.group(3).split(",") if v.strip()]
            reqs.append((m.group(1), m.group(2), vals))
            continue
        m = _REQ_OP.match(part)
        if m:
            op = {"==": "=", "=": "="}.get(m.group(2), m.group(2))
            if op in (">", "<") and not m.group(3).lstrip("-").isdigit():
                raise SelectorError("unable to parse requirement: for 'Gt', 'Lt' operators, the value must be an integer")
            reqs.append((m.group(1), op, [m.group(3)]))
            continue
        m = _REQ_EXISTS.match(part)
        if m:
            reqs.append((m.group(2), "!" if m.group(1) else "exists", []))
            continue
        raise SelectorError("unable to parse requirement: found '%s', expected: identifier" % part.strip())
    return reqs


def match_reqs(reqs, labels):
    labels = labels or {}
    for key, op, vals in reqs:
        has = key in labels
        v = labels.get(key)
        if op == "=" and v != vals[0]:
            return False
        if op == "!=" and v == vals[0]:
            return False
        if op == "in" and v not in vals:
            return False
        if op == "notin" and has and v in vals:
            return False
        if op == "exists" and not has:
            return False
        if op == "!" and has:
            return False
        if op in (">", "<"):
            try:
                n = int(v)
            except (TypeError, ValueError):
                return False
            if (op == ">" and not n > int(vals[0])) or (op == "<" and not n < int(vals[0])):
                return False
    return True


def selector_reqs(sel):
    """metav1.LabelSelector -> reqs (None selector matches nothing)."""
    if sel is None:
        return None
    reqs = [(k, "=", [v]) for k, v in (sel.get("matchLabels") or {}).items()]
    for e in sel.get("matchExpressions") or []:
        op = {"In": "in", "NotIn": "notin", "Exists": "exists", "DoesNotExist": "!"}.get(e.get("operator"))
        if op is None:
            return None
        reqs.append((e.get("key"), op, list(e.get("values") or [])))
    return reqs


def selector_matches(sel, labels):
    reqs = selector_reqs(sel)
    return reqs is not None and match_reqs(reqs, labels)


def format_selector(sel):
    if not sel:
        return "<none>"
    parts = ["%s=%s" % (k, v) for k, v in sorted((sel.get("matchLabels") or {}).items())]
    for e in sel.get("matchExpressions") or []:
        op, key, vals = e.get("operator"), e.get("key", ""), ",".join(e.get("values") or [])
        if op == "In":
            parts.append("%s in (%s)" % (key, vals))
        elif op == "NotIn":
            parts.append("%s notin (%s)" % (key, vals))
        elif op == "Exists":
            parts.append(key)
        else:
            parts.append("!" + key)
    return ",".join(parts) if parts else "<none>"


FIELD_SELECTORS = {
    "pods": {"spec.nodeName", "spec.restartPolicy", "spec.schedulerName", "spec.serviceAccountName",
             "spec.hostNetwork", "status.phase", "status.podIP", "status.nominatedNodeName"},
    "nodes": {"spec.unschedulable"},
    "secrets": {"type"},
    "events": {"involvedObject.kind", "involvedObject.namespace", "involvedObject.name", "involvedObject.uid",
               "involvedObject.apiVersion", "involvedObject.resourceVersion", "involvedObject.fieldPath",
               "reason", "reportingComponent", "source", "type"},
    "namespaces": {"status.phase"},
    "replicasets": {"status.replicas"},
}


def parse_field_selector(s, plural):
    reqs = []
    if not s:
        return reqs
    allowed = {"metadata.name", "metadata.namespace"} | FIELD_SELECTORS.get(plural, set())
    for part in s.split(","):
        if not part.strip():
            continue
        m = re.match(r"^\s*([A-Za-z0-9_.]+)\s*(==|!=|=)\s*(.*?)\s*$", part)
        if not m:
            raise SelectorError("invalid selector: '%s'; can't understand '%s'" % (s, part))
        if m.group(1) not in allowed:
            raise SelectorError('field label not supported: %s' % m.group(1))
        reqs.append((m.group(1), "!=" if m.group(2) == "!=" else "=", m.group(3)))
    return reqs


def field_value(obj, path):
    if path == "source":
        return (obj.get("source") or {}).get("component", "")
    cur = obj
    for p in path.split("."):
        if not isinstance(cur, dict):
            return ""
        cur = cur.get(p)
    if cur is None:
        return "false" if path in ("spec.unschedulable", "spec.hostNetwork") else ""
    if isinstance(cur, bool):
        return "true" if cur else "false"
    return str(cur)


def match_fields(reqs, obj):
    for path, op, val in reqs:
        v = field_value(obj, path)
        if (op == "=") != (v == val):
            return False
    return True


# --------------------------------------------------------------------------
# patches: JSON merge patch (RFC 7386), strategic merge patch, JSON patch (RFC 6902)
# --------------------------------------------------------------------------

def merge_patch(target, patch):
    if not isinstance(patch, dict):
        return clone(patch)
    result = dict(target) if isinstance(target, dict) else {}
    for k, v in patch.items():
        if v is None:
            result.pop(k, None)
        else:
            result[k] = merge_patch(result.get(k), v)
    return result


# list fields merged by key in strategic merge patches (patchMergeKey in the Go types)
SMP_MERGE_KEYS = {
    "containers": "name", "initContainers": "name", "ephemeralContainers": "name", "env": "name",
    "volumes": "name", "volumeMounts": "mountPath", "volumeDevices": "devicePath",
    "imagePullSecrets": "name", "conditions": "type", "taints": "key", "ownerReferences": "uid",
    "hostAliases": "ip", "addresses": "type", "topologySpreadConstraints": "topologyKey",
    "resourceClaims": "name", "containerStatuses": "name", "initContainerStatuses": "name",
}
SMP_PRIMITIVE_MERGE = {"finalizers"}


class PatchError(ValueError):
    pass


def _smp_list(cur, patch, field):
    if field in SMP_PRIMITIVE_MERGE and all(not isinstance(x, dict) for x in patch):
        out = list(cur)
        for x in patch:
            if x not in out:
                out.append(x)
        return out
    key = SMP_MERGE_KEYS.get(field)
    if field == "ports":
        key = "containerPort" if any(isinstance(x, dict) and "containerPort" in x for x in patch + cur) else "port"
    if key is None or not all(isinstance(x, dict) for x in patch):
        return clone([x for x in patch if not (isinstance(x, dict) and "$patch" in x)])
    if any(x.get("$patch") == "replace" for x in patch):
        return clone([x for x in patch if "$patch" not in x])
    out = list(cur)
    for el in patch:
        if key not in el:
            raise PatchError("map: %s does not contain declared merge key: %s" % (el, key))
        idx = next((i for i, x in enumerate(out) if isinstance(x, dict) and x.get(key) == el[key]), None)
        if el.get("$patch") == "delete":
            if idx is not None:
                out.pop(idx)
            continue
        if idx is None:
            out.append(smp({}, el))
        else:
            out[idx] = smp(out[idx], el)
    return out


def smp(target, patch):
    if not isinstance(patch, dict):
        return clone(patch)
    directive = patch.get("$patch")
    if directive == "replace":
        return clone({k: v for k, v in patch.items() if k != "$patch"})
    if directive == "delete":
        return None
    result = dict(target) if isinstance(target, dict) else {}
    for k, v in patch.items():
        if k in ("$patch", "$retainKeys") or k.startswith("$setElementOrder/"):
            continue
        if k.startswith("$deleteFromPrimitiveList/"):
            f = k.split("/", 1)[1]
            result[f] = [x for x in result.get(f) or [] if x not in (v or [])]
            continue
        if v is None:
            result.pop(k, None)
        elif isinstance(v, list):
            cur = result.get(k)
            result[k] = _smp_list(cur, v, k) if isinstance(cur, list) else _smp_list([], v, k)
        elif isinstance(v, dict):
            r = smp(result.get(k), v)
            if r is None:
                result.pop(k, None)
            else:
                result[k] = r
        else:
            result[k] = v
    if "$retainKeys" in patch:
        keep = set(patch["$retainKeys"] or [])
        result = {k: v for k, v in result.items() if k in keep}
    return result


def _pointer(path):
    if path == "":
        return []
    if not path.startswith("/"):
        raise PatchError("invalid JSON pointer %r" % path)
    return [p.replace("~1", "/").replace("~0", "~") for p in path[1:].split("/")]


def json_patch(doc, ops):
    doc = clone(doc)
    if not isinstance(ops, list):
        raise PatchError("json patch must be a list of operations")

    def parent(tokens):
        cur = doc
        for t in tokens[:-1]:
            if isinstance(cur, list):
                cur = cur[int(t)]
            elif isinstance(cur, dict) and t in cur:
                cur = cur[t]
            else:
                raise PatchError("doc is missing path: %s" % "/".join(tokens))
        return cur, tokens[-1]

    def get(tokens):
        cur = doc
        for t in tokens:
            if isinstance(cur, list):
                cur = cur[int(t)]
            elif isinstance(cur, dict) and t in cur:
                cur = cur[t]
            else:
                raise PatchError("doc is missing path: /%s" % "/".join(tokens))
        return cur

    def add(tokens, value):
        nonlocal doc
        if not tokens:
            doc = value
            return
        p, last = parent(tokens)
        if isinstance(p, list):
            if last == "-":
                p.append(value)
            else:
                p.insert(int(last), value)
        else:
            p[last] = value

    def remove(tokens):
        p, last = parent(tokens)
        if isinstance(p, list):
            return p.pop(int(last))
        if last not in p:
            raise PatchError("unable to remove nonexistent key: %s" % last)
        return p.pop(last)

    try:
        for op in ops:
            kind, path = op.get("op"), _pointer(op.get("path", ""))
            if kind == "add":
                add(path, clone(op.get("value")))
            elif kind == "remove":
                remove(path)
            elif kind == "replace":
                remove(path)
                add(path, clone(op.get("value")))
            elif kind == "move":
                v = remove(_pointer(op.get("from", "")))
                add(path, v)
            elif kind == "copy":
                add(path, clone(get(_pointer(op.get("from", "")))))
            elif kind == "test":
                if get(path) != op.get("value"):
                    raise PatchError("testing value %s failed" % op.get("path"))
            else:
                raise PatchError("Unexpected kind: %s" % kind)
    except (IndexError, ValueError, TypeError, KeyError, AttributeError) as e:
        if isinstance(e, PatchError):
            raise
        raise PatchError(str(e))
    return doc


# --------------------------------------------------------------------------
# field sets for server-side apply / managedFields (lists are atomic)
# --------------------------------------------------------------------------

SKIP_META = {"name", "namespace", "uid", "resourceVersion", "generation", "creationTimestamp", "managedFields",
             "deletionTimestamp", "deletionGracePeriodSeconds", "selfLink"}


def assoc_key(field, items):
    """The key of a list treated as a map (containers by name, ...), or None for an atomic list."""
    if not items or not all(isinstance(x, dict) for x in items):
        return None
    k = SMP_MERGE_KEYS.get(field)
    if field == "ports":
        k = "containerPort" if all("containerPort" in x for x in items) else "port"
    if k is None or not all(k in x for x in items):
        return None
    if len({x[k] if isinstance(x[k], (str, int)) else dumps(x[k]) for x in items}) != len(items):
        return None
    return k


def flatten(obj, status_sub, has_status):
    """Leaf paths -> values of the part of obj a writer manages. A path step is a field
    name, or ("k", key, value) for an element of a list treated as a map."""
    out = {}

    def walk(v, path, field):
        if isinstance(v, dict) and v:
            for k, x in v.items():
                walk(x, path + (k,), k)
            return
        if isinstance(v, list) and v:
            mk = assoc_key(field, v)
            if mk is not None:
                for el in v:
                    walk(el, path + (("k", mk, el[mk]),), None)
                return
        out[path] = v
    for k, v in obj.items():
        if k in ("apiVersion", "kind"):
            continue
        if status_sub:
            if k == "status":
                walk(v, (k,), k)
            continue
        if k == "status" and has_status:
            continue
        if k == "metadata":
            if isinstance(v, dict):
                for mk, mv in v.items():
                    if mk not in SKIP_META:
                        walk(mv, ("metadata", mk), mk)
        else:
            walk(v, (k,), k)
    return out


def path_str(path):
    """.spec.template.spec.containers[name="web"].image, as conflict messages print it."""
    out = ""
    for k in path:
        if isinstance(k, tuple):
            out += "[%s=%s]" % (k[1], dumps(k[2]))
        else:
            out += "." + k
    return out


@lru_cache(maxsize=4096)
def _step_key(k):
    return "k:" + dumps({k[1]: k[2]}) if isinstance(k, tuple) else "f:" + k


def fields_v1(paths):
    return _fields_v1(frozenset(paths))


@lru_cache(maxsize=8192)
def _fields_v1(paths):
    """The FieldsV1 tree of a set of paths (shared between objects: never mutated)."""
    root = {}
    for p in paths:
        cur = root
        for k in p:
            cur = cur.setdefault(_step_key(k), {})
    return root


def _step(cur, k, nxt):
    """Child of cur at step k, created (a map, or a list when the next step is a key) if absent."""
    if isinstance(k, tuple):
        for el in cur:
            if isinstance(el, dict) and el.get(k[1]) == k[2]:
                return el
        el = {k[1]: k[2]}
        cur.append(el)
        return el
    child = cur.get(k)
    want_list = isinstance(nxt, tuple)
    if want_list and not isinstance(child, list) or not want_list and not isinstance(child, dict):
        child = [] if want_list else {}
        cur[k] = child
    return child


def set_path(obj, path, value):
    cur = obj
    for i, k in enumerate(path[:-1]):
        cur = _step(cur, k, path[i + 1])
    last = path[-1]
    if isinstance(last, tuple):
        return
    if isinstance(value, dict) and not value and isinstance(cur.get(last), dict):
        return  # asserting an empty map leaves what others set in it
    cur[last] = value


def del_path(obj, path):
    chain = [obj]
    cur = obj
    for k in path[:-1]:
        if isinstance(k, tuple):
            cur = next((el for el in cur if isinstance(el, dict) and el.get(k[1]) == k[2]), None) \
                if isinstance(cur, list) else None
        else:
            cur = cur.get(k) if isinstance(cur, dict) else None
        if not isinstance(cur, (dict, list)):
            return
        chain.append(cur)
    if isinstance(chain[-1], dict) and not isinstance(path[-1], tuple):
        chain[-1].pop(path[-1], None)
    # prune maps, elements and lists emptied by the removal (never the top-level ones such as spec)
    for d in range(len(chain) - 1, 1, -1):
        if chain[d]:
            break
        parent, step = chain[d - 1], path[d - 1]
        if isinstance(parent, list):
            parent.remove(chain[d])
        else:
            parent.pop(step, None)


def del_paths(obj, paths):
    """Remove leaves; merge keys of list elements go last (they identify the element)."""
    def is_key(p):
        return len(p) >= 2 and isinstance(p[-2], tuple) and p[-1] == p[-2][1]
    for p in sorted(paths, key=lambda p: (is_key(p), -len(p), repr(p))):
        del_path(obj, p)


# --------------------------------------------------------------------------
# the resources served
# --------------------------------------------------------------------------

VERBS = ["create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"]


class Res:
    def __init__(self, group, version, plural, kind, namespaced, short=(), status=False, subs=(),
                 generation=False, categories=(), singular=None):
        self.group, self.version, self.plural, self.kind = group, version, plural, kind
        self.namespaced, self.short, self.status, self.subs = namespaced, list(short), status, list(subs)
        self.generation, self.categories = generation, list(categories)
        self.singular = singular or kind.lower()
        self.api_version = "%s/%s" % (group, version) if group else version
        self.qualified = "%s.%s" % (plural, group) if group else plural      # deployments.apps
        self.kind_q = "%s.%s" % (kind, group) if group else kind             # Deployment.apps
        self.prefix = "/apis/%s/%s" % (group, version) if group else "/api/%s" % version

    def __repr__(self):
        return "<Res %s>" % self.qualified


RESOURCES = [
    Res("", "v1", "namespaces", "Namespace", False, ["ns"], status=True, subs=["status", "finalize"]),
    Res("", "v1", "nodes", "Node", False, ["no"], status=True, subs=["status"]),
    Res("", "v1", "pods", "Pod", True, ["po"], status=True, subs=["status", "log", "eviction", "binding"],
        categories=["all"]),
    Res("", "v1", "secrets", "Secret", True),
    Res("", "v1", "configmaps", "ConfigMap", True, ["cm"]),
    Res("", "v1", "persistentvolumeclaims", "PersistentVolumeClaim", True, ["pvc"], status=True, subs=["status"]),
    Res("", "v1", "services", "Service", True, ["svc"], status=True, subs=["status"], categories=["all"]),
    Res("", "v1", "resourcequotas", "ResourceQuota", True, ["quota"], status=True, subs=["status"]),
    Res("", "v1", "limitranges", "LimitRange", True, ["limits"]),
    Res("", "v1", "events", "Event", True, ["ev"]),
    Res("apps", "v1", "deployments", "Deployment", True, ["deploy"], status=True, subs=["status", "scale"],
        generation=True, categories=["all"]),
    Res("apps", "v1", "replicasets", "ReplicaSet", True, ["rs"], status=True, subs=["status", "scale"],
        generation=True, categories=["all"]),
    # stored only (no controller creates their pods): kubectl drain looks up the DaemonSet of a pod
    Res("apps", "v1", "daemonsets", "DaemonSet", True, ["ds"], status=True, subs=["status"],
        generation=True, categories=["all"]),
    Res("networking.k8s.io", "v1", "ingresses", "Ingress", True, ["ing"], status=True, subs=["status"],
        generation=True),
    Res("networking.k8s.io", "v1", "networkpolicies", "NetworkPolicy", True, ["netpol"], generation=True),
    Res("policy", "v1", "poddisruptionbudgets", "PodDisruptionBudget", True, ["pdb"], status=True,
        subs=["status"], generation=True),
]
BY_GVR = {(r.group, r.version, r.plural): r for r in RESOURCES}
R = {r.plural: r for r in RESOURCES}
GROUPS = collections.OrderedDict()
for _r in RESOURCES:
    GROUPS.setdefault(_r.group, _r.version)


class ApiError(Exception):
    def __init__(self, code, reason, message, details=None, headers=None):
        super().__init__(message)
        self.code, self.reason, self.message, self.details, self.headers = code, reason, message, details, headers

    def status(self):
        st = {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
              "message": self.message, "reason": self.reason, "code": self.code}
        if self.details is not None:
            st["details"] = self.details
        return st


def _details(res, name, **extra):
    d = {"name": name} if name else {}
    if res is not None:
        if res.group:
            d["group"] = res.group
        d["kind"] = res.plural
    d.update(extra)
    return d


def not_found(res, name):
    return ApiError(404, "NotFound", '%s "%s" not found' % (res.qualified, name), _details(res, name))


def already_exists(res, name):
    return ApiError(409, "AlreadyExists", '%s "%s" already exists' % (res.qualified, name), _details(res, name))


def conflict(res, name):
    return ApiError(409, "Conflict", 'Operation cannot be fulfilled on %s "%s": the object has been modified; '
                    'please apply your changes to the latest version and try again' % (res.qualified, name),
                    _details(res, name))


def forbidden(res, name, why, causes=None):
    d = _details(res, name)
    if causes:
        d["causes"] = causes
    return ApiError(403, "Forbidden", '%s "%s" is forbidden: %s' % (res.qualified, name, why), d)


def bad_request(msg):
    return ApiError(400, "BadRequest", msg)


class Errs:
    """field.ErrorList: collects causes; raise_for() makes the 422 Invalid."""
    REASONS = {"Required": "FieldValueRequired", "Invalid": "FieldValueInvalid",
               "NotSupported": "FieldValueNotSupported", "Duplicate": "FieldValueDuplicate",
               "Forbidden": "FieldValueForbidden", "TooLong": "FieldValueTooLong"}

    def __init__(self):
        self.items = []

    def required(self, field, detail=""):
        self.items.append(("Required", field, "Required value" + (": " + detail if detail else "")))

    def invalid(self, field, value, detail):
        self.items.append(("Invalid", field, "Invalid value: %s: %s" % (go_value(value), detail)))

    def not_supported(self, field, value, supported):
        self.items.append(("NotSupported", field, "Unsupported value: %s: supported values: %s"
                           % (go_value(value), ", ".join('"%s"' % s for s in supported))))

    def duplicate(self, field, value):
        self.items.append(("Duplicate", field, "Duplicate value: %s" % go_value(value)))

    def forbidden(self, field, detail):
        self.items.append(("Forbidden", field, "Forbidden: " + detail))

    def raise_for(self, res, name):
        if not self.items:
            return
        texts = ["%s: %s" % (f, m) for _, f, m in self.items]
        msg = '%s "%s" is invalid: %s' % (res.kind_q, name, texts[0] if len(texts) == 1 else "[" + ", ".join(texts) + "]")
        causes = [{"reason": self.REASONS[t], "message": m, "field": f} for t, f, m in self.items]
        d = {"name": name, "kind": res.kind, "causes": causes}
        if res.group:
            d = {"name": name, "group": res.group, "kind": res.kind, "causes": causes}
        raise ApiError(422, "Invalid", msg, d)


def go_value(v):
    if isinstance(v, str):
        return json.dumps(v)
    if isinstance(v, bool):
        return "true" if v else "false"
    if v is None:
        return "null"
    if isinstance(v, dict):
        if all(isinstance(x, str) for x in v.values()):
            return "map[string]string{%s}" % ", ".join('"%s":"%s"' % (k, x) for k, x in sorted(v.items()))
        return json.dumps(v, sort_keys=True)
    if isinstance(v, list):
        return "[]string{%s}" % ", ".join(json.dumps(x) for x in v)
    return str(v)


# --------------------------------------------------------------------------
# discovery and OpenAPI documents
# --------------------------------------------------------------------------

AGG_V2 = "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList"


def resource_list(group, version):
    out = []
    for r in RESOURCES:
        if r.group != group or r.version != version:
            continue
        e = {"name": r.plural, "singularName": r.singular, "namespaced": r.namespaced, "kind": r.kind,
             "verbs": VERBS}
        if r.short:
            e["shortNames"] = r.short
        if r.categories:
            e["categories"] = r.categories
        e["storageVersionHash"] = base64.b64encode(hashlib.sha256(r.qualified.encode()).digest()[:8]).decode()
        out.append(e)
        for s in r.subs:
            sub = {"name": "%s/%s" % (r.plural, s), "singularName": "", "namespaced": r.namespaced,
                   "kind": r.kind, "verbs": ["get", "patch", "update"]}
            if s == "log":
                sub["verbs"] = ["get"]
            elif s == "eviction":
                sub.update(group="policy", version="v1", kind="Eviction", verbs=["create"])
            elif s == "binding":
                sub.update(kind="Binding", verbs=["create"])
            elif s == "finalize":
                sub["verbs"] = ["update"]
            elif s == "scale":
                sub.update(group="autoscaling", version="v1", kind="Scale")
            out.append(sub)
    return {"kind": "APIResourceList", "apiVersion": "v1",
            "groupVersion": "%s/%s" % (group, version) if group else version, "resources": out}


def api_group(group):
    v = GROUPS[group]
    gv = {"groupVersion": "%s/%s" % (group, v), "version": v}
    return {"kind": "APIGroup", "apiVersion": "v1", "name": group, "versions": [gv], "preferredVersion": gv}


def api_group_list():
    return {"kind": "APIGroupList", "apiVersion": "v1",
            "groups": [{k: v for k, v in api_group(g).items() if k not in ("kind", "apiVersion")}
                       for g in GROUPS if g]}


def api_versions(addr):
    return {"kind": "APIVersions", "versions": ["v1"],
            "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": addr}]}


def aggregated(legacy):
    items = []
    for g, v in GROUPS.items():
        if (g == "") != legacy:
            continue
        resources = []
        for r in RESOURCES:
            if r.group != g:
                continue
            e = {"resource": r.plural, "responseKind": {"group": g, "version": v, "kind": r.kind},
                 "scope": "Namespaced" if r.namespaced else "Cluster", "singularResource": r.singular,
                 "verbs": VERBS}
            if r.short:
                e["shortNames"] = r.short
            if r.categories:
                e["categories"] = r.categories
            subs = []
            for s in r.subs:
                kind = {"group": g, "version": v, "kind": r.kind}
                verbs = ["get", "patch", "update"]
                if s == "log":
                    verbs = ["get"]
                elif s == "eviction":
                    kind, verbs = {"group": "policy", "version": "v1", "kind": "Eviction"}, ["create"]
                elif s == "binding":
                    kind, verbs = {"group": "", "version": "v1", "kind": "Binding"}, ["create"]
                elif s == "finalize":
                    verbs = ["update"]
                elif s == "scale":
                    kind = {"group": "autoscaling", "version": "v1", "kind": "Scale"}
                subs.append({"subresource": s, "responseKind": kind, "verbs": verbs})
            if subs:
                e["subresources"] = subs
            resources.append(e)
        items.append({"metadata": {"name": g, "creationTimestamp": None},
                      "versions": [{"version": v, "resources": resources, "freshness": "Current"}]})
    return {"kind": "APIGroupDiscoveryList", "apiVersion": "apidiscovery.k8s.io/v2", "metadata": {},
            "items": items}


def openapi_v3_root():
    paths = {}
    for g, v in GROUPS.items():
        p = "apis/%s/%s" % (g, v) if g else "api/v1"
        paths[p] = {"serverRelativeURL": "/openapi/v3/%s?hash=%s" % (p, hashlib.sha1(p.encode()).hexdigest()[:16].upper())}
    return {"paths": paths}


def openapi_v3_doc(group, version):
    """Just enough of a group-version's OpenAPI v3 for kubectl: its PATCH operations accept
    fieldValidation (so kubectl leaves field validation to the server). No schemas."""
    paths = {}
    params = [{"name": n, "in": "query", "schema": {"type": "string", "uniqueItems": True}}
              for n in ("dryRun", "fieldManager", "fieldValidation", "force", "pretty")]
    for r in RESOURCES:
        if r.group != group or r.version != version:
            continue
        base = r.prefix + ("/namespaces/{namespace}/" if r.namespaced else "/") + r.plural + "/{name}"
        gvk = {"group": group, "version": version, "kind": r.kind}
        paths[base] = {"patch": {"operationId": "patch" + r.kind, "x-kubernetes-action": "patch",
                                 "x-kubernetes-group-version-kind": gvk, "parameters": params,
                                 "responses": {"200": {"description": "OK"}}}}
    return {"openapi": "3.0.0", "info": {"title": "Kubernetes", "version": SERVER_VERSION}, "paths": paths,
            "components": {"schemas": {}}}


def version_info():
    major, minor = SERVER_VERSION.lstrip("v").split(".")[:2]
    return {"major": major, "minor": minor, "gitVersion": SERVER_VERSION, "gitCommit": "0" * 40, "gitTreeState": "clean",
            "buildDate": "2025-04-22T00:00:00Z", "goVersion": "go1.23.8", "compiler": "gc",
            "platform": "linux/amd64"}


# --------------------------------------------------------------------------
# the store: objects in memory behind one lock, a global resourceVersion, watch history
# --------------------------------------------------------------------------

def obj_usage(res, obj):
    """What an object counts against a namespace's ResourceQuota."""
    u = collections.Counter()
    p = res.plural
    u["count/%s" % res.qualified] += 1
    if p == "pods":
        if is_terminal(obj):
            return collections.Counter()
        u["pods"] += 1
        req, lim = pod_requests(obj)
        for r, v in req.items():
            u["requests." + r] += v
            if r in ("cpu", "memory", "ephemeral-storage"):
                u[r] += v
        for r, v in lim.items():
            u["limits." + r] += v
    elif p in ("services", "secrets", "configmaps", "persistentvolumeclaims", "resourcequotas"):
        u[p] += 1
        if p == "services":
            t = (obj.get("spec") or {}).get("type", "ClusterIP")
            if t == "LoadBalancer":
                u["services.loadbalancers"] += 1
            if t in ("NodePort", "LoadBalancer"):
                u["services.nodeports"] += len((obj.get("spec") or {}).get("ports") or [])
        if p == "persistentvolumeclaims":
            st = q_value(((obj.get("spec") or {}).get("resources") or {}).get("requests", {}).get("storage"))
            u["requests.storage"] += st
            sc = (obj.get("spec") or {}).get("storageClassName")
            if sc:
                u["%s.storageclass.storage.k8s.io/requests.storage" % sc] += st
                u["%s.storageclass.storage.k8s.io/persistentvolumeclaims" % sc] += 1
    return u


class Watcher:
    def __init__(self, res, ns):
        self.res, self.ns = res, ns
        self.q = queue.SimpleQueue()


class Store:
    def __init__(self, history, rng):
        self.lock = threading.RLock()
        self.rng = rng
        self.rv = 0
        self.objs = {r.plural: {} for r in RESOURCES}
        # the same objects by namespace: {plural: {ns: {(ns, name): obj}}} (a namespace's
        # objects without a scan of every namespace; insertion order as in objs)
        self.by_ns = {r.plural: {} for r in RESOURCES}
        # what the objects of each namespace count against a ResourceQuota (obj_usage summed),
        # kept up to date by commit: admission and the quota controller read it, no scan
        self.ns_used = {}
        self.history = collections.deque()
        self.history_max = history
        self.floor = 0            # a watch may resume from any resourceVersion >= floor
        self.watchers = set()
        self.owners = {}          # (plural, ns, name) -> {(manager, operation, subresource): [apiVersion, time, paths]}
        self.dependents = collections.defaultdict(set)   # owner uid -> {(plural, ns, name)}
        self.listeners = []

    def uid(self):
        return str(uuid.UUID(int=self.rng.getrandbits(128), version=4))

    def get(self, res, ns, name):
        return self.objs[res.plural].get((ns or "", name))

    def items(self, res, ns=None):
        table = self.objs[res.plural]
        if ns is None:
            return list(table.values())
        return list(self.by_ns[res.plural].get(ns, {}).values())

    def commit(self, res, etype, obj, old):
        """Publish a new version of an object (ADDED/MODIFIED) or its removal (DELETED).
        obj is fresh (never shared with a stored version); it is never mutated afterwards."""
        self.rv += 1
        m = obj["metadata"]
        m["resourceVersion"] = str(self.rv)
        key = (m.get("namespace", "") if res.namespaced else "", m["name"])
        okey = (res.plural,) + key
        table = self.objs[res.plural]
        if old is not None:
            for ref in old["metadata"].get("ownerReferences") or []:
                self.dependents[ref.get("uid")].discard(okey)
        nstable = self.by_ns[res.plural]
        if res.namespaced and res.plural != "events":
            prev = table.get(key)
            minus = obj_usage(res, prev) if prev is not None else {}
            plus = obj_usage(res, obj) if etype != "DELETED" else {}
            used = self.ns_used.setdefault(key[0], collections.Counter())
            for k, v in minus.items():
                left = used[k] - v
                if left:
                    used[k] = left
                else:
                    del used[k]
            for k, v in plus.items():
                if v:
                    used[k] += v
            if not used:
                del self.ns_used[key[0]]
        if etype == "DELETED":
            table.pop(key, None)
            part = nstable.get(key[0])
            if part is not None:
                part.pop(key, None)
                if not part:
                    del nstable[key[0]]
            self.owners.pop(okey, None)
        else:
            table[key] = obj
            nstable.setdefault(key[0], {})[key] = obj
            for ref in m.get("ownerReferences") or []:
                self.dependents[ref.get("uid")].add(okey)
        self.history.append((self.rv, res, etype, obj, old))
        while len(self.history) > self.history_max:
            self.floor = self.history.popleft()[0]
        for w in self.watchers:
            if w.res is res and (w.ns is None or w.ns == key[0]):
                w.q.put((etype, obj, old))
        for cb in self.listeners:
            cb(res, etype, obj, old)
        return obj

    def compact(self):
        self.history.clear()
        self.floor = self.rv


def update_entries(entries, res, manager, sub, old, new, changed=None):
    """managedFields after an Update operation: the writer owns what it changed, fields
    it removed lose their owners. Returns a new entries dict (old one untouched).
    "changed": the leaf paths that changed, when the caller knows them and removed none
    (a kubelet's heartbeat), instead of a diff of the two objects."""
    if changed is not None:
        removed = set()
    else:
        status_sub = sub == "status"
        of = flatten(old, status_sub, res.status) if old is not None else {}
        nf = flatten(new, status_sub, res.status)
        changed = {p for p, v in nf.items() if of.get(p, MISSING) != v}
        removed = of.keys() - nf.keys()
    out = {}
    for ek, (av, t, paths) in entries.items():
        if changed or removed:
            paths = paths - removed if ek == (manager, "Update", sub) else paths - changed - removed
        if paths:
            out[ek] = [av, t, paths]
    if changed:
        cur = out.get((manager, "Update", sub))
        out[(manager, "Update", sub)] = [res.api_version, now_ts(), (cur[2] if cur else set()) | changed]
    return out


# --------------------------------------------------------------------------
# validation helpers
# --------------------------------------------------------------------------

DNS1123_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
DNS1123_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
DNS1035_LABEL = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")
LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")
QUALIFIED_NAME = re.compile(r"^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$")
CONFIG_KEY = re.compile(r"^[-._a-zA-Z0-9]+$")
MSG_SUBDOMAIN = ("a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', "
                 "and must start and end with an alphanumeric character (e.g. 'example.com', regex used for "
                 "validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')")
MSG_LABEL = ("a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must "
             "start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for "
             "validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')")
MSG_1035 = ("a DNS-1035 label must consist of lower case alphanumeric characters or '-', start with an alphabetic "
            "character, and end with an alphanumeric character (e.g. 'my-name',  or 'abc-123', regex used for "
            "validation is '[a-z]([-a-z0-9]*[a-z0-9])?')")
MSG_LABEL_VALUE = ("a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', "
                   "and must start and end with an alphanumeric character (e.g. 'MyValue',  or 'my_value',  or "
                   "'12345', regex used for validation is '(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')")
MSG_QUALIFIED = ("name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with "
                 "an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for "
                 "validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')")


def check_dns(errs, field, value, kind="subdomain"):
    rx, msg, limit = {"subdomain": (DNS1123_SUBDOMAIN, MSG_SUBDOMAIN, 253), "label": (DNS1123_LABEL, MSG_LABEL, 63),
                      "1035": (DNS1035_LABEL, MSG_1035, 63)}[kind]
    if not isinstance(value, str) or not rx.match(value):
        errs.invalid(field, value, msg)
    elif len(value) > limit:
        errs.invalid(field, value, "must be no more than %d characters" % limit)


def check_labels(errs, field, labels):
    if labels is None:
        return
    if not isinstance(labels, dict):
        errs.invalid(field, labels, "must be a map of strings")
        return
    for k, v in labels.items():
        name = k.rsplit("/", 1)[-1]
        prefix = k[:-len(name) - 1] if "/" in k else None
        if not QUALIFIED_NAME.match(name) or len(name) > 63 or (prefix is not None and not DNS1123_SUBDOMAIN.match(prefix)):
            errs.invalid(field, k, MSG_QUALIFIED)
        if not isinstance(v, str) or not LABEL_VALUE.match(v) or len(v) > 63:
            errs.invalid(field, v, MSG_LABEL_VALUE if isinstance(v, str) and len(v) <= 63 else "must be no more than 63 characters")


def check_quantities(errs, field, m):
    for k, v in (m or {}).items():
        try:
            if parse_quantity(v)[0] < 0:
                errs.invalid("%s[%s]" % (field, k), v, "must be greater than or equal to 0")
        except QuantityError:
            raise bad_request(QUANTITY_REGEX_MSG)


def canon_resources(m):
    if isinstance(m, dict):
        for k, v in list(m.items()):
            try:
                m[k] = canonical_quantity(v)
            except QuantityError:
                raise bad_request(QUANTITY_REGEX_MSG)


def image_pull_policy(image):
    ref = image.split("@", 1)[0]
    last = ref.rsplit("/", 1)[-1]
    tag = last.split(":", 1)[1] if ":" in last else None
    if "@" in image:
        return "IfNotPresent"
    return "Always" if tag in (None, "latest") else "IfNotPresent"


def container_requests(c):
    r = (c.get("resources") or {})
    return r.get("requests") or {}, r.get("limits") or {}


def pod_requests(pod):
    """-> (requests, limits) of a pod as {name: Fraction}, the way the scheduler and quota count them."""
    req, lim = collections.Counter(), collections.Counter()
    spec = pod.get("spec") or {}
    for c in spec.get("containers") or []:
        rq, lm = container_requests(c)
        for k, v in rq.items():
            req[k] += q_value(v)
        for k, v in lm.items():
            lim[k] += q_value(v)
    for c in spec.get("initContainers") or []:
        rq, lm = container_requests(c)
        for k, v in rq.items():
            req[k] = max(req[k], q_value(v))
        for k, v in lm.items():
            lim[k] = max(lim[k], q_value(v))
    return req, lim


def qos_class(spec):
    cs = (spec.get("containers") or []) + (spec.get("initContainers") or [])
    any_set, guaranteed = False, True
    for c in cs:
        rq, lm = container_requests(c)
        if rq or lm:
            any_set = True
        for r in ("cpu", "memory"):
            if r not in lm or q_value(rq.get(r, lm[r])) != q_value(lm[r]):
                guaranteed = False
    if not any_set:
        return "BestEffort"
    return "Guaranteed" if guaranteed else "Burstable"


def is_terminal(pod):
    return (pod.get("status") or {}).get("phase") in ("Succeeded", "Failed")


def pod_ready(pod):
    for c in (pod.get("status") or {}).get("conditions") or []:
        if c.get("type") == "Ready":
            return c.get("status") == "True"
    return False


def controller_ref(obj):
    for ref in obj.get("metadata", {}).get("ownerReferences") or []:
        if ref.get("controller"):
            return ref
    return None


def owner_ref(obj, controller=True):
    m = obj["metadata"]
    return {"apiVersion": obj["apiVersion"], "kind": obj["kind"], "name": m["name"], "uid": m["uid"],
            "controller": controller, "blockOwnerDeletion": True}


# --------------------------------------------------------------------------
# the API: reads and the one write path every verb goes through
# --------------------------------------------------------------------------

PROTECTED_NAMESPACES = ("default", "kube-system", "kube-public")


class Api:
    def __init__(self, store, opts):
        self.s = store
        self.o = opts
        self.ip_seq = 10
        self.nodeport_seq = 30000
        self.lb_seq = 10

    # reads -----------------------------------------------------------------

    def get(self, res, ns, name):
        obj = self.s.get(res, ns, name)
        if obj is None:
            raise not_found(res, name)
        return obj

    def check_namespace(self, res, ns, name):
        if not res.namespaced:
            return
        n = self.s.get(R["namespaces"], "", ns)
        if n is None:
            raise not_found(R["namespaces"], ns)
        if n["metadata"].get("deletionTimestamp"):
            msg = "unable to create new content in namespace %s because it is being terminated" % ns
            raise forbidden(res, name, msg, [{"reason": "NamespaceTerminating", "message": msg,
                                              "field": "metadata.namespace"}])

    # verbs -----------------------------------------------------------------

    def check_type(self, res, body):
        if not isinstance(body, dict):
            raise bad_request("Object 'Kind' is missing in '%s'" % dumps(body)[:200])
        av, kind = body.get("apiVersion"), body.get("kind")
        if kind is not None and kind != res.kind:
            raise bad_request("the object provided is unrecognized (must be of type %s): couldn't get version/kind; "
                              "json parse error: kind %s does not match %s" % (res.kind, kind, res.kind))
        if av is not None and av != res.api_version:
            raise bad_request("the API version in the data (%s) does not match the expected API version (%s)"
                              % (av, res.api_version))
        if not isinstance(body.get("metadata", {}), dict):
            raise bad_request("metadata must be an object")

    def create(self, res, ns, body, manager, dry_run=False):
        self.check_type(res, body)
        m = body.setdefault("metadata", {})
        if res.namespaced and m.get("namespace") not in (None, "", ns):
            raise bad_request("the namespace of the provided object does not match the namespace sent on the request")
        name = m.get("name")
        if not name and m.get("generateName"):
            name = m["generateName"] + "".join(self.s.rng.choice(SAFE_ALPHABET) for _ in range(5))
        if not name:
            e = Errs()
            e.required("metadata.name", "name or generateName is required")
            e.raise_for(res, "")
        with self.s.lock:
            self.check_namespace(res, ns, name)
            if self.s.get(res, ns, name) is not None:
                raise already_exists(res, name)
            return self.write(res, ns, name, None, body, manager, None, dry_run)

    def update(self, res, ns, name, body, manager, sub=None, dry_run=False):
        self.check_type(res, body)
        m = body.setdefault("metadata", {})
        if m.get("name") not in (None, name):
            raise bad_request("the name of the object (%s) does not match the name on the URL (%s)" % (m.get("name"), name))
        if res.namespaced and m.get("namespace") not in (None, "", ns):
            raise bad_request("the namespace of the provided object does not match the namespace sent on the request")
        with self.s.lock:
            old = self.get(res, ns, name)
            if m.get("resourceVersion") and m["resourceVersion"] != old["metadata"]["resourceVersion"]:
                raise conflict(res, name)
            return self.write(res, ns, name, old, body, manager, sub, dry_run)

    def patch(self, res, ns, name, ctype, patch, manager, sub=None, dry_run=False, force=False):
        if ctype == "application/apply-patch+yaml":
            return self.apply(res, ns, name, patch, manager, force, sub, dry_run)
        with self.s.lock:
            old = self.get(res, ns, name)
            try:
                if ctype == "application/json-patch+json":
                    new = json_patch(old, patch)
                elif not isinstance(patch, dict):
                    raise PatchError("patch must be a JSON object")
                elif ctype == "application/merge-patch+json":
                    new = merge_patch(old, patch)
                else:
                    new = smp(old, patch)
            except PatchError as e:
                raise ApiError(422, "Invalid", str(e)) if ctype == "application/json-patch+json" else bad_request(str(e))
            if not isinstance(new, dict):
                raise bad_request("patch produced a non-object")
            rv = (new.get("metadata") or {}).get("resourceVersion")
            if rv not in (None, old["metadata"]["resourceVersion"]):
                raise conflict(res, name)
            new = clone(new)
            self.check_type(res, new)
            return self.write(res, ns, name, old, new, manager, sub, dry_run)

    def apply(self, res, ns, name, applied, manager, force, sub=None, dry_run=False):
        if not manager:
            raise ApiError(422, "Invalid", 'PatchOptions.meta.k8s.io "" is invalid: fieldManager: Required value: '
                           'is required for apply patch', {"group": "meta.k8s.io", "kind": "PatchOptions", "causes": [
                               {"reason": "FieldValueRequired", "message": "Required value: is required for apply patch",
                                "field": "fieldManager"}]})
        if not isinstance(applied, dict):
            raise bad_request("error decoding YAML: apply patch must be an object")
        if not applied.get("apiVersion") or not applied.get("kind"):
            raise bad_request("invalid object type: /, Kind=")
        self.check_type(res, applied)
        am = applied.get("metadata") or {}
        if am.get("name") not in (None, name):
            raise bad_request("the name of the object (%s) does not match the name on the URL (%s)" % (am.get("name"), name))
        if res.namespaced and am.get("namespace") not in (None, "", ns):
            raise bad_request("the namespace of the provided object does not match the namespace sent on the request")
        with self.s.lock:
            old = self.s.get(res, ns, name)
            if old is None:
                self.check_namespace(res, ns, name)
            okey = (res.plural, ns if res.namespaced else "", name)
            entries = self.s.owners.get(okey, {})
            status_sub = sub == "status"
            app = flatten(applied, status_sub, res.status)
            cur = flatten(old, status_sub, res.status) if old is not None else {}
            me = (manager, "Apply", sub)
            conflicts = []
            for p, v in app.items():
                if p in cur and cur[p] != v:
                    for ek, (av, _, paths) in entries.items():
                        if ek[0] != manager and p in paths:
                            conflicts.append((ek[0], av, p))
            if conflicts and not force:
                causes = [{"reason": "FieldManagerConflict", "message": 'conflict with "%s" using %s' % (mgr, av),
                           "field": path_str(p)} for mgr, av, p in conflicts]
                msg = "Apply failed with %d conflict%s: %s" % (
                    len(conflicts), "" if len(conflicts) == 1 else "s",
                    "; ".join('conflict with "%s" using %s: %s' % (mgr, av, path_str(p)) for mgr, av, p in conflicts))
                raise ApiError(409, "Conflict", msg, dict(_details(res, name), causes=causes))
            base = clone(old) if old is not None else {"apiVersion": res.api_version, "kind": res.kind,
                                                         "metadata": {"name": name}}
            prev = entries.get(me, [None, None, set()])[2]
            others = set()
            for ek, (_, _, paths) in entries.items():
                if ek != me:
                    others |= paths
            del_paths(base, prev - app.keys() - others)
            for p, v in app.items():
                set_path(base, p, clone(v))
            lost = {p for _, _, p in conflicts}
            new_entries = {}
            for ek, (av, t, paths) in entries.items():
                if ek != me:
                    paths = paths - lost
                    if paths:
                        new_entries[ek] = [av, t, paths]
            if app:
                same = me in entries and entries[me][2] == set(app)
                new_entries[me] = [res.api_version, entries[me][1] if same else now_ts(), set(app)]
            return self.write(res, ns, name, old, base, manager, sub, dry_run, new_entries)

    # the shared tail of every write ------------------------------------------

    def write(self, res, ns, name, old, new, manager, sub, dry_run, entries=None):
        m = new.setdefault("metadata", {})
        new["apiVersion"], new["kind"] = res.api_version, res.kind
        m["name"] = name
        if res.namespaced:
            m["namespace"] = ns
        else:
            m.pop("namespace", None)
        if old is None:
            for k in ("resourceVersion", "uid", "creationTimestamp", "deletionTimestamp", "deletionGracePeriodSeconds",
                      "generation", "managedFields", "selfLink"):
                m.pop(k, None)
            m["uid"] = self.s.uid()
            m["creationTimestamp"] = now_ts()
            if res.generation:
                m["generation"] = 1
            if res.status and res.plural != "nodes":
                new["status"] = {}
        else:
            om = old["metadata"]
            for k in ("uid", "creationTimestamp", "deletionTimestamp", "deletionGracePeriodSeconds", "generation"):
                if k in om:
                    m[k] = om[k]
                else:
                    m.pop(k, None)
            if sub == "status":
                status = new.get("status")
                new = clone(old)
                m = new["metadata"]
                if status is None:
                    new.pop("status", None)
                else:
                    new["status"] = status
            elif res.status:
                if "status" in old:
                    new["status"] = clone(old["status"])
                else:
                    new.pop("status", None)
        defaults(self, res, new, old)
        if old is None:
            self.admit_create(res, ns, new)
        errs = Errs()
        validate(res, new, old, errs)
        errs.raise_for(res, name)
        if res.generation and old is not None and new.get("spec") != old.get("spec"):
            m["generation"] = old["metadata"].get("generation", 1) + 1
        okey = (res.plural, ns if res.namespaced else "", name)
        old_entries = self.s.owners.get(okey, {})
        if entries is None:
            entries = update_entries(old_entries, res, manager or "unknown", sub, old, new)
        m["managedFields"] = render_entries(entries)
        if not m["managedFields"]:
            m.pop("managedFields")
        if old is not None:
            m["resourceVersion"] = old["metadata"]["resourceVersion"]
            if same_object(old, new) and {k: v[2] for k, v in old_entries.items()} == {k: v[2] for k, v in entries.items()}:
                return old
        if dry_run:
            if old is None:
                m.pop("uid", None)
            return new
        self.s.owners[okey] = entries
        self.s.commit(res, "ADDED" if old is None else "MODIFIED", new, old)
        if old is not None and m.get("deletionTimestamp") and not m.get("finalizers"):
            self.remove(res, new, "Background")
            return self.s.get(res, ns, name) or new
        return new

    # deletion ------------------------------------------------------------------

    def delete(self, res, ns, name, opts, dry_run=False):
        opts = opts or {}
        with self.s.lock:
            old = self.get(res, ns, name)
            pre = opts.get("preconditions") or {}
            if pre.get("uid") and pre["uid"] != old["metadata"]["uid"]:
                raise ApiError(409, "Conflict", "Precondition failed: UID in precondition: %s, UID in object meta: %s"
                               % (pre["uid"], old["metadata"]["uid"]), _details(res, name))
            if pre.get("resourceVersion") and pre["resourceVersion"] != old["metadata"]["resourceVersion"]:
                raise ApiError(409, "Conflict", "Precondition failed: ResourceVersion in precondition: %s, "
                               "ResourceVersion in object meta: %s" % (pre["resourceVersion"],
                                                                       old["metadata"]["resourceVersion"]),
                               _details(res, name))
            policy = opts.get("propagationPolicy")
            if policy is None and opts.get("orphanDependents") is not None:
                policy = "Orphan" if opts["orphanDependents"] else "Background"
            if policy not in (None, "Orphan", "Background", "Foreground"):
                e = Errs()
                e.not_supported("propagationPolicy", policy, ["Foreground", "Background", "Orphan", "nil"])
                e.raise_for(res, name)
            policy = policy or "Background"
            if res.plural == "namespaces":
                return self.delete_namespace(old, dry_run)
            if dry_run:
                return self.delete_result(res, old)
            if old["metadata"].get("deletionTimestamp"):
                return old
            if old["metadata"].get("finalizers"):
                marked = self.mark_deleted(res, old, list(old["metadata"]["finalizers"]))
                return marked
            if policy == "Foreground" and self.s.dependents.get(old["metadata"]["uid"]):
                marked = self.mark_deleted(res, old, ["foregroundDeletion"])
                self.remove(res, marked, "Foreground")
                return marked
            self.remove(res, old, policy)
            return self.delete_result(res, old)

    def delete_result(self, res, old):
        if res.plural in ("pods", "services", "namespaces"):
            return old
        return {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success",
                "details": _details(res, old["metadata"]["name"], uid=old["metadata"]["uid"])}

    def mark_deleted(self, res, old, finalizers):
        new = dict(old)
        new["metadata"] = dict(old["metadata"], deletionTimestamp=now_ts(), deletionGracePeriodSeconds=0,
                               finalizers=finalizers)
        return self.s.commit(res, "MODIFIED", new, old)

    def remove(self, res, obj, policy):
        """Delete an object now and handle its dependents (garbage collection)."""
        cur = self.s.get(res, obj["metadata"].get("namespace", ""), obj["metadata"]["name"])
        if cur is None:
            return
        uid = cur["metadata"]["uid"]
        deps = sorted(self.s.dependents.get(uid, ()))
        if policy == "Foreground":
            self.cascade(uid, deps, "Foreground")
        gone = dict(cur)
        gone["metadata"] = dict(cur["metadata"])
        self.s.commit(res, "DELETED", gone, cur)
        if policy == "Background":
            self.cascade(uid, deps, "Background")
        elif policy == "Orphan":
            for plural, ns, name in deps:
                d = self.s.objs[plural].get((ns, name))
                if d is None:
                    continue
                nd = dict(d)
                nd["metadata"] = dict(d["metadata"])
                nd["metadata"]["ownerReferences"] = [r for r in d["metadata"].get("ownerReferences") or []
                                                     if r.get("uid") != uid]
                if not nd["metadata"]["ownerReferences"]:
                    del nd["metadata"]["ownerReferences"]
                self.s.commit(R[plural], "MODIFIED", nd, d)
        self.s.dependents.pop(uid, None)

    def cascade(self, uid, deps, policy):
        for plural, ns, name in deps:
            d = self.s.objs[plural].get((ns, name))
            if d is None:
                continue
            refs = d["metadata"].get("ownerReferences") or []
            if any(r.get("uid") != uid and self.owner_alive(r, ns) for r in refs):
                nd = dict(d)
                nd["metadata"] = dict(d["metadata"], ownerReferences=[r for r in refs if r.get("uid") != uid])
                self.s.commit(R[plural], "MODIFIED", nd, d)
            else:
                self.remove(R[plural], d, policy)

    def owner_alive(self, ref, ns):
        for r in RESOURCES:
            if r.kind == ref.get("kind"):
                o = self.s.get(r, ns if r.namespaced else "", ref.get("name"))
                return o is not None and o["metadata"]["uid"] == ref.get("uid")
        return False

    def delete_namespace(self, old, dry_run):
        name = old["metadata"]["name"]
        if name in PROTECTED_NAMESPACES:
            raise forbidden(R["namespaces"], name, "this namespace may not be deleted")
        if dry_run:
            return old
        if old["metadata"].get("deletionTimestamp"):
            return old
        marked = dict(old)
        marked["metadata"] = dict(old["metadata"], deletionTimestamp=now_ts())
        marked["status"] = {"phase": "Terminating", "conditions": [
            {"type": "NamespaceContentRemaining", "status": "False", "lastTransitionTime": now_ts(),
             "reason": "ContentRemoved", "message": "All content successfully removed"}]}
        marked = self.s.commit(R["namespaces"], "MODIFIED", marked, old)
        delay = self.o.namespace_delete_delay
        if delay > 0:
            self.controller.later(delay, ("purge-namespace", name))
        else:
            self.purge_namespace(name)
        return marked

    def purge_namespace(self, name):
        with self.s.lock:
            ns = self.s.get(R["namespaces"], "", name)
            if ns is None or not ns["metadata"].get("deletionTimestamp"):
                return
            for res in sorted((r for r in RESOURCES if r.namespaced), key=lambda r: r.plural != "deployments"):
                for obj in self.s.items(res, name):
                    cur = self.s.get(res, name, obj["metadata"]["name"])
                    if cur is not None:
                        gone = dict(cur)
                        gone["metadata"] = dict(cur["metadata"])
                        self.s.commit(res, "DELETED", gone, cur)
            gone = dict(ns)
            gone["metadata"] = dict(ns["metadata"])
            self.s.commit(R["namespaces"], "DELETED", gone, ns)

    # admission (LimitRanger, ResourceQuota) ---------------------------------------

    def admit_create(self, res, ns, obj):
        if res.plural == "pods":
            self.limit_ranger(ns, obj)
            obj["status"]["qosClass"] = qos_class(obj["spec"])
        self.check_quota(res, ns, obj)

    def limit_ranger(self, ns, pod):
        ranges = self.s.items(R["limitranges"], ns)
        set_msgs = []
        name = pod["metadata"]["name"]
        for lr in sorted(ranges, key=lambda o: o["metadata"]["name"]):
            for item in (lr.get("spec") or {}).get("limits") or []:
                if item.get("type") != "Container":
                    continue
                for c in pod["spec"].get("containers") or []:
                    res_ = c.setdefault("resources", {})
                    lims = res_.setdefault("limits", {})
                    reqs = res_.setdefault("requests", {})
                    setl, setr = [], []
                    for k, v in (item.get("default") or {}).items():
                        if k not in lims:
                            lims[k] = v
                            setl.append(k)
                    for k, v in (item.get("defaultRequest") or {}).items():
                        if k not in reqs:
                            reqs[k] = v
                            setr.append(k)
                    if not lims:
                        res_.pop("limits")
                    if not reqs:
                        res_.pop("requests")
                    if setr:
                        set_msgs.append("%s request for container %s" % (", ".join(setr), c.get("name")))
                    if setl:
                        set_msgs.append("%s limit for container %s" % (", ".join(setl), c.get("name")))
                    for k, v in (item.get("max") or {}).items():
                        lim = lims.get(k)
                        if lim is None:
                            raise forbidden(R["pods"], name, "maximum %s usage per Container is %s.  No limit is specified"
                                            % (k, v))
                        if q_value(lim) > q_value(v):
                            raise forbidden(R["pods"], name, "maximum %s usage per Container is %s, but limit is %s"
                                            % (k, v, lim))
                    for k, v in (item.get("min") or {}).items():
                        rq = reqs.get(k)
                        if rq is None:
                            raise forbidden(R["pods"], name, "minimum %s usage per Container is %s.  No request is specified"
                                            % (k, v))
                        if q_value(rq) < q_value(v):
                            raise forbidden(R["pods"], name, "minimum %s usage per Container is %s, but request is %s"
                                            % (k, v, rq))
                    canon_resources(res_.get("limits"))
                    canon_resources(res_.get("requests"))
        if set_msgs:
            md(pod).setdefault("annotations", {})["kubernetes.io/limit-ranger"] = \
                "LimitRanger plugin set: " + "; ".join(set_msgs)

    def obj_usage(self, res, obj):
        return obj_usage(res, obj)

    def ns_usage(self, ns):
        return collections.Counter(self.s.ns_used.get(ns) or {})

    def check_quota(self, res, ns, obj):
        if not res.namespaced or res.plural == "events":
            return
        quotas = sorted(self.s.items(R["resourcequotas"], ns), key=lambda o: o["metadata"]["name"])
        if not quotas:
            return
        delta = self.obj_usage(res, obj)
        used = None
        name = obj["metadata"]["name"]
        for q in quotas:
            hard = {k: q_value(v) for k, v in ((q.get("spec") or {}).get("hard") or {}).items()}
            if res.plural == "pods":
                missing = []
                for rn in sorted(hard):
                    if rn in ("requests.cpu", "cpu", "requests.memory", "memory", "limits.cpu", "limits.memory"):
                        kind, r = ("limits", rn[7:]) if rn.startswith("limits.") else ("requests", rn.split(".")[-1])
                        lacking = [c.get("name") for c in obj["spec"].get("containers") or []
                                   if r not in ((c.get("resources") or {}).get(kind) or {})]
                        if lacking:
                            missing.append("%s for: %s" % (rn, ",".join(lacking)))
                if missing:
                    raise forbidden(res, name, "failed quota: %s: must specify %s" % (q["metadata"]["name"],
                                                                                      "; ".join(missing)))
            if used is None:
                used = self.ns_usage(ns)
            over = [rn for rn in sorted(hard) if delta.get(rn) and used[rn] + delta[rn] > hard[rn]]
            if over:
                def fmt(vals):
                    return ",".join("%s=%s" % (rn, fmt_like(vals[rn], rn)) for rn in over)
                raise forbidden(res, name, "exceeded quota: %s, requested: %s, used: %s, limited: %s" % (
                    q["metadata"]["name"], fmt(delta), fmt(used), fmt(hard)))

    def alloc_cluster_ip(self):
        self.ip_seq += 1
        return "10.96.%d.%d" % (self.ip_seq // 250, self.ip_seq % 250 + 1)

    def alloc_node_port(self):
        self.nodeport_seq += 1
        return self.nodeport_seq


def render_entries(entries):
    out = []
    for (manager, op, sub), (av, t, paths) in entries.items():
        e = {"manager": manager, "operation": op, "apiVersion": av, "time": t, "fieldsType": "FieldsV1",
             "fieldsV1": fields_v1(paths)}
        if sub:
            e["subresource"] = sub
        out.append(e)
    return out


def same_object(a, b):
    if a.keys() != b.keys():
        return False
    for k in a:
        if k == "metadata":
            ma, mb = a[k], b[k]
            ka = {x for x in ma if x not in ("managedFields", "resourceVersion")}
            kb = {x for x in mb if x not in ("managedFields", "resourceVersion")}
            if ka != kb or any(ma[x] != mb[x] for x in ka):
                return False
        elif a[k] != b[k]:
            return False
    return True


# --------------------------------------------------------------------------
# defaulting (what the API server fills in) and validation (422 Invalid)
# --------------------------------------------------------------------------

def default_container(c):
    if not isinstance(c, dict):
        return
    c.setdefault("terminationMessagePath", "/dev/termination-log")
    c.setdefault("terminationMessagePolicy", "File")
    if isinstance(c.get("image"), str) and c["image"]:
        c.setdefault("imagePullPolicy", image_pull_policy(c["image"]))
    res = c.setdefault("resources", {})
    if isinstance(res, dict):
        canon_resources(res.get("limits"))
        canon_resources(res.get("requests"))
    for p in c.get("ports") or []:
        if isinstance(p, dict):
            p.setdefault("protocol", "TCP")
    for probe in ("livenessProbe", "readinessProbe", "startupProbe"):
        pr = c.get(probe)
        if isinstance(pr, dict):
            pr.setdefault("timeoutSeconds", 1)
            pr.setdefault("periodSeconds", 10)
            pr.setdefault("successThreshold", 1)
            pr.setdefault("failureThreshold", 3)
            if isinstance(pr.get("httpGet"), dict):
                pr["httpGet"].setdefault("scheme", "HTTP")
                pr["httpGet"].setdefault("path", "/")
    for e in c.get("env") or []:
        fr = ((e or {}).get("valueFrom") or {}).get("fieldRef") if isinstance(e, dict) else None
        if isinstance(fr, dict):
            fr.setdefault("apiVersion", "v1")


def default_pod_spec(ps, pod):
    if not isinstance(ps, dict):
        return
    ps.setdefault("restartPolicy", "Always")
    ps.setdefault("terminationGracePeriodSeconds", 30)
    ps.setdefault("dnsPolicy", "ClusterFirst")
    ps.setdefault("securityContext", {})
    ps.setdefault("schedulerName", "default-scheduler")
    for c in (ps.get("containers") or []) + (ps.get("initContainers") or []):
        default_container(c)
        if pod and isinstance(c, dict):
            r = c.get("resources") or {}
            if r.get("limits"):
                req = r.setdefault("requests", {})
                for k, v in r["limits"].items():
                    req.setdefault(k, v)
    for v in ps.get("volumes") or []:
        if isinstance(v, dict):
            for src in ("secret", "configMap"):
                if isinstance(v.get(src), dict):
                    v[src].setdefault("defaultMode", 420)
    if pod:
        ps.setdefault("serviceAccountName", "default")
        ps["serviceAccount"] = ps["serviceAccountName"]
        ps.setdefault("enableServiceLinks", True)
        ps.setdefault("preemptionPolicy", "PreemptLowerPriority")
        ps.setdefault("priority", 0)
        tol = ps.setdefault("tolerations", [])
        for key in ("node.kubernetes.io/not-ready", "node.kubernetes.io/unreachable"):
            if not any(isinstance(t, dict) and t.get("key") == key for t in tol):
                tol.append({"key": key, "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 300})


def defaults(api, res, obj, old):
    p = res.plural
    m = obj["metadata"]
    spec = obj.get("spec")
    if p == "namespaces":
        m.setdefault("labels", {})["kubernetes.io/metadata.name"] = m["name"]
        obj.setdefault("spec", {}).setdefault("finalizers", ["kubernetes"])
        if old is None:
            obj["status"] = {"phase": "Active"}
    elif p == "pods":
        default_pod_spec(obj.setdefault("spec", {}), True)
        if old is None:
            obj["status"] = {"phase": "Pending", "qosClass": qos_class(obj["spec"])}
    elif p in ("deployments", "replicasets"):
        spec = obj.setdefault("spec", {})
        spec.setdefault("replicas", 1)
        if p == "deployments":
            st = spec.setdefault("strategy", {})
            if isinstance(st, dict):
                st.setdefault("type", "RollingUpdate")
                if st["type"] == "RollingUpdate":
                    ru = st.setdefault("rollingUpdate", {})
                    ru.setdefault("maxUnavailable", "25%")
                    ru.setdefault("maxSurge", "25%")
            spec.setdefault("revisionHistoryLimit", 10)
            spec.setdefault("progressDeadlineSeconds", 600)
        tmpl = spec.get("template")
        if isinstance(tmpl, dict):
            tmpl.setdefault("metadata", {})
            default_pod_spec(tmpl.setdefault("spec", {}), False)
        if old is None and p == "replicasets":
            obj["status"] = {"replicas": 0}
    elif p == "services":
        spec = obj.setdefault("spec", {})
        spec.setdefault("type", "ClusterIP")
        spec.setdefault("sessionAffinity", "None")
        if spec["type"] != "ExternalName":
            if old is not None and (old.get("spec") or {}).get("clusterIP") and "clusterIP" not in spec:
                spec["clusterIP"] = old["spec"]["clusterIP"]
            if not spec.get("clusterIP"):
                spec["clusterIP"] = api.alloc_cluster_ip()
            spec.setdefault("clusterIPs", [spec["clusterIP"]])
            spec.setdefault("ipFamilies", ["IPv4"] if spec["clusterIP"] != "None" else ["IPv4"])
            spec.setdefault("ipFamilyPolicy", "SingleStack")
            spec.setdefault("internalTrafficPolicy", "Cluster")
        old_ports = {(op.get("port"), op.get("protocol", "TCP")): op for op in ((old or {}).get("spec") or {}).get("ports") or []
                     if isinstance(op, dict)}
        for port in spec.get("ports") or []:
            if isinstance(port, dict):
                port.setdefault("protocol", "TCP")
                if "port" in port:
                    port.setdefault("targetPort", port["port"])
                if spec["type"] in ("NodePort", "LoadBalancer") and not port.get("nodePort"):
                    prev = old_ports.get((port.get("port"), port["protocol"]))
                    port["nodePort"] = prev["nodePort"] if prev and prev.get("nodePort") else api.alloc_node_port()
        if spec["type"] in ("NodePort", "LoadBalancer"):
            spec.setdefault("externalTrafficPolicy", "Cluster")
        if spec["type"] == "LoadBalancer":
            spec.setdefault("allocateLoadBalancerNodePorts", True)
        if old is None:
            obj["status"] = {"loadBalancer": {}}
            if spec["type"] == "LoadBalancer":
                api.lb_seq += 1
                obj["status"] = {"loadBalancer": {"ingress": [{"ip": "192.0.2.%d" % (api.lb_seq % 250), "ipMode": "VIP"}]}}
    elif p == "secrets":
        obj.setdefault("type", "Opaque")
        sd = obj.pop("stringData", None)
        if isinstance(sd, dict):
            data = obj.setdefault("data", {})
            for k, v in sd.items():
                data[k] = base64.b64encode(str(v).encode()).decode()
        for k, v in (obj.get("data") or {}).items():
            try:
                base64.b64decode(v, validate=True)
            except (ValueError, TypeError):
                raise bad_request("Secret in version \"v1\" cannot be handled as a Secret: illegal base64 data at input byte 0")
    elif p == "persistentvolumeclaims":
        spec = obj.setdefault("spec", {})
        spec.setdefault("volumeMode", "Filesystem")
        if old is None:
            spec.setdefault("storageClassName", api.o.storage_class)
            obj["status"] = {"phase": "Pending"}
            fin = m.setdefault("finalizers", [])
            if "kubernetes.io/pvc-protection" not in fin:
                fin.append("kubernetes.io/pvc-protection")   # StorageObjectInUseProtection admission
        r = spec.get("resources")
        if isinstance(r, dict):
            canon_resources(r.get("requests"))
            canon_resources(r.get("limits"))
    elif p == "ingresses":
        if old is None:
            obj["status"] = {"loadBalancer": {}}
    elif p == "networkpolicies":
        spec = obj.setdefault("spec", {})
        if isinstance(spec, dict):
            spec.setdefault("podSelector", {})
            if not spec.get("policyTypes"):
                spec["policyTypes"] = ["Ingress"] + (["Egress"] if spec.get("egress") else [])
            for rule in (spec.get("ingress") or []) + (spec.get("egress") or []):
                for port in (rule or {}).get("ports") or []:
                    if isinstance(port, dict):
                        port.setdefault("protocol", "TCP")
    elif p == "resourcequotas":
        canon_resources((obj.get("spec") or {}).get("hard"))
    elif p == "limitranges":
        for item in (obj.get("spec") or {}).get("limits") or []:
            if not isinstance(item, dict):
                continue
            for k in ("default", "defaultRequest", "max", "min", "maxLimitRequestRatio"):
                canon_resources(item.get(k))
            if item.get("type") == "Container":
                if item.get("max"):
                    d = item.setdefault("default", {})
                    for k, v in item["max"].items():
                        d.setdefault(k, v)
                if item.get("default"):
                    dr = item.setdefault("defaultRequest", {})
                    for k, v in item["default"].items():
                        dr.setdefault(k, v)
                if item.get("min") and "defaultRequest" not in item:
                    item["defaultRequest"] = dict(item["min"])
    elif p == "poddisruptionbudgets":
        if old is None:
            obj["status"] = {"disruptionsAllowed": 0, "currentHealthy": 0, "desiredHealthy": 0, "expectedPods": 0}
    elif p == "daemonsets":
        # the counters are not omitempty in the Go type: a new DaemonSet is served with zeros
        if old is None:
            obj["status"] = {"currentNumberScheduled": 0, "numberMisscheduled": 0, "desiredNumberScheduled": 0,
                             "numberReady": 0}
        spec = obj.setdefault("spec", {})
        spec.setdefault("revisionHistoryLimit", 10)
        us = spec.setdefault("updateStrategy", {"type": "RollingUpdate"})
        if isinstance(us, dict) and us.get("type") == "RollingUpdate":
            us.setdefault("rollingUpdate", {"maxUnavailable": 1, "maxSurge": 0})
    elif p == "events":
        now = now_ts()
        obj.setdefault("firstTimestamp", now)
        obj.setdefault("lastTimestamp", now)
        obj.setdefault("count", 1)
        obj.setdefault("type", "Normal")
        obj.setdefault("reportingComponent", "")
        obj.setdefault("reportingInstance", "")
        obj.setdefault("source", {})
        obj.setdefault("involvedObject", {})


def validate_pod_spec(errs, path, ps, template_of=None):
    if not isinstance(ps, dict):
        errs.required(path)
        return
    cs = ps.get("containers")
    if not cs:
        errs.required(path + ".containers")
    names = set()
    for kind in ("initContainers", "containers"):
        for i, c in enumerate(ps.get(kind) or []):
            f = "%s.%s[%d]" % (path, kind, i)
            if not isinstance(c, dict):
                errs.invalid(f, c, "must be an object")
                continue
            n = c.get("name")
            if not n:
                errs.required(f + ".name")
            else:
                check_dns(errs, f + ".name", n, "label")
                if n in names:
                    errs.duplicate(f + ".name", n)
                names.add(n)
            if not c.get("image"):
                errs.required(f + ".image")
            seen_ports = set()
            for j, port in enumerate(c.get("ports") or []):
                cp = (port or {}).get("containerPort")
                if not isinstance(cp, int) or not 1 <= cp <= 65535:
                    errs.invalid("%s.ports[%d].containerPort" % (f, j), cp, "must be between 1 and 65535, inclusive")
                proto = (port or {}).get("protocol", "TCP")
                if proto not in ("TCP", "UDP", "SCTP"):
                    errs.not_supported("%s.ports[%d].protocol" % (f, j), proto, ["SCTP", "TCP", "UDP"])
                if (cp, proto) in seen_ports:
                    errs.duplicate("%s.ports[%d]" % (f, j), "%s/%s" % (cp, proto))
                seen_ports.add((cp, proto))
            r = c.get("resources") or {}
            req, lim = r.get("requests") or {}, r.get("limits") or {}
            check_quantities(errs, f + ".resources.requests", req)
            check_quantities(errs, f + ".resources.limits", lim)
            for k, v in req.items():
                if k in lim and q_value(v) > q_value(lim[k]):
                    errs.invalid("%s.resources.requests" % f, v, "must be less than or equal to %s limit of %s" % (k, lim[k]))
            pol = c.get("imagePullPolicy")
            if pol is not None and pol not in ("Always", "IfNotPresent", "Never"):
                errs.not_supported(f + ".imagePullPolicy", pol, ["Always", "IfNotPresent", "Never"])
    rp = ps.get("restartPolicy", "Always")
    allowed = ["Always"] if template_of in ("Deployment", "ReplicaSet") else ["Always", "OnFailure", "Never"]
    if rp not in allowed:
        errs.not_supported(path + ".restartPolicy", rp, allowed)
    dp = ps.get("dnsPolicy", "ClusterFirst")
    if dp not in ("ClusterFirstWithHostNet", "ClusterFirst", "Default", "None"):
        errs.not_supported(path + ".dnsPolicy", dp, ["ClusterFirst", "ClusterFirstWithHostNet", "Default", "None"])
    vols = set()
    for i, v in enumerate(ps.get("volumes") or []):
        n = (v or {}).get("name")
        if not n:
            errs.required("%s.volumes[%d].name" % (path, i))
        elif n in vols:
            errs.duplicate("%s.volumes[%d].name" % (path, i), n)
        vols.add(n)
    for kind in ("initContainers", "containers"):
        for i, c in enumerate(ps.get(kind) or []):
            for j, vm in enumerate((c or {}).get("volumeMounts") or [] if isinstance(c, dict) else []):
                if (vm or {}).get("name") not in vols:
                    errs.not_supported("%s.%s[%d].volumeMounts[%d].name" % (path, kind, i, j), (vm or {}).get("name"),
                                       sorted(x for x in vols if x))
    tgp = ps.get("terminationGracePeriodSeconds")
    if tgp is not None and (not isinstance(tgp, int) or tgp < 0):
        errs.invalid(path + ".terminationGracePeriodSeconds", tgp, "must be greater than or equal to 0")


def validate_selector(errs, field, sel):
    if not isinstance(sel, dict):
        return
    check_labels(errs, field + ".matchLabels", sel.get("matchLabels"))
    for i, e in enumerate(sel.get("matchExpressions") or []):
        op = (e or {}).get("operator")
        if op not in ("In", "NotIn", "Exists", "DoesNotExist"):
            errs.not_supported("%s.matchExpressions[%d].operator" % (field, i), op,
                               ["In", "NotIn", "Exists", "DoesNotExist"])
        elif op in ("In", "NotIn") and not (e or {}).get("values"):
            errs.required("%s.matchExpressions[%d].values" % (field, i), "must be specified when `operator` is 'In' or 'NotIn'")
        elif op in ("Exists", "DoesNotExist") and (e or {}).get("values"):
            errs.forbidden("%s.matchExpressions[%d].values" % (field, i),
                           "may not be specified when `operator` is 'Exists' or 'DoesNotExist'")


def validate_int_or_percent(errs, field, v):
    if v is None:
        return
    if isinstance(v, int) and not isinstance(v, bool):
        if v < 0:
            errs.invalid(field, v, "must be greater than or equal to 0")
    elif isinstance(v, str) and re.match(r"^[0-9]+%$", v):
        if int(v[:-1]) > 100:
            errs.invalid(field, v, "must not be greater than 100%")
    else:
        errs.invalid(field, v, "a valid percent string must be a numeric string followed by an ending '%' "
                               "(e.g. '1%',  or '93%', regex used for validation is '[0-9]+%')")


def validate(res, obj, old, errs):
    p = res.plural
    m = obj["metadata"]
    name = m["name"]
    check_dns(errs, "metadata.name", name, {"namespaces": "label", "services": "1035"}.get(p, "subdomain"))
    check_labels(errs, "metadata.labels", m.get("labels"))
    ann = m.get("annotations")
    if ann is not None:
        if not isinstance(ann, dict) or not all(isinstance(v, str) for v in ann.values()):
            errs.invalid("metadata.annotations", ann, "must be a map of strings")
        elif sum(len(k) + len(v) for k, v in ann.items()) > 256 * 1024:
            errs.invalid("metadata.annotations", "", "Too long: must have at most 262144 bytes")
    if old is not None and old["metadata"].get("deletionTimestamp"):
        of = old["metadata"].get("finalizers") or []
        added = [f for f in m.get("finalizers") or [] if f not in of]
        if added:
            errs.forbidden("metadata.finalizers", "no new finalizers can be added if the object is being deleted, "
                           "found new finalizers %s" % go_value(added))
    spec = obj.get("spec")
    if p in ("deployments", "replicasets"):
        if not isinstance(spec, dict):
            errs.required("spec")
            return
        sel = spec.get("selector")
        reps = spec.get("replicas")
        if not isinstance(reps, int) or isinstance(reps, bool):
            raise bad_request('%s in version "v1" cannot be handled as a %s: json: cannot unmarshal %s into Go struct '
                              'field %sSpec.spec.replicas of type int32' % (res.kind, res.kind, type(reps).__name__,
                                                                            res.kind))
        if reps < 0:
            errs.invalid("spec.replicas", reps, "must be greater than or equal to 0")
        if sel is None:
            errs.required("spec.selector")
        elif not (sel.get("matchLabels") or sel.get("matchExpressions")):
            errs.invalid("spec.selector", sel, "empty selector is invalid for deployment")
        else:
            validate_selector(errs, "spec.selector", sel)
        tmpl = spec.get("template")
        if not isinstance(tmpl, dict):
            errs.required("spec.template")
        else:
            labels = (tmpl.get("metadata") or {}).get("labels") or {}
            check_labels(errs, "spec.template.metadata.labels", labels)
            if sel and (sel.get("matchLabels") or sel.get("matchExpressions")) and not selector_matches(sel, labels):
                errs.invalid("spec.template.metadata.labels", labels, "`selector` does not match template `labels`")
            validate_pod_spec(errs, "spec.template.spec", tmpl.get("spec"), res.kind)
        if old is not None and (old.get("spec") or {}).get("selector") != sel:
            errs.invalid("spec.selector", sel, "field is immutable")
        if p == "deployments":
            st = spec.get("strategy") or {}
            t = st.get("type")
            if t not in ("Recreate", "RollingUpdate"):
                errs.not_supported("spec.strategy.type", t, ["Recreate", "RollingUpdate"])
            elif t == "Recreate" and st.get("rollingUpdate"):
                errs.forbidden("spec.strategy.rollingUpdate", "may not be specified when strategy `type` is 'Recreate'")
            elif t == "RollingUpdate":
                ru = st.get("rollingUpdate") or {}
                validate_int_or_percent(errs, "spec.strategy.rollingUpdate.maxUnavailable", ru.get("maxUnavailable"))
                validate_int_or_percent(errs, "spec.strategy.rollingUpdate.maxSurge", ru.get("maxSurge"))
                if ru.get("maxUnavailable") in (0, "0%") and ru.get("maxSurge") in (0, "0%"):
                    errs.invalid("spec.strategy.rollingUpdate.maxUnavailable", ru.get("maxUnavailable"),
                                 "may not be 0 when `maxSurge` is 0")
            pds = spec.get("progressDeadlineSeconds")
            if isinstance(pds, int) and pds <= spec.get("minReadySeconds", 0):
                errs.invalid("spec.progressDeadlineSeconds", pds, "must be greater than minReadySeconds")
    elif p == "pods":
        validate_pod_spec(errs, "spec", spec)
        if old is not None:
            os_, ns_ = dict(old.get("spec") or {}), dict(spec or {})
            for k in ("activeDeadlineSeconds", "tolerations", "terminationGracePeriodSeconds"):
                os_.pop(k, None)
                ns_.pop(k, None)
            oc = [(c.get("name"), c.get("image")) for c in os_.pop("containers", [])]
            nc = [(c.get("name"), c.get("image")) for c in ns_.pop("containers", [])]
            if os_ != ns_ or [n for n, _ in oc] != [n for n, _ in nc]:
                errs.forbidden("spec", "pod updates may not change fields other than `spec.containers[*].image`, "
                               "`spec.initContainers[*].image`, `spec.activeDeadlineSeconds`, `spec.tolerations` "
                               "(only additions to existing tolerations), `spec.terminationGracePeriodSeconds` "
                               "(allow it to be set to 1 if it was previously negative)")
    elif p == "services":
        if not isinstance(spec, dict):
            errs.required("spec")
            return
        t = spec.get("type")
        if t not in ("ClusterIP", "NodePort", "LoadBalancer", "ExternalName"):
            errs.not_supported("spec.type", t, ["ClusterIP", "ExternalName", "LoadBalancer", "NodePort"])
        ports = spec.get("ports") or []
        if not ports and t != "ExternalName" and spec.get("clusterIP") != "None":
            errs.required("spec.ports")
        if t == "ExternalName" and not spec.get("externalName"):
            errs.required("spec.externalName")
        pnames = set()
        for i, port in enumerate(ports):
            f = "spec.ports[%d]" % i
            pn = (port or {}).get("port")
            if not isinstance(pn, int) or not 1 <= pn <= 65535:
                errs.invalid(f + ".port", pn, "must be between 1 and 65535, inclusive")
            n = (port or {}).get("name")
            if len(ports) > 1 and not n:
                errs.required(f + ".name")
            if n:
                check_dns(errs, f + ".name", n, "label")
                if n in pnames:
                    errs.duplicate(f + ".name", n)
                pnames.add(n)
            proto = (port or {}).get("protocol", "TCP")
            if proto not in ("TCP", "UDP", "SCTP"):
                errs.not_supported(f + ".protocol", proto, ["SCTP", "TCP", "UDP"])
            np = (port or {}).get("nodePort")
            if np is not None and t == "ClusterIP":
                errs.forbidden(f + ".nodePort", "may not be used when `type` is 'ClusterIP'")
            tp = (port or {}).get("targetPort")
            if isinstance(tp, int) and not 1 <= tp <= 65535:
                errs.invalid(f + ".targetPort", tp, "must be between 1 and 65535, inclusive")
        check_labels(errs, "spec.selector", spec.get("selector"))
        if old is not None:
            oip = (old.get("spec") or {}).get("clusterIPs")
            if oip and spec.get("clusterIPs") != oip:
                errs.invalid("spec.clusterIPs[0]", spec.get("clusterIPs"), "may not change once set")
    elif p in ("secrets", "configmaps"):
        total = 0
        for fld in ("data", "binaryData"):
            d = obj.get(fld)
            if d is None:
                continue
            if not isinstance(d, dict):
                errs.invalid(fld, d, "must be a map")
                continue
            for k, v in d.items():
                if not CONFIG_KEY.match(k) or len(k) > 253:
                    errs.invalid("%s[%s]" % (fld, k), k, "a valid config key must consist of alphanumeric characters, "
                                 "'-', '_' or '.' (e.g. 'key.name',  or 'KEY_NAME',  or 'key-name', regex used for "
                                 "validation is '[-._a-zA-Z0-9]+')")
                total += len(v) if isinstance(v, str) else 0
        if total > (1024 * 1024 * 4 // 3 + 4 if p == "secrets" else 1024 * 1024):
            errs.invalid("data", "", "Too long: must have at most 1048576 bytes")
        if p == "secrets" and old is not None and old.get("type") != obj.get("type"):
            errs.invalid("type", obj.get("type"), "field is immutable")
        if old is not None and old.get("immutable") and any(old.get(k) != obj.get(k) for k in ("data", "binaryData")):
            errs.forbidden("data", "field is immutable when `immutable` is set")
    elif p == "persistentvolumeclaims":
        if not isinstance(spec, dict):
            errs.required("spec")
            return
        modes = spec.get("accessModes") or []
        if not modes:
            errs.required("spec.accessModes", "at least 1 access mode is required")
        for mo in modes:
            if mo not in ("ReadWriteOnce", "ReadOnlyMany", "ReadWriteMany", "ReadWriteOncePod"):
                errs.not_supported("spec.accessModes", mo, ["ReadOnlyMany", "ReadWriteMany", "ReadWriteOnce",
                                                            "ReadWriteOncePod"])
        req = ((spec.get("resources") or {}).get("requests") or {})
        if "storage" not in req:
            errs.required("spec.resources[storage]")
        else:
            check_quantities(errs, "spec.resources.requests", req)
            if q_value(req["storage"]) <= 0:
                errs.invalid("spec.resources[storage]", req["storage"], "must be greater than zero")
        if old is not None:
            a, b = dict(old.get("spec") or {}), dict(spec)
            a.pop("resources", None)
            b.pop("resources", None)
            a.pop("volumeName", None)
            b.pop("volumeName", None)
            if a != b:
                errs.forbidden("spec", "spec is immutable after creation except resources.requests and "
                               "volumeAttributesClassName for bound claims")
            cap = ((old.get("status") or {}).get("capacity") or {}).get("storage")
            if cap and "storage" in req and q_value(req["storage"]) < q_value(cap):
                errs.forbidden("spec.resources.requests.storage", "field can not be less than status.capacity")
    elif p == "ingresses":
        if not isinstance(spec, dict):
            errs.required("spec")
            return
        if not spec.get("rules") and not spec.get("defaultBackend"):
            errs.invalid("spec", spec, "either `defaultBackend` or `rules` must be specified")
        for i, rule in enumerate(spec.get("rules") or []):
            host = (rule or {}).get("host")
            if host:
                check_dns(errs, "spec.rules[%d].host" % i, host[2:] if host.startswith("*.") else host)
            for j, path in enumerate(((rule or {}).get("http") or {}).get("paths") or []):
                f = "spec.rules[%d].http.paths[%d]" % (i, j)
                pt = (path or {}).get("pathType")
                if pt is None:
                    errs.required(f + ".pathType", "pathType must be specified")
                elif pt not in ("Exact", "Prefix", "ImplementationSpecific"):
                    errs.not_supported(f + ".pathType", pt, ["Exact", "ImplementationSpecific", "Prefix"])
                pth = (path or {}).get("path", "")
                if pt in ("Exact", "Prefix") and not str(pth).startswith("/"):
                    errs.invalid(f + ".path", pth, "must be an absolute path")
                be = (path or {}).get("backend") or {}
                svc = be.get("service")
                if svc:
                    if not svc.get("name"):
                        errs.required(f + ".backend.service.name")
                    port = svc.get("port") or {}
                    if "name" in port and "number" in port:
                        errs.invalid(f + ".backend.service.port", port, "cannot set both port name & port number")
                    elif "name" not in port and "number" not in port:
                        errs.required(f + ".backend.service.port", "port name or number is required")
                elif not be.get("resource"):
                    errs.invalid(f + ".backend", be, "resource or service backend is required")
        for i, t in enumerate(spec.get("tls") or []):
            for j, h in enumerate((t or {}).get("hosts") or []):
                check_dns(errs, "spec.tls[%d].hosts[%d]" % (i, j), h[2:] if h.startswith("*.") else h)
    elif p == "networkpolicies":
        if not isinstance(spec, dict):
            errs.required("spec")
            return
        validate_selector(errs, "spec.podSelector", spec.get("podSelector"))
        for t in spec.get("policyTypes") or []:
            if t not in ("Ingress", "Egress"):
                errs.not_supported("spec.policyTypes", t, ["Egress", "Ingress"])
        for kind, peers in (("ingress", "from"), ("egress", "to")):
            for i, rule in enumerate(spec.get(kind) or []):
                for j, peer in enumerate((rule or {}).get(peers) or []):
                    ib = (peer or {}).get("ipBlock")
                    if ib is not None and not re.match(r"^[0-9a-fA-F.:]+/[0-9]+$", str(ib.get("cidr", ""))):
                        errs.invalid("spec.%s[%d].%s[%d].ipBlock.cidr" % (kind, i, peers, j), ib.get("cidr"),
                                     "must be a valid CIDR value, (e.g. 10.9.8.0/24 or 2001:db8::/64)")
    elif p == "resourcequotas":
        hard = (spec or {}).get("hard") or {}
        check_quantities(errs, "spec.hard", hard)
        for k in hard:
            if not re.match(r"^([a-z0-9.-]+/)?[a-z0-9.-]+(/[a-z0-9.-]+)?$", k):
                errs.invalid("spec.hard[%s]" % k, k, "must be a standard resource for quota")
    elif p == "limitranges":
        for i, item in enumerate((spec or {}).get("limits") or []):
            t = (item or {}).get("type")
            if t not in ("Pod", "Container", "PersistentVolumeClaim"):
                errs.not_supported("spec.limits[%d].type" % i, t, ["Container", "PersistentVolumeClaim", "Pod"])
            for k in ("default", "defaultRequest", "max", "min"):
                check_quantities(errs, "spec.limits[%d].%s" % (i, k), (item or {}).get(k))
            for r, v in ((item or {}).get("default") or {}).items():
                mx = ((item or {}).get("max") or {}).get(r)
                if mx is not None and q_value(v) > q_value(mx):
                    errs.invalid("spec.limits[%d].default[%s]" % (i, r), v,
                                 "default value %s is greater than max value %s" % (v, mx))
    elif p == "poddisruptionbudgets":
        if not isinstance(spec, dict):
            errs.required("spec")
            return
        if spec.get("minAvailable") is not None and spec.get("maxUnavailable") is not None:
            errs.invalid("spec", spec, "minAvailable and maxUnavailable cannot be both set")
        validate_int_or_percent(errs, "spec.minAvailable", spec.get("minAvailable"))
        validate_int_or_percent(errs, "spec.maxUnavailable", spec.get("maxUnavailable"))
        validate_selector(errs, "spec.selector", spec.get("selector"))
        pol = spec.get("unhealthyPodEvictionPolicy")
        if pol is not None and pol not in ("IfHealthyBudget", "AlwaysAllow"):
            errs.not_supported("spec.unhealthyPodEvictionPolicy", pol, ["AlwaysAllow", "IfHealthyBudget"])
    elif p == "nodes":
        for i, t in enumerate((spec or {}).get("taints") or []):
            if (t or {}).get("effect") not in ("NoSchedule", "PreferNoSchedule", "NoExecute"):
                errs.not_supported("spec.taints[%d].effect" % i, (t or {}).get("effect"),
                                   ["NoExecute", "NoSchedule", "PreferNoSchedule"])
            if not (t or {}).get("key"):
                errs.required("spec.taints[%d].key" % i)
    elif p == "events":
        if not obj.get("involvedObject"):
            errs.required("involvedObject")


# --------------------------------------------------------------------------
# the controllers: deployment, replicaset, scheduler, "kubelet", node lifecycle,
# PVC binder, quota and PDB status, garbage of events. One thread, the store's lock.
# --------------------------------------------------------------------------

TAINT_UNSCHEDULABLE = "node.kubernetes.io/unschedulable"
TAINT_NOT_READY = "node.kubernetes.io/not-ready"
TAINT_UNREACHABLE = "node.kubernetes.io/unreachable"
CONTROLLER_TAINTS = (TAINT_UNSCHEDULABLE, TAINT_NOT_READY, TAINT_UNREACHABLE)


def node_ready(node):
    for c in (node.get("status") or {}).get("conditions") or []:
        if c.get("type") == "Ready":
            return c.get("status", "Unknown")
    return "Unknown"


def node_ip(node):
    for a in (node.get("status") or {}).get("addresses") or []:
        if a.get("type") == "InternalIP":
            return a.get("address")
    return None


def tolerates(pod, taint):
    for t in (pod.get("spec") or {}).get("tolerations") or []:
        if t.get("effect") and t.get("effect") != taint.get("effect"):
            continue
        op = t.get("operator", "Equal")
        if op == "Exists" and (not t.get("key") or t.get("key") == taint.get("key")):
            return True
        if op == "Equal" and t.get("key") == taint.get("key") and t.get("value", "") == taint.get("value", ""):
            return True
    return False


def evolve(old, **top):
    new = dict(old)
    new["metadata"] = dict(old["metadata"])
    new.update(top)
    return new


def set_condition(conds, cond, now):
    """SetCondition the way the controllers do: unchanged status keeps lastTransitionTime."""
    out = []
    found = False
    for c in conds or []:
        if c.get("type") == cond["type"]:
            found = True
            if c.get("status") == cond["status"] and c.get("reason") == cond.get("reason") \
                    and c.get("message") == cond.get("message"):
                out.append(c)
                continue
            cond = dict(cond)
            if c.get("status") == cond["status"]:
                cond["lastTransitionTime"] = c.get("lastTransitionTime", now)
            out.append(cond)
        else:
            out.append(c)
    if not found:
        out.append(cond)
    return out


class Controller(threading.Thread):
    def __init__(self, api, opts):
        super().__init__(daemon=True, name="controller")
        self.api, self.s, self.o = api, api.s, opts
        api.controller = self
        self.cond = threading.Condition(self.s.lock)
        self.dirty = set()
        self.timers = []
        self.seq = 0
        self.rr = 0
        self.unscheduled = set()
        self.node_used = collections.defaultdict(collections.Counter)
        self.pod_ips = collections.defaultdict(int)
        self.event_keys = collections.deque()
        self.hashes = {}
        self.s.listeners.append(self.on_event)

    # bookkeeping -------------------------------------------------------------

    def later(self, delay, item):
        self.seq += 1
        heapq.heappush(self.timers, (time.time() + delay, self.seq, item))
        self.cond.notify()

    def mark(self, *item):
        self.dirty.add(item)

    def on_event(self, res, etype, obj, old):
        p = res.plural
        if p == "events":
            return
        m = obj["metadata"]
        ns, name = m.get("namespace", ""), m["name"]
        if p == "pods":
            self.track_pod(obj if etype != "DELETED" else None, old)
            ref = controller_ref(obj)
            if ref and ref.get("kind") == "ReplicaSet":
                self.mark("rs", ns, ref.get("name"))
            self.mark("ns", ns)
        elif p == "deployments":
            self.mark("deploy", ns, name)
        elif p == "replicasets":
            self.mark("rs", ns, name)
            ref = controller_ref(obj)
            if ref and ref.get("kind") == "Deployment":
                self.mark("deploy", ns, ref.get("name"))
            self.mark("ns", ns)
        elif p == "nodes":
            self.mark("node", name)
            self.mark("sched")
        elif p == "persistentvolumeclaims":
            if etype != "DELETED":
                self.mark("pvc", ns, name)
            self.mark("ns", ns)
        elif p == "namespaces":
            pass
        elif res.namespaced:
            self.mark("ns", ns)
        self.cond.notify()

    def track_pod(self, new, old):
        for pod, sign in ((old, -1), (new, 1)):
            if pod is None:
                continue
            node = (pod.get("spec") or {}).get("nodeName")
            key = (pod["metadata"].get("namespace", ""), pod["metadata"]["name"])
            if node:
                if not is_terminal(pod):
                    req, _ = pod_requests(pod)
                    u = self.node_used[node]
                    u["pods"] += sign
                    for k in ("cpu", "memory"):
                        u[k] += sign * req.get(k, 0)
            elif sign > 0 and not pod["metadata"].get("deletionTimestamp") and not is_terminal(pod):
                self.unscheduled.add(key)
                self.mark("sched")
            if sign > 0 and node:
                if old is None and not (pod.get("status") or {}).get("startTime") and not is_terminal(pod):
                    # created bound: the kubelet's admission (do_sched) starts it
                    self.unscheduled.add(key)
                    self.mark("sched")
                else:
                    self.unscheduled.discard(key)
        if new is None and old is not None:
            self.unscheduled.discard((old["metadata"].get("namespace", ""), old["metadata"]["name"]))

    def run(self):
        with self.s.lock:
            while True:
                now = time.time()
                while self.timers and self.timers[0][0] <= now:
                    _, _, item = heapq.heappop(self.timers)
                    self.dirty.add(item)
                if not self.dirty:
                    self.cond.wait(self.timers[0][0] - now if self.timers else None)
                    continue
                self.process()

    ORDER = {"deploy": 0, "rs": 1, "sched": 2, "start": 3, "backoff": 3, "node": 4, "pvc": 5, "ns": 6,
             "purge-namespace": 7, "heartbeat": 8}

    def process(self):
        batch, self.dirty = self.dirty, set()
        for item in sorted(batch, key=lambda it: (self.ORDER.get(it[0], 9), it)):
            try:
                getattr(self, "do_" + item[0].replace("-", "_"))(*item[1:])
            except ApiError as e:
                sys.stderr.write("kubeapi controller: %s %s: %s\n" % (item[0], item[1:], e.message))
            except Exception:  # keep the controller alive, say what broke
                import traceback
                traceback.print_exc()
            # let API threads in between items: requests come before the controller's backlog
            self.s.lock.release()
            time.sleep(0)
            self.s.lock.acquire()

    def put(self, res, old, new, manager, sub=None, changed=None):
        if same_object(old, new):
            return old
        okey = (res.plural, old["metadata"].get("namespace", ""), old["metadata"]["name"])
        if new["metadata"] is old["metadata"]:
            new["metadata"] = dict(old["metadata"])
        if res.generation and sub is None and new.get("spec") != old.get("spec"):
            new["metadata"]["generation"] = old["metadata"].get("generation", 1) + 1
        entries = update_entries(self.s.owners.get(okey, {}), res, manager, sub, old, new, changed)
        new["metadata"]["managedFields"] = render_entries(entries)
        self.s.owners[okey] = entries
        return self.s.commit(res, "MODIFIED", new, old)

    def event(self, obj, etype, reason, message, component):
        if not self.o.events:
            return
        m = obj["metadata"]
        ns = m.get("namespace") or "default"
        ev = {"apiVersion": "v1", "kind": "Event",
              "metadata": {"name": "%s.%016x" % (m["name"], self.s.rng.getrandbits(64)), "namespace": ns,
                           "uid": self.s.uid(), "creationTimestamp": now_ts()},
              "involvedObject": {"kind": obj["kind"], "name": m["name"], "uid": m.get("uid", ""),
                                 "apiVersion": obj["apiVersion"], "resourceVersion": m.get("resourceVersion", "")},
              "reason": reason, "message": message, "source": {"component": component},
              "firstTimestamp": now_ts(), "lastTimestamp": now_ts(), "count": 1, "type": etype,
              "reportingComponent": component, "reportingInstance": ""}
        if m.get("namespace"):
            ev["involvedObject"]["namespace"] = m["namespace"]
        self.s.commit(R["events"], "ADDED", ev, None)
        self.event_keys.append((ns, ev["metadata"]["name"]))
        while len(self.event_keys) > self.o.max_events:
            ens, ename = self.event_keys.popleft()
            old = self.s.get(R["events"], ens, ename)
            if old is not None:
                self.s.commit(R["events"], "DELETED", evolve(old), old)

    def owned(self, res, ns, owner):
        uid = owner["metadata"]["uid"]
        out = []
        for plural, n, name in self.s.dependents.get(uid, ()):
            if plural == res.plural and n == ns:
                o = self.s.get(res, ns, name)
                if o is not None and (controller_ref(o) or {}).get("uid") == uid:
                    out.append(o)
        return sorted(out, key=lambda o: (o["metadata"]["creationTimestamp"], o["metadata"]["name"]))

    def available(self, pod, min_ready):
        if not pod_ready(pod) or pod["metadata"].get("deletionTimestamp"):
            return False
        if not min_ready:
            return True
        for c in pod["status"].get("conditions") or []:
            if c.get("type") == "Ready":
                t = parse_ts(c.get("lastTransitionTime"))
                return t is not None and time.time() - t >= min_ready
        return False

    # Deployment ----------------------------------------------------------------

    def do_deploy(self, ns, name):
        d = self.s.get(R["deployments"], ns, name)
        if d is None or d["metadata"].get("deletionTimestamp"):
            return
        spec = d["spec"]
        replicas = spec.get("replicas", 1)
        paused = spec.get("paused", False)
        rss = self.owned(R["replicasets"], ns, d)
        hkey = (d["metadata"]["uid"], d["metadata"].get("generation"))
        h = self.hashes.get(hkey)
        if h is None:
            h = self.hashes[hkey] = template_hash(spec["template"])
            if len(self.hashes) > 100000:
                self.hashes.clear()
        new_rs = next((r for r in rss if (r["metadata"].get("labels") or {}).get("pod-template-hash") == h), None)
        olds = [r for r in rss if r is not new_rs]

        def rev(r):
            try:
                return int((r["metadata"].get("annotations") or {}).get("deployment.kubernetes.io/revision", "0"))
            except ValueError:
                return 0
        max_rev = max([rev(r) for r in rss] or [0])
        st = spec.get("strategy") or {}
        rolling = st.get("type", "RollingUpdate") == "RollingUpdate"
        ru = st.get("rollingUpdate") or {}
        if rolling and replicas:
            surge = int_or_percent(ru.get("maxSurge", "25%"), replicas, True)
            unav = int_or_percent(ru.get("maxUnavailable", "25%"), replicas, False)
            if surge == 0 and unav == 0:
                unav = 1
        else:
            surge, unav = 0, 0
        created = found = None
        conds = list((d.get("status") or {}).get("conditions") or [])
        now = now_ts()
        old_pods = sum(len(self.owned(R["pods"], ns, r)) for r in olds)
        if new_rs is None and not paused:
            if not rolling:
                start = 0 if old_pods or any(r["spec"].get("replicas") for r in olds) else replicas
            elif not olds:
                start = replicas
            else:
                total = sum(r["spec"].get("replicas", 0) for r in olds)
                start = max(0, min(replicas + surge - total, replicas))
            new_rs = self.create_rs(d, h, max_rev + 1, start)
            created = new_rs
            if start:
                self.event(d, "Normal", "ScalingReplicaSet", "Scaled up replica set %s from 0 to %d"
                           % (new_rs["metadata"]["name"], start), "deployment-controller")
            rss = rss + [new_rs]
        elif new_rs is not None and rev(new_rs) < max_rev:
            ann = dict(new_rs["metadata"].get("annotations") or {})
            ann["deployment.kubernetes.io/revision"] = str(max_rev + 1)
            nr = evolve(new_rs)
            nr["metadata"]["annotations"] = ann
            new_rs = self.put(R["replicasets"], new_rs, nr, "kube-controller-manager")
            found = new_rs
        if new_rs is not None and not paused:
            if not rolling:
                for r in olds:
                    if r["spec"].get("replicas"):
                        self.scale_rs(d, r, 0)
                if not old_pods and new_rs["spec"].get("replicas") != replicas:
                    new_rs = self.scale_rs(d, new_rs, replicas)
            else:
                total = sum(r["spec"].get("replicas", 0) for r in olds) + new_rs["spec"].get("replicas", 0)
                cur = new_rs["spec"].get("replicas", 0)
                if cur > replicas:
                    new_rs = self.scale_rs(d, new_rs, replicas)
                elif cur < replicas:
                    up = min(replicas + surge - total, replicas - cur)
                    if up > 0:
                        new_rs = self.scale_rs(d, new_rs, cur + up)
                olds = [self.s.get(R["replicasets"], ns, r["metadata"]["name"]) or r for r in olds]
                if sum(r["spec"].get("replicas", 0) for r in olds):
                    min_ready = spec.get("minReadySeconds", 0)
                    total = sum(r["spec"].get("replicas", 0) for r in olds) + new_rs["spec"].get("replicas", 0)
                    new_avail = sum(1 for p in self.owned(R["pods"], ns, new_rs) if self.available(p, min_ready))
                    new_unav = new_rs["spec"].get("replicas", 0) - new_avail
                    budget = total - (replicas - unav) - new_unav
                    for healthy_pass in (False, True):
                        for r in olds:
                            if budget <= 0:
                                break
                            r = self.s.get(R["replicasets"], ns, r["metadata"]["name"]) or r
                            want = r["spec"].get("replicas", 0)
                            if not want:
                                continue
                            avail = sum(1 for p in self.owned(R["pods"], ns, r) if self.available(p, min_ready))
                            cut = min(want if healthy_pass else max(want - avail, 0), budget)
                            if cut > 0:
                                self.scale_rs(d, r, want - cut)
                                budget -= cut
        # old replica sets beyond revisionHistoryLimit
        olds = [self.s.get(R["replicasets"], ns, r["metadata"]["name"]) for r in rss if r is not new_rs]
        dead = [r for r in olds if r is not None and not r["spec"].get("replicas")
                and not self.owned(R["pods"], ns, r)]
        limit = spec.get("revisionHistoryLimit", 10)
        dead.sort(key=rev)
        for r in dead[:max(0, len(dead) - limit)]:
            self.api.remove(R["replicasets"], r, "Background")
        # status
        d = self.s.get(R["deployments"], ns, name)
        rss = self.owned(R["replicasets"], ns, d)
        min_ready = spec.get("minReadySeconds", 0)
        total = updated = ready = avail = 0
        soonest = None
        for r in rss:
            pods = [p for p in self.owned(R["pods"], ns, r) if not p["metadata"].get("deletionTimestamp")]
            total += len(pods)
            rdy = [p for p in pods if pod_ready(p)]
            av = [p for p in rdy if self.available(p, min_ready)]
            ready += len(rdy)
            avail += len(av)
            if new_rs is not None and r["metadata"]["uid"] == new_rs["metadata"]["uid"]:
                updated = len(pods)
            if min_ready and len(av) < len(rdy):
                soonest = min(soonest or 1e18, min_ready)
        if soonest:
            self.later(0.2, ("deploy", ns, name))
        old_status = d.get("status") or {}
        status = {"observedGeneration": d["metadata"].get("generation", 1)}
        for k, v in (("replicas", total), ("updatedReplicas", updated), ("readyReplicas", ready),
                     ("availableReplicas", avail), ("unavailableReplicas", max(replicas - avail, 0))):
            if v:
                status[k] = v
        rs_name = new_rs["metadata"]["name"] if new_rs is not None else None
        conds = set_condition(conds, {
            "type": "Available", "status": "True" if avail >= replicas - unav else "False",
            "lastUpdateTime": now, "lastTransitionTime": now,
            "reason": "MinimumReplicasAvailable" if avail >= replicas - unav else "MinimumReplicasUnavailable",
            "message": "Deployment has minimum availability." if avail >= replicas - unav
            else "Deployment does not have minimum availability."}, now)
        prog = next((c for c in conds if c["type"] == "Progressing"), None)
        deadline = spec.get("progressDeadlineSeconds")

        def set_prog(status_, reason, msg, keep_transition=False):
            c = {"type": "Progressing", "status": status_, "lastUpdateTime": now, "lastTransitionTime": now,
                 "reason": reason, "message": msg}
            if prog is not None and prog.get("status") == status_:
                c["lastTransitionTime"] = prog.get("lastTransitionTime", now)
            if prog is not None and prog.get("status") == status_ and prog.get("reason") == reason \
                    and not keep_transition:
                return conds
            return [c if x["type"] == "Progressing" else x for x in conds] if prog else conds + [c]
        if paused:
            conds = set_prog("Unknown", "DeploymentPaused", "Deployment is paused")
        elif created is not None:
            conds = set_prog("True", "NewReplicaSetCreated", 'Created new replica set "%s"' % rs_name)
        elif found is not None:
            conds = set_prog("True", "FoundNewReplicaSet", 'Found new replica set "%s"' % rs_name)
        elif prog is not None and prog.get("reason") == "DeploymentPaused":
            conds = set_prog("Unknown", "DeploymentResumed", "Deployment is resumed")
        prog = next((c for c in conds if c["type"] == "Progressing"), None)
        complete_now = prog is not None and prog.get("reason") == "NewReplicaSetAvailable" and total == updated
        if deadline is not None and not paused and not complete_now:
            if updated == replicas and total == replicas and avail == replicas:
                conds = set_prog("True", "NewReplicaSetAvailable", 'ReplicaSet "%s" has successfully progressed.' % rs_name)
            elif (updated > old_status.get("updatedReplicas", 0) or ready > old_status.get("readyReplicas", 0)
                  or avail > old_status.get("availableReplicas", 0)
                  or total - updated < old_status.get("replicas", 0) - old_status.get("updatedReplicas", 0)):
                conds = set_prog("True", "ReplicaSetUpdated", 'ReplicaSet "%s" is progressing.' % rs_name,
                                 keep_transition=True)
            elif prog is not None and prog.get("reason") not in ("ProgressDeadlineExceeded", "NewReplicaSetAvailable"):
                since = parse_ts(prog.get("lastUpdateTime")) or time.time()
                if since + deadline < time.time():
                    conds = set_prog("False", "ProgressDeadlineExceeded", 'ReplicaSet "%s" has timed out progressing.'
                                     % rs_name)
                else:
                    self.later(since + deadline - time.time() + 0.05, ("deploy", ns, name))
        failure = None
        if new_rs is not None:
            failure = next((c for c in (new_rs.get("status") or {}).get("conditions") or []
                            if c.get("type") == "ReplicaFailure" and c.get("status") == "True"), None)
        if failure:
            conds = set_condition(conds, {"type": "ReplicaFailure", "status": "True", "lastUpdateTime": now,
                                          "lastTransitionTime": now, "reason": "FailedCreate",
                                          "message": failure.get("message", "")}, now)
        else:
            conds = [c for c in conds if c["type"] != "ReplicaFailure"]
        status["conditions"] = conds
        if d.get("status") != status:
            self.put(R["deployments"], d, evolve(d, status=status), "kube-controller-manager", "status")
        if new_rs is not None:
            ann = d["metadata"].get("annotations") or {}
            want = (new_rs["metadata"].get("annotations") or {}).get("deployment.kubernetes.io/revision")
            if ann.get("deployment.kubernetes.io/revision") != want:
                d = self.s.get(R["deployments"], ns, name)
                nd = evolve(d)
                nd["metadata"]["annotations"] = dict(ann, **{"deployment.kubernetes.io/revision": want})
                self.put(R["deployments"], d, nd, "kube-controller-manager")

    def create_rs(self, d, h, revision, replicas):
        ns = d["metadata"]["namespace"]
        tmpl = clone(d["spec"]["template"])
        tm = tmpl.setdefault("metadata", {})
        tm["labels"] = dict(tm.get("labels") or {}, **{"pod-template-hash": h})
        sel = clone(d["spec"]["selector"])
        sel["matchLabels"] = dict(sel.get("matchLabels") or {}, **{"pod-template-hash": h})
        labels = dict(tm["labels"])
        rs = {"apiVersion": "apps/v1", "kind": "ReplicaSet",
              "metadata": {"name": "%s-%s" % (d["metadata"]["name"], h), "namespace": ns, "labels": labels,
                           "annotations": {"deployment.kubernetes.io/desired-replicas": str(d["spec"].get("replicas", 1)),
                                           "deployment.kubernetes.io/max-replicas": str(d["spec"].get("replicas", 1)),
                                           "deployment.kubernetes.io/revision": str(revision)},
                           "ownerReferences": [owner_ref(d)]},
              "spec": {"replicas": replicas, "minReadySeconds": d["spec"].get("minReadySeconds", 0),
                       "selector": sel, "template": tmpl}}
        if not rs["spec"]["minReadySeconds"]:
            del rs["spec"]["minReadySeconds"]
        existing = self.s.get(R["replicasets"], ns, rs["metadata"]["name"])
        if existing is not None:  # name collision with an unrelated replica set
            rs["metadata"]["name"] += "-" + "".join(self.s.rng.choice(SAFE_ALPHABET) for _ in range(3))
        return self.api.create(R["replicasets"], ns, rs, "kube-controller-manager")

    def scale_rs(self, d, rs, n):
        old_n = rs["spec"].get("replicas", 0)
        if old_n == n:
            return rs
        new = evolve(rs, spec=dict(rs["spec"], replicas=n))
        ann = dict(rs["metadata"].get("annotations") or {})
        ann["deployment.kubernetes.io/desired-replicas"] = str(d["spec"].get("replicas", 1))
        ann["deployment.kubernetes.io/max-replicas"] = str(d["spec"].get("replicas", 1) + (
            int_or_percent(((d["spec"].get("strategy") or {}).get("rollingUpdate") or {}).get("maxSurge", "25%"),
                           d["spec"].get("replicas", 1), True)
            if (d["spec"].get("strategy") or {}).get("type", "RollingUpdate") == "RollingUpdate" else 0))
        new["metadata"]["annotations"] = ann
        self.event(d, "Normal", "ScalingReplicaSet", "Scaled %s replica set %s from %d to %d" % (
            "up" if n > old_n else "down", rs["metadata"]["name"], old_n, n), "deployment-controller")
        return self.put(R["replicasets"], rs, new, "kube-controller-manager")

    # ReplicaSet ----------------------------------------------------------------

    def do_rs(self, ns, name):
        rs = self.s.get(R["replicasets"], ns, name)
        if rs is None or rs["metadata"].get("deletionTimestamp"):
            return
        pods = [p for p in self.owned(R["pods"], ns, rs) if not p["metadata"].get("deletionTimestamp")]
        want = rs["spec"].get("replicas", 1)
        failure = None
        if len(pods) < want:
            tmpl = rs["spec"]["template"]
            for _ in range(want - len(pods)):
                tm = tmpl.get("metadata") or {}
                pod = {"apiVersion": "v1", "kind": "Pod",
                       "metadata": {"generateName": name + "-", "namespace": ns,
                                    "labels": clone(tm.get("labels") or {}),
                                    "ownerReferences": [owner_ref(rs)]},
                       "spec": clone(tmpl.get("spec") or {})}
                if tm.get("annotations"):
                    pod["metadata"]["annotations"] = clone(tm["annotations"])
                try:
                    p = self.api.create(R["pods"], ns, pod, "kube-controller-manager")
                except ApiError as e:
                    failure = e.message
                    self.event(rs, "Warning", "FailedCreate", "Error creating: " + e.message, "replicaset-controller")
                    self.later(1.0, ("rs", ns, name))
                    break
                pods.append(p)
                self.event(rs, "Normal", "SuccessfulCreate", "Created pod: " + p["metadata"]["name"],
                           "replicaset-controller")
        elif len(pods) > want:
            def rank(p):
                st = p.get("status") or {}
                return (bool((p.get("spec") or {}).get("nodeName")),
                        {"Pending": 0, "Unknown": 1, "Running": 2}.get(st.get("phase"), 0), pod_ready(p),
                        [-ord(c) for c in p["metadata"]["creationTimestamp"]])
            for p in sorted(pods, key=rank)[:len(pods) - want]:
                self.api.remove(R["pods"], p, "Background")
                self.event(rs, "Normal", "SuccessfulDelete", "Deleted pod: " + p["metadata"]["name"],
                           "replicaset-controller")
            pods = [p for p in self.owned(R["pods"], ns, rs) if not p["metadata"].get("deletionTimestamp")]
        rs = self.s.get(R["replicasets"], ns, name)
        min_ready = rs["spec"].get("minReadySeconds", 0)
        status = {"replicas": len(pods)}
        for k, v in (("fullyLabeledReplicas", len(pods)), ("readyReplicas", sum(1 for p in pods if pod_ready(p))),
                     ("availableReplicas", sum(1 for p in pods if self.available(p, min_ready)))):
            if v:
                status[k] = v
        status["observedGeneration"] = rs["metadata"].get("generation", 1)
        conds = [c for c in (rs.get("status") or {}).get("conditions") or [] if c.get("type") != "ReplicaFailure"]
        if failure:
            conds.append({"type": "ReplicaFailure", "status": "True", "lastTransitionTime": now_ts(),
                          "reason": "FailedCreate", "message": failure})
        if conds:
            status["conditions"] = conds
        if rs.get("status") != status:
            self.put(R["replicasets"], rs, evolve(rs, status=status), "kube-controller-manager", "status")

    # scheduler -------------------------------------------------------------------

    def do_sched(self):
        if not self.unscheduled:
            return
        nodes = sorted(self.s.items(R["nodes"]), key=lambda n: n["metadata"]["name"])
        pending = [self.s.get(R["pods"], ns, n) for ns, n in self.unscheduled]
        pending = sorted((p for p in pending if p is not None), key=lambda p: (p["metadata"]["creationTimestamp"],
                                                                              p["metadata"]["name"]))
        for pod in pending:
            spec = pod["spec"]
            if spec.get("nodeName") or spec.get("schedulerName", "default-scheduler") != "default-scheduler":
                self.unscheduled.discard((pod["metadata"]["namespace"], pod["metadata"]["name"]))
                # created bound (spec.nodeName): the node's kubelet admits it, no scheduler involved
                node = self.s.get(R["nodes"], "", spec.get("nodeName") or "")
                if node is not None and not (pod.get("status") or {}).get("startTime"):
                    self.bind(pod, node, scheduled=False)
                continue
            req, _ = pod_requests(pod)
            reasons = collections.Counter()
            chosen = None
            for i in range(len(nodes)):
                node = nodes[(self.rr + i) % len(nodes)]
                why = self.unfit(pod, node, req)
                if why:
                    reasons.update(why)
                else:
                    chosen = node
                    self.rr = (self.rr + i + 1) % len(nodes)
                    break
            if chosen is not None:
                self.bind(pod, chosen)
            else:
                msg = "0/%d nodes are available: %s. preemption: 0/%d nodes are available: %d Preemption is not " \
                      "helpful for scheduling." % (len(nodes), ", ".join("%d %s" % (n, r) for r, n in sorted(reasons.items())),
                                                   len(nodes), len(nodes))
                if not nodes:
                    msg = "no nodes available to schedule pods"
                cond = {"type": "PodScheduled", "status": "False", "lastProbeTime": None,
                        "lastTransitionTime": now_ts(), "reason": "Unschedulable", "message": msg}
                conds = set_condition(pod["status"].get("conditions"), cond, now_ts())
                if conds != pod["status"].get("conditions"):
                    self.put(R["pods"], pod, evolve(pod, status=dict(pod["status"], conditions=conds)),
                             "kube-scheduler", "status")
                    self.event(pod, "Warning", "FailedScheduling", msg, "default-scheduler")

    def unfit(self, pod, node, req):
        why = []
        nspec, nst = node.get("spec") or {}, node.get("status") or {}
        if nspec.get("unschedulable") and not tolerates(pod, {"key": TAINT_UNSCHEDULABLE, "effect": "NoSchedule"}):
            return ["node(s) were unschedulable"]
        for t in nspec.get("taints") or []:
            if t.get("effect") in ("NoSchedule", "NoExecute") and not tolerates(pod, t):
                return ["node(s) had untolerated taint {%s: %s}" % (t.get("key"), t.get("value", ""))]
        if node_ready(node) != "True":
            return ["node(s) had untolerated taint {%s: }" % (TAINT_NOT_READY if node_ready(node) == "False"
                                                              else TAINT_UNREACHABLE)]
        labels = node["metadata"].get("labels") or {}
        for k, v in ((pod.get("spec") or {}).get("nodeSelector") or {}).items():
            if labels.get(k) != v:
                return ["node(s) didn't match Pod's node affinity/selector"]
        alloc = nst.get("allocatable") or nst.get("capacity") or {}
        used = self.node_used[node["metadata"]["name"]]
        if "pods" in alloc and used["pods"] + 1 > q_value(alloc["pods"]):
            why.append("Too many pods")
        for r in ("cpu", "memory"):
            if req.get(r) and r in alloc and used[r] + req[r] > q_value(alloc[r]):
                why.append("Insufficient " + r)
        return why

    def bind(self, pod, node, scheduled=True):
        ip = node_ip(node)
        nname = node["metadata"]["name"]
        now = now_ts()
        new = evolve(pod, spec=dict(pod["spec"], nodeName=nname))
        st = dict(pod["status"])
        st["conditions"] = [
            {"type": "PodReadyToStartContainers", "status": "False", "lastProbeTime": None, "lastTransitionTime": now},
            {"type": "Initialized", "status": "True", "lastProbeTime": None, "lastTransitionTime": now},
            {"type": "Ready", "status": "False", "lastProbeTime": None, "lastTransitionTime": now,
             "reason": "ContainersNotReady", "message": self.unready_msg(pod)},
            {"type": "ContainersReady", "status": "False", "lastProbeTime": None, "lastTransitionTime": now,
             "reason": "ContainersNotReady", "message": self.unready_msg(pod)},
            {"type": "PodScheduled", "status": "True", "lastProbeTime": None, "lastTransitionTime": now}]
        if ip:
            st["hostIP"] = ip
            st["hostIPs"] = [{"ip": ip}]
        st["startTime"] = now
        st["containerStatuses"] = [self.cstatus(c, waiting=("ContainerCreating", None)) for c in pod["spec"]["containers"]]
        new["status"] = st
        pod = self.put(R["pods"], pod, new, "kube-scheduler" if scheduled else "kubelet")
        if scheduled:
            self.event(pod, "Normal", "Scheduled", "Successfully assigned %s/%s to %s" % (
                pod["metadata"]["namespace"], pod["metadata"]["name"], nname), "default-scheduler")
        key = (pod["metadata"]["namespace"], pod["metadata"]["name"], pod["metadata"]["uid"])
        if self.o.ready_delay > 0:
            self.later(self.o.ready_delay, ("start",) + key)
        else:
            self.do_start(*key)

    @staticmethod
    def unready_msg(pod, names=None):
        names = names if names is not None else [c.get("name") for c in pod["spec"].get("containers") or []]
        return "containers with unready status: [%s]" % " ".join(names)

    def cstatus(self, c, waiting=None, running=None, last=None, restarts=0):
        image = c.get("image", "")
        s = {"name": c.get("name"), "image": image, "imageID": "", "ready": False, "restartCount": restarts,
             "started": False, "state": {}}
        if waiting:
            s["state"]["waiting"] = {"reason": waiting[0]}
            if waiting[1]:
                s["state"]["waiting"]["message"] = waiting[1]
        if running:
            s["state"]["running"] = {"startedAt": running}
            s["ready"] = s["started"] = True
            s["containerID"] = "containerd://" + hashlib.sha256((c.get("name", "") + image + running).encode()).hexdigest()
            s["imageID"] = "%s@sha256:%s" % (image.split(":")[0] if "@" not in image else image.split("@")[0],
                                             hashlib.sha256(image.encode()).hexdigest())
        if last:
            s["lastState"] = last
        return s

    # kubelet ---------------------------------------------------------------------

    def image_fails(self, image):
        return any(b and b in image for b in self.o.bad_images)

    def image_crashes(self, image):
        return any(b and b in image for b in self.o.crash_images)

    def do_start(self, ns, name, uid, backoff=False):
        pod = self.s.get(R["pods"], ns, name)
        if pod is None or pod["metadata"]["uid"] != uid or not pod["spec"].get("nodeName"):
            return
        if pod["metadata"].get("deletionTimestamp") or is_terminal(pod):
            return
        node = self.s.get(R["nodes"], "", pod["spec"]["nodeName"])
        now = now_ts()
        st = dict(pod["status"])
        statuses, unready, failing, crashing = [], [], [], []
        for c in pod["spec"]["containers"]:
            image = c.get("image", "")
            if self.image_fails(image):
                reason = "ImagePullBackOff" if backoff else "ErrImagePull"
                msg = ('Back-off pulling image "%s"' % image) if backoff else (
                    'failed to pull and unpack image "docker.io/library/%s": failed to resolve reference '
                    '"docker.io/library/%s": pull access denied, repository does not exist or may require '
                    'authorization' % (image, image))
                statuses.append(self.cstatus(c, waiting=(reason, msg)))
                unready.append(c.get("name"))
                failing.append(image)
            elif self.image_crashes(image):
                last = {"terminated": {"exitCode": 1, "reason": "Error", "startedAt": now, "finishedAt": now,
                                       "containerID": "containerd://" + hashlib.sha256(image.encode()).hexdigest()}}
                statuses.append(self.cstatus(c, waiting=("CrashLoopBackOff", "back-off 10s restarting failed "
                                                         "container=%s pod=%s_%s(%s)" % (c.get("name"), name, ns, uid)),
                                             last=last, restarts=1))
                unready.append(c.get("name"))
                crashing.append(c.get("name"))
            else:
                statuses.append(self.cstatus(c, running=now))
        st["containerStatuses"] = statuses
        ready = not unready and (node is None or node_ready(node) == "True")
        conds = []
        for c in st.get("conditions") or []:
            c = dict(c)
            if c["type"] in ("Ready", "ContainersReady"):
                rdy = not unready if c["type"] == "ContainersReady" else ready
                if (c["status"] == "True") != rdy:
                    c["lastTransitionTime"] = now
                c["status"] = "True" if rdy else "False"
                c.pop("reason", None)
                c.pop("message", None)
                if not rdy:
                    c["reason"] = "ContainersNotReady"
                    c["message"] = self.unready_msg(pod, unready or [x.get("name") for x in pod["spec"]["containers"]])
            elif c["type"] == "PodReadyToStartContainers" and c["status"] != "True":
                c["status"], c["lastTransitionTime"] = "True", now
            conds.append(c)
        st["conditions"] = conds
        if failing:
            st["phase"] = "Pending"
        else:
            st["phase"] = "Running"
            if node is not None and not st.get("podIP"):
                cidr = (node.get("spec") or {}).get("podCIDR") or "10.244.0.0/24"
                base = cidr.split("/")[0].rsplit(".", 1)[0]
                self.pod_ips[node["metadata"]["name"]] += 1
                n = self.pod_ips[node["metadata"]["name"]] % 250 + 2
                st["podIP"] = "%s.%d" % (base, n)
                st["podIPs"] = [{"ip": st["podIP"]}]
        new = evolve(pod, status=st)
        pod = self.put(R["pods"], pod, new, "kubelet", "status")
        if failing and not backoff:
            self.event(pod, "Warning", "Failed", 'Failed to pull image "%s": not found' % failing[0], "kubelet")
            self.later(self.o.pull_backoff, ("backoff", ns, name, uid))
        if crashing:
            self.event(pod, "Warning", "BackOff", "Back-off restarting failed container %s in pod %s_%s(%s)"
                       % (crashing[0], name, ns, uid), "kubelet")

    def do_backoff(self, ns, name, uid):
        self.do_start(ns, name, uid, backoff=True)

    # nodes -----------------------------------------------------------------------

    def do_node(self, name):
        node = self.s.get(R["nodes"], "", name)
        pods = [p for p in self.s.items(R["pods"]) if (p.get("spec") or {}).get("nodeName") == name]
        if node is None:
            for p in pods:  # pod garbage collection: pods bound to a node that is gone
                self.api.remove(R["pods"], p, "Background")
            return
        ready = node_ready(node)
        spec = node.get("spec") or {}
        taints = [t for t in spec.get("taints") or [] if t.get("key") not in CONTROLLER_TAINTS]
        keep = {(t.get("key"), t.get("effect")): t for t in spec.get("taints") or [] if t.get("key") in CONTROLLER_TAINTS}
        want = []
        if spec.get("unschedulable"):
            want.append((TAINT_UNSCHEDULABLE, "NoSchedule"))
        if ready != "True":
            k = TAINT_NOT_READY if ready == "False" else TAINT_UNREACHABLE
            want += [(k, "NoSchedule"), (k, "NoExecute")]
        for k, eff in want:
            t = keep.get((k, eff)) or {"key": k, "effect": eff, "timeAdded": now_ts()}
            if eff == "NoSchedule":
                t = {x: y for x, y in t.items() if x != "timeAdded"}
            taints.append(t)
        if taints != (spec.get("taints") or []):
            new_spec = dict(spec)
            if taints:
                new_spec["taints"] = taints
            else:
                new_spec.pop("taints", None)
            node = self.put(R["nodes"], node, evolve(node, spec=new_spec), "kube-controller-manager")
        # pods on a node that is not Ready are not Ready either (NodeLifecycle MarkPodsNotReady)
        for p in pods:
            if (p.get("status") or {}).get("phase") != "Running":
                continue
            cs_ready = all(c.get("ready") for c in p["status"].get("containerStatuses") or [])
            want_ready = ready == "True" and cs_ready
            if pod_ready(p) != want_ready:
                now = now_ts()
                conds = []
                for c in p["status"].get("conditions") or []:
                    if c.get("type") == "Ready":
                        c = {"type": "Ready", "status": "True" if want_ready else "False", "lastProbeTime": None,
                             "lastTransitionTime": now}
                    conds.append(c)
                self.put(R["pods"], p, evolve(p, status=dict(p["status"], conditions=conds)), "node-controller", "status")
        self.mark("sched")

    def do_heartbeat(self):
        now = now_ts()
        for node in self.s.items(R["nodes"]):
            if node["metadata"]["name"] in self.o.frozen_nodes:
                continue
            old = (node.get("status") or {}).get("conditions") or []
            conds = [dict(c, lastHeartbeatTime=now) for c in old]
            # only the heartbeat times move: those are the changed fields (no diff of the whole status)
            mk = assoc_key("conditions", conds)
            changed = None if mk is None else {
                ("status", "conditions", ("k", mk, c[mk]), "lastHeartbeatTime")
                for c, o in zip(conds, old) if o.get("lastHeartbeatTime", MISSING) != now}
            self.put(R["nodes"], node, evolve(node, status=dict(node.get("status") or {}, conditions=conds)),
                     "kubelet", "status", changed)
        if self.o.heartbeat > 0:
            self.later(self.o.heartbeat, ("heartbeat",))

    # PVC binder --------------------------------------------------------------------

    def pvc_in_use(self, ns, name):
        for p in self.s.items(R["pods"], ns):
            if is_terminal(p):
                continue
            for v in (p.get("spec") or {}).get("volumes") or []:
                if (v.get("persistentVolumeClaim") or {}).get("claimName") == name:
                    return True
        return False

    def do_pvc(self, ns, name):
        pvc = self.s.get(R["persistentvolumeclaims"], ns, name)
        if pvc is None:
            return
        if pvc["metadata"].get("deletionTimestamp"):
            # pvc-protection: the finalizer goes once no pod uses the claim
            fin = pvc["metadata"].get("finalizers") or []
            if "kubernetes.io/pvc-protection" in fin and not self.pvc_in_use(ns, name):
                new = evolve(pvc)
                new["metadata"]["finalizers"] = [f for f in fin if f != "kubernetes.io/pvc-protection"]
                if not new["metadata"]["finalizers"]:
                    del new["metadata"]["finalizers"]
                pvc = self.put(R["persistentvolumeclaims"], pvc, new, "kube-controller-manager")
                if not pvc["metadata"].get("finalizers"):
                    self.api.remove(R["persistentvolumeclaims"], pvc, "Background")
            return
        spec = pvc["spec"]
        want = ((spec.get("resources") or {}).get("requests") or {}).get("storage")
        st = pvc.get("status") or {}
        if st.get("phase") == "Bound" and q_value((st.get("capacity") or {}).get("storage")) >= q_value(want):
            return
        new = evolve(pvc)
        if not spec.get("volumeName"):
            new["spec"] = dict(spec, volumeName="pvc-" + pvc["metadata"]["uid"])
            ann = dict(pvc["metadata"].get("annotations") or {})
            ann.update({"pv.kubernetes.io/bind-completed": "yes", "pv.kubernetes.io/bound-by-controller": "yes",
                        "volume.beta.kubernetes.io/storage-provisioner": "fake.csi.k8s.io",
                        "volume.kubernetes.io/storage-provisioner": "fake.csi.k8s.io"})
            new["metadata"]["annotations"] = ann
        new["status"] = {"phase": "Bound", "accessModes": list(spec.get("accessModes") or []),
                         "capacity": {"storage": want}}
        self.put(R["persistentvolumeclaims"], pvc, new, "kube-controller-manager")

    # namespace-wide status: quotas, PDBs, replica sets waiting for quota --------------------

    def do_ns(self, ns):
        for pvc in self.s.items(R["persistentvolumeclaims"], ns):
            if pvc["metadata"].get("deletionTimestamp"):
                self.mark("pvc", ns, pvc["metadata"]["name"])
        quotas = self.s.items(R["resourcequotas"], ns)
        if quotas:
            used = self.api.ns_usage(ns)
            for q in quotas:
                hard = ((q.get("spec") or {}).get("hard") or {})
                status = {"hard": dict(hard), "used": {rn: fmt_like(used.get(rn, 0), rn) for rn in hard}}
                if q.get("status") != status:
                    self.put(R["resourcequotas"], q, evolve(q, status=status), "resourcequota-controller", "status")
            for rs in self.s.items(R["replicasets"], ns):
                if any(c.get("type") == "ReplicaFailure" for c in (rs.get("status") or {}).get("conditions") or []):
                    self.mark("rs", ns, rs["metadata"]["name"])
        for pdb in self.s.items(R["poddisruptionbudgets"], ns):
            status = self.pdb_status(pdb)
            if pdb.get("status") != status:
                self.put(R["poddisruptionbudgets"], pdb, evolve(pdb, status=status), "kube-controller-manager", "status")

    def pdb_pods(self, pdb):
        ns = pdb["metadata"]["namespace"]
        sel = (pdb.get("spec") or {}).get("selector")
        if sel is None:
            return []
        return [p for p in self.s.items(R["pods"], ns) if selector_matches(sel, p["metadata"].get("labels"))
                and not p["metadata"].get("deletionTimestamp") and not is_terminal(p)]

    def pdb_numbers(self, pdb, pods):
        spec = pdb.get("spec") or {}
        healthy = sum(1 for p in pods if pod_ready(p))
        ns = pdb["metadata"]["namespace"]

        def scale():
            total, seen = 0, set()
            for p in pods:
                ref = controller_ref(p)
                if ref is None:
                    total += 1
                    continue
                if ref.get("uid") in seen:
                    continue
                seen.add(ref.get("uid"))
                owner = self.s.get(R["replicasets"], ns, ref.get("name")) if ref.get("kind") == "ReplicaSet" else None
                if owner is not None:
                    dref = controller_ref(owner)
                    dep = self.s.get(R["deployments"], ns, dref.get("name")) if dref and dref.get("kind") == "Deployment" else None
                    total += (dep or owner)["spec"].get("replicas", 1)
                else:
                    total += 1
            return total
        if spec.get("maxUnavailable") is not None:
            expected = scale()
            desired = max(0, expected - int_or_percent(spec["maxUnavailable"], expected, True))
        elif isinstance(spec.get("minAvailable"), int):
            expected = len(pods)
            desired = spec["minAvailable"]
        elif spec.get("minAvailable") is not None:
            expected = scale()
            desired = int_or_percent(spec["minAvailable"], expected, True)
        else:
            expected, desired = len(pods), 0
        return healthy, desired, expected

    def pdb_status(self, pdb):
        healthy, desired, expected = self.pdb_numbers(pdb, self.pdb_pods(pdb))
        allowed = max(0, healthy - desired)
        old = pdb.get("status") or {}
        now = now_ts()
        cond = {"type": "DisruptionAllowed", "status": "True" if allowed else "False",
                "observedGeneration": pdb["metadata"].get("generation", 1), "lastTransitionTime": now,
                "reason": "SufficientPods" if allowed else "InsufficientPods", "message": ""}
        for c in old.get("conditions") or []:
            if c.get("type") == "DisruptionAllowed" and c.get("status") == cond["status"]:
                cond["lastTransitionTime"] = c.get("lastTransitionTime", now)
        return {"observedGeneration": pdb["metadata"].get("generation", 1), "disruptionsAllowed": allowed,
                "currentHealthy": healthy, "desiredHealthy": desired, "expectedPods": expected,
                "conditions": [cond]}

    def do_purge_namespace(self, name):
        self.api.purge_namespace(name)


# --------------------------------------------------------------------------
# Tables (Accept: application/json;as=Table;v=v1;g=meta.k8s.io) - the columns kubectl prints
# --------------------------------------------------------------------------

def col(name, typ="string", priority=0, fmt="", desc=""):
    return {"name": name, "type": typ, "format": fmt, "description": desc or name, "priority": priority}


NAME_COL = col("Name", fmt="name", desc="Name must be unique within a namespace. Is required when creating "
               "resources, although some resources may allow a client to request the generation of an appropriate "
               "name automatically. Name is primarily intended for creation idempotence and configuration definition. "
               "Cannot be updated. More info: https://kubernetes.io/docs/concepts/overview/working-with-objects/names#names")
AGE_COL = col("Age", desc="CreationTimestamp is a timestamp representing the server time when this object was created.")


def or_none(v):
    return v if v not in (None, "", []) else "<none>"


def pod_phase_reason(pod):
    st = pod.get("status") or {}
    reason = st.get("reason") or st.get("phase") or "Unknown"
    for c in st.get("initContainerStatuses") or []:
        w = (c.get("state") or {}).get("waiting")
        if w and w.get("reason") and w["reason"] != "PodInitializing":
            reason = "Init:" + w["reason"]
    for c in st.get("containerStatuses") or []:
        state = c.get("state") or {}
        if state.get("waiting", {}).get("reason"):
            reason = state["waiting"]["reason"]
        elif state.get("terminated", {}).get("reason"):
            reason = state["terminated"]["reason"]
    if reason == "Running" and not pod_ready(pod) and any(c.get("ready") for c in st.get("containerStatuses") or []):
        reason = "Running"
    if pod["metadata"].get("deletionTimestamp"):
        reason = "Terminating"
    return reason


def table_for(res):
    p = res.plural
    if p == "nodes":
        def cells(o):
            st, labels = o.get("status") or {}, o["metadata"].get("labels") or {}
            ready = node_ready(o)
            status = {"True": "Ready", "False": "NotReady"}.get(ready, "Unknown")
            if (o.get("spec") or {}).get("unschedulable"):
                status += ",SchedulingDisabled"
            roles = sorted({k.split("/", 1)[1] for k in labels if k.startswith("node-role.kubernetes.io/")} |
                           ({labels["kubernetes.io/role"]} if labels.get("kubernetes.io/role") else set()))
            info = st.get("nodeInfo") or {}
            ext = [a["address"] for a in st.get("addresses") or [] if a.get("type") == "ExternalIP"]
            return [o["metadata"]["name"], status, ",".join(roles) or "<none>", age(o), info.get("kubeletVersion", ""),
                    or_none(node_ip(o)), or_none(",".join(ext)), or_none(info.get("osImage")),
                    or_none(info.get("kernelVersion")), or_none(info.get("containerRuntimeVersion"))]
        return [NAME_COL, col("Status", desc="The status of the node"), col("Roles", desc="The roles of the node"),
                AGE_COL, col("Version", desc="Kubelet Version reported by the node."),
                col("Internal-IP", priority=1), col("External-IP", priority=1), col("OS-Image", priority=1),
                col("Kernel-Version", priority=1), col("Container-Runtime", priority=1)], cells
    if p == "pods":
        def cells(o):
            st = o.get("status") or {}
            cs = st.get("containerStatuses") or []
            total = len((o.get("spec") or {}).get("containers") or [])
            restarts = sum(c.get("restartCount", 0) for c in cs)
            return [o["metadata"]["name"], "%d/%d" % (sum(1 for c in cs if c.get("ready")), total),
                    pod_phase_reason(o), str(restarts), age(o), or_none(st.get("podIP")),
                    or_none((o.get("spec") or {}).get("nodeName")), or_none(st.get("nominatedNodeName")),
                    or_none(None)]
        return [NAME_COL, col("Ready", desc="The aggregate readiness state of this pod for accepting traffic."),
                col("Status", desc="The aggregate status of the containers in this pod."),
                col("Restarts", desc="The number of times the containers in this pod have been restarted and when "
                    "the last container in this pod has restarted."), AGE_COL,
                col("IP", priority=1), col("Node", priority=1), col("Nominated Node", priority=1),
                col("Readiness Gates", priority=1)], cells
    if p in ("deployments", "replicasets"):
        def cells(o):
            spec, st = o.get("spec") or {}, o.get("status") or {}
            cs = ((spec.get("template") or {}).get("spec") or {}).get("containers") or []
            tail = [",".join(c.get("name", "") for c in cs), ",".join(c.get("image", "") for c in cs),
                    format_selector(spec.get("selector"))]
            if p == "deployments":
                return [o["metadata"]["name"], "%d/%d" % (st.get("readyReplicas", 0), spec.get("replicas", 1)),
                        st.get("updatedReplicas", 0), st.get("availableReplicas", 0), age(o)] + tail
            return [o["metadata"]["name"], spec.get("replicas", 1), st.get("replicas", 0),
                    st.get("readyReplicas", 0), age(o)] + tail
        head = ([col("Ready"), col("Up-to-date", "integer"), col("Available", "integer")] if p == "deployments"
                else [col("Desired", "integer"), col("Current", "integer"), col("Ready", "integer")])
        return [NAME_COL] + head + [AGE_COL, col("Containers", priority=1), col("Images", priority=1),
                                    col("Selector", priority=1)], cells
    if p == "namespaces":
        return [NAME_COL, col("Status"), AGE_COL], \
            lambda o: [o["metadata"]["name"], (o.get("status") or {}).get("phase", ""), age(o)]
    if p == "services":
        def cells(o):
            spec, st = o.get("spec") or {}, o.get("status") or {}
            t = spec.get("type", "ClusterIP")
            ext = [i.get("ip") or i.get("hostname") for i in (st.get("loadBalancer") or {}).get("ingress") or []]
            ext = ",".join(ext) or ("<pending>" if t == "LoadBalancer" else spec.get("externalName") or "<none>")
            ports = ",".join(("%d:%d/%s" % (x["port"], x["nodePort"], x.get("protocol", "TCP")) if x.get("nodePort")
                              else "%d/%s" % (x.get("port", 0), x.get("protocol", "TCP"))) for x in spec.get("ports") or [])
            sel = ",".join("%s=%s" % kv for kv in sorted((spec.get("selector") or {}).items()))
            return [o["metadata"]["name"], t, spec.get("clusterIP", "<none>"), ext, or_none(ports), age(o), or_none(sel)]
        return [NAME_COL, col("Type"), col("Cluster-IP"), col("External-IP"), col("Port(s)"), AGE_COL,
                col("Selector", priority=1)], cells
    if p in ("secrets", "configmaps"):
        if p == "secrets":
            return [NAME_COL, col("Type"), col("Data", "integer"), AGE_COL], \
                lambda o: [o["metadata"]["name"], o.get("type", ""), len(o.get("data") or {}), age(o)]
        return [NAME_COL, col("Data", "integer"), AGE_COL], \
            lambda o: [o["metadata"]["name"], len(o.get("data") or {}) + len(o.get("binaryData") or {}), age(o)]
    if p == "persistentvolumeclaims":
        def cells(o):
            spec, st = o.get("spec") or {}, o.get("status") or {}
            modes = ",".join({"ReadWriteOnce": "RWO", "ReadOnlyMany": "ROX", "ReadWriteMany": "RWX",
                              "ReadWriteOncePod": "RWOP"}.get(m, m) for m in st.get("accessModes") or [])
            return [o["metadata"]["name"], st.get("phase", ""), spec.get("volumeName", ""),
                    (st.get("capacity") or {}).get("storage", ""), modes, spec.get("storageClassName", "<unset>"),
                    spec.get("volumeAttributesClassName", "<unset>"), age(o), spec.get("volumeMode", "")]
        return [NAME_COL, col("Status"), col("Volume"), col("Capacity"), col("Access Modes"), col("StorageClass"),
                col("VolumeAttributesClass"), AGE_COL, col("VolumeMode", priority=1)], cells
    if p == "ingresses":
        def cells(o):
            spec, st = o.get("spec") or {}, o.get("status") or {}
            hosts = ",".join(r.get("host", "*") for r in spec.get("rules") or []) or "*"
            addr = ",".join(i.get("ip") or i.get("hostname", "") for i in (st.get("loadBalancer") or {}).get("ingress") or [])
            return [o["metadata"]["name"], spec.get("ingressClassName", "<none>"), hosts, addr,
                    "80, 443" if spec.get("tls") else "80", age(o)]
        return [NAME_COL, col("Class"), col("Hosts"), col("Address"), col("Ports"), AGE_COL], cells
    if p == "networkpolicies":
        return [NAME_COL, col("Pod-Selector"), AGE_COL], \
            lambda o: [o["metadata"]["name"], format_selector((o.get("spec") or {}).get("podSelector")), age(o)]
    if p == "resourcequotas":
        def cells(o):
            st = o.get("status") or {}
            hard, used = st.get("hard") or {}, st.get("used") or {}
            req = ", ".join("%s: %s/%s" % (k, used.get(k, "0"), v) for k, v in sorted(hard.items()) if not k.startswith("limits."))
            lim = ", ".join("%s: %s/%s" % (k, used.get(k, "0"), v) for k, v in sorted(hard.items()) if k.startswith("limits."))
            return [o["metadata"]["name"], age(o), req, lim]
        return [NAME_COL, AGE_COL, col("Request"), col("Limit")], cells
    if p == "poddisruptionbudgets":
        def cells(o):
            spec, st = o.get("spec") or {}, o.get("status") or {}
            return [o["metadata"]["name"], str(spec["minAvailable"]) if spec.get("minAvailable") is not None else "N/A",
                    str(spec["maxUnavailable"]) if spec.get("maxUnavailable") is not None else "N/A",
                    st.get("disruptionsAllowed", 0), age(o)]
        return [NAME_COL, col("Min Available"), col("Max Unavailable"), col("Allowed Disruptions", "integer"),
                AGE_COL], cells
    if p == "events":
        def cells(o):
            t = parse_ts(o.get("lastTimestamp"))
            io = o.get("involvedObject") or {}
            return [human_duration(time.time() - t) if t else "<unknown>", o.get("type", ""), o.get("reason", ""),
                    "%s/%s" % ((io.get("kind") or "").lower(), io.get("name", "")), o.get("message", ""),
                    o["metadata"]["name"]]
        return [col("Last Seen"), col("Type"), col("Reason"), col("Object"), col("Message"),
                col("Name", priority=1)], cells
    return [NAME_COL, col("Created At", "date", desc="CreationTimestamp is a timestamp representing the server "
                                                     "time when this object was created.")], \
        lambda o: [o["metadata"]["name"], o["metadata"].get("creationTimestamp")]


def partial_metadata(obj):
    return {"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1", "metadata": obj["metadata"]}


def make_table(res, objs, list_meta, include="Metadata", with_columns=True):
    cols, cells = table_for(res)
    rows = []
    for o in objs:
        row = {"cells": cells(o)}
        if include == "Object":
            row["object"] = o
        elif include != "None":
            row["object"] = partial_metadata(o)
        rows.append(row)
    return {"kind": "Table", "apiVersion": "meta.k8s.io/v1", "metadata": list_meta,
            "columnDefinitions": cols if with_columns else [], "rows": rows}


# --------------------------------------------------------------------------
# HTTP
# --------------------------------------------------------------------------

STREAMED = object()
REASONS = {400: "BadRequest", 401: "Unauthorized", 403: "Forbidden", 404: "NotFound", 405: "MethodNotAllowed",
           406: "NotAcceptable", 409: "Conflict", 410: "Expired", 413: "RequestEntityTooLarge",
           415: "UnsupportedMediaType", 422: "Invalid", 429: "TooManyRequests", 500: "InternalError",
           503: "ServiceUnavailable", 504: "Timeout"}
PATCH_TYPES = ("application/json-patch+json", "application/merge-patch+json",
               "application/strategic-merge-patch+json", "application/apply-patch+yaml")


def log_lines(pod, container):
    m, spec = pod["metadata"], pod["spec"]
    c = next((x for x in spec.get("containers") or [] if x.get("name") == container), {})
    ports = [str(p.get("containerPort")) for p in c.get("ports") or []]
    lines = ["[fake] starting container %s of pod %s/%s" % (container, m.get("namespace"), m["name"]),
             "[fake] image %s" % c.get("image", ""),
             "[fake] node %s" % spec.get("nodeName", ""),
             ("[fake] listening on " + ", ".join(":" + p for p in ports)) if ports else "[fake] no ports declared",
             "[fake] ready"]
    return lines


class App:
    """State of the HTTP side: auth, fault injection, request log, capture file."""

    def __init__(self, api, ctl, opts):
        self.api, self.ctl, self.s, self.o = api, ctl, api.s, opts
        self.lock = threading.Lock()
        self.token_cache = (None, None, set())
        self.extra_tokens = set([opts.token]) if opts.token else set()
        self.latency = opts.latency_ms / 1000.0
        self.faults = []
        self.requests = collections.deque(maxlen=5000)
        self.req_seq = 0
        self.capture = open(opts.capture, "a", buffering=1) if opts.capture else None
        self.address = "127.0.0.1:0"

    def tokens(self):
        toks = set(self.extra_tokens)
        if self.o.token_file:
            try:
                st = os.stat(self.o.token_file)
                key = (st.st_mtime_ns, st.st_size)
                if self.token_cache[0] != key:
                    with open(self.o.token_file) as f:
                        self.token_cache = (key, None, {t.strip() for t in f.read().splitlines() if t.strip()})
                toks |= self.token_cache[2]
            except OSError:
                pass
        return toks

    def check_auth(self, header):
        toks = self.tokens()
        if not toks and not self.o.token_file:
            return
        if not header or not header.startswith("Bearer ") or header[7:].strip() not in toks:
            raise ApiError(401, "Unauthorized", "Unauthorized")

    def fault_for(self, method, path):
        with self.lock:
            for f in self.faults:
                if f["count"] <= 0:
                    continue
                if f.get("method") and f["method"].upper() != method:
                    continue
                if f.get("path") and f["path"] not in path:
                    continue
                f["count"] -= 1
                self.faults = [x for x in self.faults if x["count"] > 0]
                return f
        return None

    def record(self, method, path, query, status, headers, t0):
        with self.lock:
            self.req_seq += 1
            self.requests.append({"seq": self.req_seq, "time": now_ts(t0), "method": method, "path": path,
                                  "query": query, "status": status,
                                  "contentType": headers.get("Content-Type", ""),
                                  "userAgent": headers.get("User-Agent", ""),
                                  "ms": round((time.time() - t0) * 1000, 3)})

    def captured(self, method, path, code, body):
        if self.capture is not None and not path.startswith("/_fake"):
            with self.lock:
                self.capture.write(dumps({"method": method, "path": path, "code": code, "body": body}) + "\n")


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "kubeapi-fake"
    sys_version = ""
    disable_nagle_algorithm = True

    def setup(self):
        self.tls_failed = False
        if isinstance(self.request, ssl.SSLSocket):
            try:
                self.request.settimeout(10)
                self.request.do_handshake()
                self.request.settimeout(None)
            except (ssl.SSLError, OSError):
                self.tls_failed = True   # e.g. a client that does not trust the throw-away CA
        super().setup()

    def handle(self):
        if not self.tls_failed:
            super().handle()

    def finish(self):
        try:
            super().finish()
        except (ssl.SSLError, OSError):
            pass

    def log_message(self, *a):
        pass

    def do_GET(self):
        self.dispatch("GET")

    def do_POST(self):
        self.dispatch("POST")

    def do_PUT(self):
        self.dispatch("PUT")

    def do_PATCH(self):
        self.dispatch("PATCH")

    def do_DELETE(self):
        self.dispatch("DELETE")

    @property
    def app(self):
        return self.server.app

    # plumbing ---------------------------------------------------------------------

    def read_body(self):
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            out = b""
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    return out
                out += self.rfile.read(size)
                self.rfile.readline()
        n = int(self.headers.get("Content-Length") or 0)
        if n > 16 * 1024 * 1024:
            raise ApiError(413, "RequestEntityTooLarge", "Request entity too large: limit is 3145728")
        return self.rfile.read(n) if n else b""

    def send_bytes(self, code, data, ctype, headers=None):
        self.status_code = code
        self.send_response(code)
        self.send_header("Content-Type", ctype)
        self.send_header("Cache-Control", "no-cache, private")
        self.send_header("Content-Length", str(len(data)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        # headers and body in one write (no Nagle/delayed-ACK stall)
        self._headers_buffer = []
        self.wfile.write(self._hdr + data)

    def end_headers(self):
        self._headers_buffer.append(b"\r\n")
        self._hdr = b"".join(self._headers_buffer)

    def send_json(self, code, obj, headers=None, ctype="application/json"):
        data = dumps(obj).encode()
        self.app.captured(self.command, self.path, code, obj)
        self.send_bytes(code, data, ctype, headers)

    def dispatch(self, method):
        t0 = time.time()
        self.status_code = 0
        url = urlsplit(self.path)
        path = url.path
        q = {k: v[-1] for k, v in parse_qs(url.query, keep_blank_values=True).items()}
        try:
            raw = self.read_body()
            if path.startswith("/_fake/") or path == "/_fake":
                return self.control(method, path, q, raw)
            self.app.check_auth(self.headers.get("Authorization"))
            if self.app.latency:
                time.sleep(self.app.latency)
            fault = self.app.fault_for(method, path)
            if fault is not None:
                if fault.get("drop"):
                    self.close_connection = True
                    self.status_code = -1
                    try:
                        self.connection.shutdown(socket.SHUT_RDWR)
                    except OSError:
                        pass
                    return
                code = int(fault.get("code", 500))
                hdr = {"Retry-After": str(fault["retryAfter"])} if fault.get("retryAfter") is not None else None
                err = ApiError(code, fault.get("reason") or REASONS.get(code, "InternalError"),
                               fault.get("message") or "injected failure (fake)", None, hdr)
                if fault.get("retryAfter") is not None:
                    err.details = {"retryAfterSeconds": int(fault["retryAfter"])}
                raise err
            result = self.route(method, path, q, raw)
            if result is STREAMED:
                return
            code, obj = result[0], result[1]
            if isinstance(obj, (bytes, str)):
                self.send_bytes(code, obj.encode() if isinstance(obj, str) else obj,
                                result[2] if len(result) > 2 else "text/plain")
            else:
                self.send_json(code, obj, ctype=result[2] if len(result) > 2 else "application/json")
        except ApiError as e:
            self.send_json(e.code, e.status(), e.headers)
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True
        except Exception as e:  # a fault of the fake itself
            import traceback
            traceback.print_exc()
            try:
                self.send_json(500, ApiError(500, "InternalError", "fake apiserver error: %r" % e).status())
            except OSError:
                self.close_connection = True
        finally:
            if not path.startswith("/_fake"):
                self.app.record(method, path, url.query, self.status_code, self.headers, t0)

    def accept(self):
        return self.headers.get("Accept") or "*/*"

    def parse_body(self, raw, ctype=None):
        ctype = (ctype or self.headers.get("Content-Type") or "application/json").split(";")[0].strip()
        if not raw.strip():
            raise bad_request("the body of the request was empty")
        if "protobuf" in ctype:
            raise ApiError(415, "UnsupportedMediaType", 'the body of the request was in an unknown format - '
                           'accepted media types include: application/json, application/yaml')
        try:
            return json.loads(raw)
        except ValueError:
            if ctype in ("application/yaml", "application/apply-patch+yaml") and yaml is not None:
                try:
                    return yaml.load(raw, Loader=_YAML_LOADER)
                except yaml.YAMLError as e:
                    raise bad_request("error decoding YAML: %s" % e)
            raise bad_request("couldn't get version/kind; json parse error: invalid character in body")

    # routing ----------------------------------------------------------------------

    def route(self, method, path, q, raw):
        parts = [unquote(p) for p in path.strip("/").split("/")] if path.strip("/") else []
        accept = self.accept()
        if not parts:
            return 200, {"paths": sorted(["/api", "/api/v1", "/apis", "/version", "/healthz", "/livez", "/readyz",
                                          "/openapi/v2", "/openapi/v3"] +
                                         ["/apis/%s" % g for g in GROUPS if g] +
                                         ["/apis/%s/%s" % (g, v) for g, v in GROUPS.items() if g])}
        if parts[0] in ("healthz", "livez", "readyz"):
            return 200, "ok"
        if parts == ["version"]:
            return 200, version_info()
        if parts[0] == "openapi":
            if parts[1:] == ["v3"]:
                return 200, openapi_v3_root()
            if parts[1:2] == ["v3"]:
                p = "/".join(parts[2:])
                for g, v in GROUPS.items():
                    if p == ("apis/%s/%s" % (g, v) if g else "api/v1"):
                        return 200, openapi_v3_doc(g, v)
                raise ApiError(404, "NotFound", "the server could not find the requested resource")
            if parts[1:] == ["v2"]:
                if "protobuf" in accept:
                    return 200, b"", "application/com.github.proto-openapi.spec.v2.v1.0+protobuf"
                return 200, {"swagger": "2.0", "info": {"title": "Kubernetes", "version": SERVER_VERSION},
                             "paths": {}, "definitions": {}}
        if "json" not in accept and "*/*" not in accept and "yaml" not in accept:
            raise ApiError(406, "NotAcceptable", "only the following media types are accepted: application/json, "
                           "application/yaml")
        if parts[0] == "api":
            if len(parts) == 1:
                if "apidiscovery.k8s.io" in accept and self.app.o.discovery == "aggregated":
                    return 200, aggregated(True), AGG_V2
                return 200, api_versions(self.app.address)
            group, version, rest = "", parts[1], parts[2:]
        elif parts[0] == "apis":
            if len(parts) == 1:
                if "apidiscovery.k8s.io" in accept and self.app.o.discovery == "aggregated":
                    return 200, aggregated(False), AGG_V2
                return 200, api_group_list()
            if len(parts) == 2:
                if parts[1] in GROUPS and parts[1]:
                    return 200, api_group(parts[1])
                raise ApiError(404, "NotFound", "the server could not find the requested resource")
            group, version, rest = parts[1], parts[2], parts[3:]
        else:
            raise ApiError(404, "NotFound", "the server could not find the requested resource")
        if GROUPS.get(group) != version:
            raise ApiError(404, "NotFound", "the server could not find the requested resource")
        if not rest:
            if method != "GET":
                raise ApiError(405, "MethodNotAllowed", "the server does not allow this method on the requested resource")
            return 200, resource_list(group, version)
        ns = name = sub = None
        nsr = BY_GVR.get((group, version, rest[2])) if len(rest) >= 3 and rest[0] == "namespaces" else None
        if nsr is not None and nsr.namespaced:
            res, ns = nsr, rest[1]
            tail = rest[3:]
        else:
            res = BY_GVR.get((group, version, rest[0]))
            tail = rest[1:]
            if res is None:
                raise ApiError(404, "NotFound", "the server could not find the requested resource")
            if res.namespaced and tail:
                raise ApiError(404, "NotFound", "the server could not find the requested resource")
        if len(tail) > 2:
            raise ApiError(404, "NotFound", "the server could not find the requested resource")
        name = tail[0] if tail else None
        sub = tail[1] if len(tail) > 1 else None
        if sub is not None and sub not in res.subs:
            raise ApiError(404, "NotFound", "the server could not find the requested resource")
        return self.verb(method, res, ns, name, sub, q, raw)

    def manager(self, q):
        return q.get("fieldManager") or (self.headers.get("User-Agent") or "unknown").split("/")[0] or "unknown"

    def verb(self, method, res, ns, name, sub, q, raw):
        api = self.app.api
        dry = q.get("dryRun") == "All"
        if name is None:
            if method == "GET":
                if q.get("watch") in ("1", "true", "True"):
                    return self.watch(res, ns, q)
                return 200, self.list(res, ns, q)
            if method == "POST":
                if res.namespaced and ns is None:
                    raise ApiError(404, "NotFound", "the server could not find the requested resource")
                obj = api.create(res, ns, self.parse_body(raw), self.manager(q), dry)
                return 201, obj
            if method == "DELETE":
                return 200, self.delete_collection(res, ns, q, raw, dry)
            raise ApiError(405, "MethodNotAllowed", "the server does not allow this method on the requested resource")
        if sub == "log":
            if method != "GET":
                raise ApiError(405, "MethodNotAllowed", "the server does not allow this method on the requested resource")
            return self.logs(ns, name, q)
        if sub == "eviction":
            if method != "POST":
                raise ApiError(405, "MethodNotAllowed", "the server does not allow this method on the requested resource")
            return self.evict(ns, name, self.parse_body(raw), dry)
        if sub == "binding":
            return self.binding(ns, name, self.parse_body(raw))
        if sub == "scale":
            return self.scale(method, res, ns, name, q, raw, dry)
        if method == "GET":
            with self.app.s.lock:
                obj = api.get(res, ns, name)
            return 200, self.shape_one(res, obj, q)
        if method == "PUT":
            body = self.parse_body(raw)
            if sub == "finalize":
                sub = None
            return 200, api.update(res, ns, name, body, self.manager(q), sub, dry)
        if method == "PATCH":
            ctype = (self.headers.get("Content-Type") or "").split(";")[0].strip()
            if ctype not in PATCH_TYPES:
                raise ApiError(415, "UnsupportedMediaType", "the body of the request was in an unknown format - "
                               "accepted media types include: " + ", ".join(PATCH_TYPES))
            patch = self.parse_body(raw, ctype)
            force = q.get("force") in ("true", "1")
            if ctype == "application/apply-patch+yaml":
                with self.app.s.lock:
                    existed = self.app.s.get(res, ns, name) is not None
                    out = api.patch(res, ns, name, ctype, patch, q.get("fieldManager"), sub, dry, force)
                return (200 if existed else 201), out
            if "force" in q:
                raise ApiError(422, "Invalid", 'PatchOptions.meta.k8s.io "" is invalid: force: Forbidden: may not be '
                               'specified for non-apply patch', {"group": "meta.k8s.io", "kind": "PatchOptions", "causes": [
                                   {"reason": "FieldValueForbidden", "message": "Forbidden: may not be specified for "
                                    "non-apply patch", "field": "force"}]})
            return 200, api.patch(res, ns, name, ctype, patch, self.manager(q), sub, dry, force)
        if method == "DELETE":
            if sub is not None:
                raise ApiError(405, "MethodNotAllowed", "the server does not allow this method on the requested resource")
            opts = self.delete_options(q, raw)
            result = api.delete(res, ns, name, opts, dry or "All" in (opts.get("dryRun") or []))
            return 200, result
        raise ApiError(405, "MethodNotAllowed", "the server does not allow this method on the requested resource")

    def delete_options(self, q, raw):
        opts = {}
        if raw.strip():
            try:
                opts = json.loads(raw)
            except ValueError:
                raise bad_request("invalid DeleteOptions")
        if q.get("propagationPolicy"):
            opts["propagationPolicy"] = q["propagationPolicy"]
        if q.get("gracePeriodSeconds"):
            opts["gracePeriodSeconds"] = int(q["gracePeriodSeconds"])
        return opts if isinstance(opts, dict) else {}

    # reading ------------------------------------------------------------------------

    def selectors(self, res, q):
        try:
            return (parse_label_selector(q.get("labelSelector", "")),
                    parse_field_selector(q.get("fieldSelector", ""), res.plural))
        except SelectorError as e:
            raise bad_request(str(e))

    def shape_one(self, res, obj, q):
        accept = self.accept()
        if "as=Table" in accept:
            return make_table(res, [obj], {"resourceVersion": obj["metadata"].get("resourceVersion", "")},
                              q.get("includeObject", "Metadata"))
        if "as=PartialObjectMetadata" in accept:
            return partial_metadata(obj)
        return obj

    def list(self, res, ns, q):
        lsel, fsel = self.selectors(res, q)
        s = self.app.s
        with s.lock:
            # the store's keys are (namespace, name): sorted by key is sorted by
            # namespace and name, and a continue token's start is found by bisection
            table = s.objs[res.plural] if ns is None else s.by_ns[res.plural].get(ns, {})
            keyed = sorted(table.items(), key=itemgetter(0))
            rv = str(s.rv)
            floor = s.floor
        meta = {"resourceVersion": rv}
        cont = q.get("continue")
        if cont:
            try:
                tok = json.loads(base64.urlsafe_b64decode(cont.encode()))
                start, rv0 = tuple(tok["start"]), int(tok["rv"])
            except (ValueError, KeyError, TypeError):
                raise bad_request("continue key is not valid: invalid continue token")
            if rv0 < floor:
                raise ApiError(410, "Expired", "The provided continue parameter is too old to display a consistent "
                               "list result. You can start a new list without the continue parameter, or use the "
                               "continue token in this response to retrieve the remainder of the results. Continuing "
                               "with the provided token results in an inconsistent list - objects that were created, "
                               "modified, or deleted between the time the first chunk was returned and now may show "
                               "up in the list.")
            keyed = keyed[bisect.bisect_right(keyed, start, key=itemgetter(0)):]
        if lsel or fsel:
            objs = [o for _, o in keyed if match_reqs(lsel, o["metadata"].get("labels")) and match_fields(fsel, o)]
        else:
            objs = [o for _, o in keyed]
        try:
            limit = int(q.get("limit") or 0)
        except ValueError:
            limit = 0
        if limit > 0 and len(objs) > limit:
            last = objs[limit - 1]["metadata"]
            meta["continue"] = base64.urlsafe_b64encode(dumps(
                {"v": "meta.k8s.io/v1", "rv": int(rv), "start": [last.get("namespace", ""), last["name"]]}).encode()).decode()
            meta["remainingItemCount"] = len(objs) - limit
            objs = objs[:limit]
        accept = self.accept()
        if "as=Table" in accept:
            return make_table(res, objs, meta, q.get("includeObject", "Metadata"))
        if "as=PartialObjectMetadataList" in accept:
            return {"kind": "PartialObjectMetadataList", "apiVersion": "meta.k8s.io/v1", "metadata": meta,
                    "items": [partial_metadata(o) for o in objs]}
        items = [{k: v for k, v in o.items() if k not in ("apiVersion", "kind")} for o in objs]
        return {"kind": res.kind + "List", "apiVersion": res.api_version, "metadata": meta, "items": items}

    def watch(self, res, ns, q):
        lsel, fsel = self.selectors(res, q)
        s = self.app.s
        rv = q.get("resourceVersion")
        bookmarks = q.get("allowWatchBookmarks") in ("true", "1")
        initial = q.get("sendInitialEvents") == "true"
        try:
            deadline = time.time() + float(q.get("timeoutSeconds") or 1800)
        except ValueError:
            raise bad_request("invalid timeoutSeconds")
        table = "as=Table" in self.accept()
        include = q.get("includeObject", "Metadata")

        def matches(o):
            return o is not None and match_reqs(lsel, o["metadata"].get("labels")) and match_fields(fsel, o)

        def shape(etype, obj, old):
            new_ok, old_ok = matches(obj), matches(old)
            if etype == "MODIFIED":
                if new_ok and not old_ok:
                    etype = "ADDED"
                elif old_ok and not new_ok:
                    gone = dict(old)
                    gone["metadata"] = dict(old["metadata"], resourceVersion=obj["metadata"]["resourceVersion"])
                    return "DELETED", gone
                elif not new_ok:
                    return None
            elif etype == "DELETED":
                if not (new_ok or old_ok):
                    return None
            elif not new_ok:
                return None
            return etype, obj

        w = Watcher(res, ns)
        backlog, expired = [], None
        with s.lock:
            if rv in (None, "", "0") or initial:
                for o in sorted(s.items(res, ns), key=lambda o: (o["metadata"].get("namespace", ""), o["metadata"]["name"])):
                    if matches(o):
                        backlog.append(("ADDED", o))
                if initial:
                    backlog.append(("BOOKMARK", self.bookmark(res, s.rv, initial_end=True)))
            else:
                try:
                    r = int(rv)
                except ValueError:
                    raise bad_request('invalid resource version "%s"' % rv)
                if r > s.rv:
                    # the real cacher waits up to 3 s for a resourceVersion it has not seen yet
                    until = time.time() + self.app.o.too_large_rv_wait
                    while s.rv < r and time.time() < until:
                        s.lock.release()
                        time.sleep(0.05)
                        s.lock.acquire()
                    if s.rv < r:
                        expired = ApiError(504, "Timeout", "Timeout: Too large resource version: %d, current: %d"
                                           % (r, s.rv), {"causes": [{"reason": "ResourceVersionTooLarge",
                                                                     "message": "Too large resource version"}],
                                                         "retryAfterSeconds": 1})
                if expired is not None:
                    pass
                elif r < s.floor:
                    expired = ApiError(410, "Expired", "too old resource version: %d (%d)" % (r, s.floor))
                else:
                    for erv, eres, etype, obj, old in s.history:
                        if erv > r and eres is res and (ns is None or obj["metadata"].get("namespace", "") == ns):
                            ev = shape(etype, obj, old)
                            if ev:
                                backlog.append(ev)
            if expired is None:
                s.watchers.add(w)
        self.status_code = 200
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Cache-Control", "no-cache, private")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        self._headers_buffer = []
        first = [True]

        def emit(etype, obj):
            if table and etype != "BOOKMARK" and etype != "ERROR":
                obj = make_table(res, [obj], {"resourceVersion": obj["metadata"].get("resourceVersion", "")},
                                 include, with_columns=first[0])
                first[0] = False
            ev = {"type": etype, "object": obj}
            self.app.captured("WATCH", self.path, 200, ev)
            data = (dumps(ev) + "\n").encode()
            chunk = b"%x\r\n%s\r\n" % (len(data), data)
            if self._hdr:
                chunk, self._hdr = self._hdr + chunk, b""
            self.wfile.write(chunk)
        try:
            if expired is not None:
                emit("ERROR", expired.status())
            else:
                for etype, obj in backlog:
                    emit(etype, obj)
                if self._hdr:
                    self.wfile.write(self._hdr)
                    self._hdr = b""
                last_bookmark = time.time()
                interval = self.app.o.bookmark_interval
                while True:
                    left = deadline - time.time()
                    if left <= 0:
                        break
                    try:
                        etype, obj, old = w.q.get(timeout=min(left, 1.0, interval))
                    except queue.Empty:
                        if self.client_gone():
                            return STREAMED
                        if bookmarks and time.time() - last_bookmark >= interval:
                            with s.lock:
                                cur = s.rv if w.q.empty() else None
                            if cur is not None:
                                emit("BOOKMARK", self.bookmark(res, cur))
                                last_bookmark = time.time()
                        continue
                    ev = shape(etype, obj, old)
                    if ev:
                        emit(*ev)
            if self._hdr:
                self.wfile.write(self._hdr)
                self._hdr = b""
            self.wfile.write(b"0\r\n\r\n")
        except (BrokenPipeError, ConnectionResetError, ssl.SSLError, OSError):
            self.close_connection = True
        finally:
            with s.lock:
                s.watchers.discard(w)
        return STREAMED

    def client_gone(self):
        import select
        try:
            r, _, _ = select.select([self.connection], [], [], 0)
        except (OSError, ValueError):
            return True
        if r:
            self.close_connection = True
            return True
        return False

    @staticmethod
    def bookmark(res, rv, initial_end=False):
        m = {"resourceVersion": str(rv), "creationTimestamp": None}
        if initial_end:
            m["annotations"] = {"k8s.io/initial-events-end": "true"}
        return {"kind": res.kind, "apiVersion": res.api_version, "metadata": m}

    def delete_collection(self, res, ns, q, raw, dry):
        lsel, fsel = self.selectors(res, q)
        opts = self.delete_options(q, raw)
        api = self.app.api
        with self.app.s.lock:
            objs = [o for o in self.app.s.items(res, ns) if match_reqs(lsel, o["metadata"].get("labels"))
                    and match_fields(fsel, o)]
            if res.plural == "namespaces":
                objs = [o for o in objs if o["metadata"]["name"] not in PROTECTED_NAMESPACES]
            gone = []
            for o in objs:
                m = o["metadata"]
                try:
                    api.delete(res, m.get("namespace", ""), m["name"], opts, dry)
                except ApiError:
                    continue
                gone.append({k: v for k, v in o.items() if k not in ("apiVersion", "kind")})
            rv = str(self.app.s.rv)
        return {"kind": res.kind + "List", "apiVersion": res.api_version, "metadata": {"resourceVersion": rv},
                "items": gone}

    # subresources -------------------------------------------------------------------

    def logs(self, ns, name, q):
        with self.app.s.lock:
            pod = self.app.api.get(R["pods"], ns, name)
        names = [c.get("name") for c in pod["spec"].get("containers") or []]
        c = q.get("container")
        if not c:
            if len(names) != 1:
                raise bad_request("a container name must be specified for pod %s, choose one of: [%s]"
                                  % (name, " ".join(names)))
            c = names[0]
        if c not in names:
            raise bad_request("container %s is not valid for pod %s" % (c, name))
        cs = next((x for x in (pod.get("status") or {}).get("containerStatuses") or [] if x.get("name") == c), None)
        state = (cs or {}).get("state") or {}
        crashed = cs is not None and cs.get("lastState", {}).get("terminated")
        if q.get("previous") in ("true", "1"):
            if not crashed:
                raise bad_request('previous terminated container "%s" in pod "%s" not found' % (c, name))
            lines = log_lines(pod, c)[:3] + ["[fake] fatal: simulated crash"]
            started = crashed.get("startedAt")
        elif "running" in state:
            lines = log_lines(pod, c)
            started = state["running"].get("startedAt")
        elif crashed:
            lines = log_lines(pod, c)[:3] + ["[fake] fatal: simulated crash"]
            started = crashed.get("startedAt")
        else:
            reason = (state.get("waiting") or {}).get("reason") or "ContainerCreating"
            raise bad_request('container "%s" in pod "%s" is waiting to start: %s' % (
                c, name, "trying and failing to pull image" if reason in ("ErrImagePull", "ImagePullBackOff") else reason))
        if q.get("timestamps") in ("true", "1"):
            t = parse_ts(started) or time.time()
            lines = ["%s %s" % (time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t + i * 0.001)) +
                                ".%09dZ" % (i * 1000000), ln) for i, ln in enumerate(lines)]
        if q.get("tailLines") not in (None, ""):
            try:
                n = int(q["tailLines"])
            except ValueError:
                raise bad_request("invalid tailLines")
            lines = lines[-n:] if n > 0 else []
        text = "".join(ln + "\n" for ln in lines)
        if q.get("limitBytes"):
            text = text[:int(q["limitBytes"])]
        return 200, text, "text/plain"

    def evict(self, ns, name, body, dry):
        if not isinstance(body, dict) or body.get("kind") not in (None, "Eviction"):
            raise bad_request("body must be an Eviction")
        if (body.get("metadata") or {}).get("name") not in (None, name):
            raise bad_request("name in URL does not match name in Eviction object")
        dry = dry or "All" in ((body.get("deleteOptions") or {}).get("dryRun") or [])
        s, api, ctl = self.app.s, self.app.api, self.app.ctl
        with s.lock:
            pod = api.get(R["pods"], ns, name)
            phase = (pod.get("status") or {}).get("phase")
            ignore = pod["metadata"].get("deletionTimestamp") or phase in ("Pending", "Succeeded", "Failed")
            if not ignore:
                pdbs = [p for p in s.items(R["poddisruptionbudgets"], ns)
                        if selector_matches((p.get("spec") or {}).get("selector"), pod["metadata"].get("labels"))]
                if len(pdbs) > 1:
                    raise ApiError(500, "InternalError", "This pod has more than one PodDisruptionBudget, which the "
                                   "eviction subresource does not support.")
                if pdbs:
                    pdb = pdbs[0]
                    healthy, desired, expected = ctl.pdb_numbers(pdb, ctl.pdb_pods(pdb))
                    policy = (pdb.get("spec") or {}).get("unhealthyPodEvictionPolicy", "IfHealthyBudget")
                    unhealthy_ok = not pod_ready(pod) and (policy == "AlwaysAllow" or healthy >= desired)
                    if not unhealthy_ok and healthy - desired <= 0:
                        raise ApiError(429, "TooManyRequests",
                                       "Cannot evict pod as it would violate the pod's disruption budget.",
                                       {"causes": [{"reason": "DisruptionBudget",
                                                    "message": "The disruption budget %s needs %d healthy pods and has "
                                                               "%d currently" % (pdb["metadata"]["name"], desired, healthy)}]})
                    if not dry:
                        st = dict(pdb.get("status") or {})
                        st["disruptionsAllowed"] = max(0, st.get("disruptionsAllowed", 0) - 1)
                        st["disruptedPods"] = dict(st.get("disruptedPods") or {}, **{name: now_ts()})
                        ctl.put(R["poddisruptionbudgets"], pdb, evolve(pdb, status=st), "kube-apiserver", "status")
            if not dry:
                api.remove(R["pods"], pod, "Background")
                ctl.event(pod, "Normal", "Killing", "Stopping container %s" % pod["spec"]["containers"][0].get("name"),
                          "kubelet")
        return 201, {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "code": 201}

    def binding(self, ns, name, body):
        target = (body or {}).get("target") or {}
        s, ctl = self.app.s, self.app.ctl
        with s.lock:
            pod = self.app.api.get(R["pods"], ns, name)
            node = s.get(R["nodes"], "", target.get("name", ""))
            if node is None:
                raise not_found(R["nodes"], target.get("name", ""))
            if pod["spec"].get("nodeName"):
                raise ApiError(409, "Conflict", 'Operation cannot be fulfilled on pods/binding "%s": pod %s is already '
                               'assigned to node "%s"' % (name, name, pod["spec"]["nodeName"]), _details(R["pods"], name))
            ctl.bind(pod, node)
        return 201, {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "code": 201}

    def scale(self, method, res, ns, name, q, raw, dry):
        api = self.app.api

        def as_scale(o):
            m = o["metadata"]
            return {"kind": "Scale", "apiVersion": "autoscaling/v1",
                    "metadata": {k: m[k] for k in ("name", "namespace", "uid", "resourceVersion", "creationTimestamp")
                                 if k in m},
                    "spec": {"replicas": o["spec"].get("replicas", 1)},
                    "status": {"replicas": (o.get("status") or {}).get("replicas", 0),
                               "selector": format_selector(o["spec"].get("selector")).replace("<none>", "")}}
        with self.app.s.lock:
            obj = api.get(res, ns, name)
            if method == "GET":
                return 200, as_scale(obj)
            if method == "PUT":
                body = self.parse_body(raw)
                rv = (body.get("metadata") or {}).get("resourceVersion")
                if rv and rv != obj["metadata"]["resourceVersion"]:
                    raise conflict(res, name)
                replicas = (body.get("spec") or {}).get("replicas")
            elif method == "PATCH":
                ctype = (self.headers.get("Content-Type") or "").split(";")[0].strip()
                patch = self.parse_body(raw, ctype)
                cur = as_scale(obj)
                try:
                    new = json_patch(cur, patch) if ctype == "application/json-patch+json" else (
                        merge_patch(cur, patch) if ctype == "application/merge-patch+json" else smp(cur, patch))
                except PatchError as e:
                    raise bad_request(str(e))
                replicas = (new.get("spec") or {}).get("replicas")
            else:
                raise ApiError(405, "MethodNotAllowed", "the server does not allow this method on the requested resource")
            if not isinstance(replicas, int) or replicas < 0:
                e = Errs()
                e.invalid("spec.replicas", replicas, "must be greater than or equal to 0")
                e.raise_for(res, name)
            new_obj = clone(obj)
            new_obj["spec"]["replicas"] = replicas
            out = api.write(res, ns, name, obj, new_obj, self.manager(q), None, dry)
            return 200, as_scale(out)

    # test controls -------------------------------------------------------------------

    def control(self, method, path, q, raw):
        app, s, api, ctl = self.app, self.app.s, self.app.api, self.app.ctl
        parts = path.strip("/").split("/")[1:]
        body = json.loads(raw) if raw.strip() else {}
        try:
            out = self.control_inner(method, parts, q, body, app, s, api, ctl)
        except ApiError as e:
            return self.send_json(e.code, e.status())
        except (KeyError, ValueError, TypeError) as e:
            return self.send_json(400, ApiError(400, "BadRequest", "bad control request: %r" % e).status())
        if out is None:
            return self.send_json(404, ApiError(404, "NotFound", "no such control endpoint").status())
        return self.send_json(200, out)

    def control_inner(self, method, parts, q, body, app, s, api, ctl):
        o = app.o
        if parts == ["state"] and method == "GET":
            with s.lock:
                return {"resourceVersion": str(s.rv), "historyFloor": str(s.floor), "watchers": len(s.watchers),
                        "counts": {r.plural: len(s.objs[r.plural]) for r in RESOURCES}, "config": self.config_view()}
        if parts == ["objects"] and method == "GET":
            with s.lock:
                items = [obj for r in RESOURCES if q.get("resource") in (None, r.plural)
                         for obj in s.objs[r.plural].values()]
            return {"kind": "List", "apiVersion": "v1", "metadata": {"resourceVersion": str(s.rv)}, "items": items}
        if parts == ["requests"]:
            if method == "DELETE":
                with app.lock:
                    app.requests.clear()
                return {"cleared": True}
            since = int(q.get("since") or 0)
            with app.lock:
                return {"items": [r for r in app.requests if r["seq"] > since], "last": app.req_seq}
        if parts == ["config"] and method == "POST":
            for key, attr in (("readyDelay", "ready_delay"), ("pullBackoff", "pull_backoff"),
                              ("bookmarkInterval", "bookmark_interval"), ("namespaceDeleteDelay", "namespace_delete_delay")):
                if key in body:
                    setattr(o, attr, float(body[key]))
            for key, attr in (("badImages", "bad_images"), ("crashImages", "crash_images")):
                if key in body:
                    setattr(o, attr, list(body[key]))
            if "events" in body:
                o.events = bool(body["events"])
            if "latencyMs" in body:
                app.latency = float(body["latencyMs"]) / 1000.0
            return self.config_view()
        if parts == ["latency"] and method == "POST":
            app.latency = float(body.get("ms", 0)) / 1000.0
            return self.config_view()
        if parts == ["fail"]:
            with app.lock:
                if method == "POST":
                    rule = {"count": int(body.get("count", 1)), "code": int(body.get("code", 500))}
                    for k in ("reason", "message", "method", "path", "retryAfter", "drop"):
                        if k in body:
                            rule[k] = body[k]
                    app.faults.append(rule)
                elif method == "DELETE":
                    app.faults = []
                return {"faults": list(app.faults)}
        if parts == ["compact"] and method == "POST":
            with s.lock:
                s.compact()
                return {"historyFloor": str(s.floor)}
        if parts == ["tokens"] and method == "POST":
            app.extra_tokens = set(body.get("tokens") or [])
            return {"tokens": len(app.extra_tokens)}
        if parts and parts[0] == "nodes":
            with s.lock:
                if len(parts) == 1 and method == "POST":
                    made = []
                    count = int(body.get("count", 1))
                    for _ in range(count):
                        n = len(s.objs["nodes"]) + 1
                        nm = body.get("name") if count == 1 and body.get("name") else "%s%d" % (o.node_prefix, n)
                        while s.get(R["nodes"], "", nm) is not None:
                            n += 1
                            nm = "%s%d" % (o.node_prefix, n)
                        node = make_node(nm, n, str(body.get("cpu", o.node_cpu)), str(body.get("memory", o.node_memory)),
                                         str(body.get("pods", o.node_pods)), s.rng, body.get("labels"))
                        made.append(api.create(R["nodes"], "", node, "kubelet")["metadata"]["name"])
                    return {"created": made}
                if len(parts) == 2 and method == "DELETE":
                    node = api.get(R["nodes"], "", parts[1])
                    api.remove(R["nodes"], node, "Background")
                    return {"deleted": parts[1]}
                if len(parts) == 3 and parts[2] in ("ready", "condition") and method == "POST":
                    node = api.get(R["nodes"], "", parts[1])
                    ctype = body.get("type", "Ready")
                    status = str(body.get("status", "True"))
                    reason, msg = {
                        "True": ("KubeletReady", "kubelet is posting ready status"),
                        "False": ("KubeletNotReady", "container runtime network not ready: NetworkReady=false "
                                  "reason:NetworkPluginNotReady message:Network plugin returns error: cni plugin not initialized"),
                        "Unknown": ("NodeStatusUnknown", "Kubelet stopped posting node status.")}.get(status, ("", ""))
                    if ctype != "Ready":
                        reason, msg = body.get("reason", ""), body.get("message", "")
                    reason, msg = body.get("reason", reason), body.get("message", msg)
                    now = now_ts()
                    conds = []
                    for c in (node.get("status") or {}).get("conditions") or []:
                        c = dict(c)
                        if c.get("type") == ctype or (status == "Unknown" and ctype == "Ready"
                                                      and c.get("type") in ("MemoryPressure", "DiskPressure", "PIDPressure")):
                            if c.get("status") != status:
                                c["lastTransitionTime"] = now
                            c["status"] = status
                            if c.get("type") == ctype:
                                c["reason"], c["message"] = reason, msg
                            else:
                                c["reason"], c["message"] = "NodeStatusUnknown", "Kubelet stopped posting node status."
                            if status != "Unknown":
                                c["lastHeartbeatTime"] = now
                        conds.append(c)
                    if not any(c.get("type") == ctype for c in conds):
                        conds.append({"type": ctype, "status": status, "lastHeartbeatTime": now,
                                      "lastTransitionTime": now, "reason": reason, "message": msg})
                    if status == "Unknown":
                        o.frozen_nodes.add(parts[1])
                    else:
                        o.frozen_nodes.discard(parts[1])
                    out = ctl.put(R["nodes"], node, evolve(node, status=dict(node.get("status") or {}, conditions=conds)),
                                  "kubelet", "status")
                    return out
        if parts and parts[0] == "pods" and len(parts) == 4 and parts[3] == "ready" and method == "POST":
            with s.lock:
                pod = api.get(R["pods"], parts[1], parts[2])
                ready = bool(body.get("ready", True))
                st = dict(pod.get("status") or {})
                st["containerStatuses"] = [dict(c, ready=ready) for c in st.get("containerStatuses") or []]
                now = now_ts()
                st["conditions"] = [dict(c, status="True" if ready else "False", lastTransitionTime=now)
                                    if c.get("type") in ("Ready", "ContainersReady") else c
                                    for c in st.get("conditions") or []]
                return ctl.put(R["pods"], pod, evolve(pod, status=st), "kubelet", "status")
        return None

    def config_view(self):
        o = self.app.o
        return {"readyDelay": o.ready_delay, "pullBackoff": o.pull_backoff, "badImages": o.bad_images,
                "crashImages": o.crash_images, "events": o.events, "latencyMs": self.app.latency * 1000,
                "bookmarkInterval": o.bookmark_interval, "namespaceDeleteDelay": o.namespace_delete_delay,
                "discovery": o.discovery}


class Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 256
    allow_reuse_address = True


# --------------------------------------------------------------------------
# start-up
# --------------------------------------------------------------------------

def make_node(name, i, cpu, memory, pods, rng, labels=None):
    now = now_ts()

    def cond(t, reason, msg, status="False"):
        return {"type": t, "status": status, "lastHeartbeatTime": now, "lastTransitionTime": now,
                "reason": reason, "message": msg}
    lab = {"beta.kubernetes.io/arch": "amd64", "beta.kubernetes.io/os": "linux", "kubernetes.io/arch": "amd64",
           "kubernetes.io/hostname": name, "kubernetes.io/os": "linux"}
    lab.update(labels or {})
    res = {"cpu": canonical_quantity(cpu), "memory": canonical_quantity(memory), "pods": canonical_quantity(pods),
           "ephemeral-storage": "100Gi", "hugepages-1Gi": "0", "hugepages-2Mi": "0"}
    return {"apiVersion": "v1", "kind": "Node",
            "metadata": {"name": name, "labels": lab,
                         "annotations": {"node.alpha.kubernetes.io/ttl": "0",
                                         "volumes.kubernetes.io/controller-managed-attach-detach": "true"}},
            "spec": {"podCIDR": "10.244.%d.0/24" % (i % 256), "podCIDRs": ["10.244.%d.0/24" % (i % 256)],
                     "providerID": "fake://" + name},
            "status": {"capacity": dict(res), "allocatable": dict(res),
                       "conditions": [cond("MemoryPressure", "KubeletHasSufficientMemory", "kubelet has sufficient memory available"),
                                      cond("DiskPressure", "KubeletHasNoDiskPressure", "kubelet has no disk pressure"),
                                      cond("PIDPressure", "KubeletHasSufficientPID", "kubelet has sufficient PID available"),
                                      cond("Ready", "KubeletReady", "kubelet is posting ready status", "True")],
                       "addresses": [{"type": "InternalIP", "address": "10.0.%d.%d" % (i // 240, i % 240 + 10)},
                                     {"type": "Hostname", "address": name}],
                       "daemonEndpoints": {"kubeletEndpoint": {"Port": 10250}},
                       "nodeInfo": {"machineID": "%032x" % rng.getrandbits(128),
                                    "systemUUID": str(uuid.UUID(int=rng.getrandbits(128), version=4)),
                                    "bootID": str(uuid.UUID(int=rng.getrandbits(128), version=4)),
                                    "kernelVersion": "6.1.0-31-amd64", "osImage": "Debian GNU/Linux 12 (bookworm)",
                                    "containerRuntimeVersion": "containerd://1.7.24",
                                    "kubeletVersion": SERVER_VERSION, "kubeProxyVersion": SERVER_VERSION,
                                    "operatingSystem": "linux", "architecture": "amd64"}}}


def load_nodes_file(path):
    with open(path) as f:
        data = json.load(f)
    if isinstance(data, list):
        return data
    if data.get("kind") in ("NodeList", "List"):
        return data.get("items") or []
    return [data]


def make_tls(d):
    os.makedirs(d, exist_ok=True)
    ca, ca_key = os.path.join(d, "ca.crt"), os.path.join(d, "ca.key")
    crt, key = os.path.join(d, "server.crt"), os.path.join(d, "server.key")
    if not (os.path.exists(crt) and os.path.exists(key) and os.path.exists(ca)):
        run = lambda *a: subprocess.run(a, check=True, capture_output=True)  # noqa: E731
        run("openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
            "-keyout", ca_key, "-out", ca, "-days", "30", "-subj", "/CN=kubeapi-fake-ca",
            "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign")
        csr = os.path.join(d, "server.csr")
        run("openssl", "req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
            "-keyout", key, "-out", csr, "-subj", "/CN=kube-apiserver")
        ext = os.path.join(d, "server.ext")
        with open(ext, "w") as f:
            f.write("subjectAltName=IP:127.0.0.1,DNS:localhost,DNS:kubernetes.default.svc\n"
                    "extendedKeyUsage=serverAuth\nkeyUsage=critical,digitalSignature\nbasicConstraints=CA:FALSE\n")
        run("openssl", "x509", "-req", "-in", csr, "-CA", ca, "-CAkey", ca_key, "-CAcreateserial", "-out", crt,
            "-days", "30", "-extfile", ext)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(crt, key)
    ctx.set_alpn_protocols(["http/1.1"])
    return ctx, ca


def write_kubeconfig(path, server, token, token_file, ca):
    cluster = {"server": server}
    if ca:
        cluster["certificate-authority"] = os.path.abspath(ca)
    user = {"tokenFile": os.path.abspath(token_file)} if token_file else ({"token": token} if token else {})
    cfg = {"apiVersion": "v1", "kind": "Config", "preferences": {},
           "clusters": [{"name": "fake", "cluster": cluster}],
           "users": [{"name": "fake", "user": user}],
           "contexts": [{"name": "fake", "context": {"cluster": "fake", "user": "fake", "namespace": "default"}}],
           "current-context": "fake"}
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        json.dump(cfg, f, indent=2)
    os.replace(tmp, path)


def parse_args(argv=None):
    ap = argparse.ArgumentParser(description="A stand-in Kubernetes API server for tests (see the module docstring).")
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=0, help="0 = pick a free port (see --port-file)")
    ap.add_argument("--port-file", help="write the port here once listening")
    ap.add_argument("--kubeconfig", help="write a kubeconfig for this server (token, CA) here")
    ap.add_argument("--token", help="accepted bearer token")
    ap.add_argument("--token-file", help="file of accepted bearer tokens, one a line, re-read when it changes")
    ap.add_argument("--tls-dir", help="serve HTTPS; throw-away CA and server cert made here (ca.crt for clients)")
    ap.add_argument("--nodes", type=int, default=3, help="number of nodes to seed (node-1..N)")
    ap.add_argument("--node-prefix", default="node-")
    ap.add_argument("--node-cpu", default="4")
    ap.add_argument("--node-memory", default="8Gi")
    ap.add_argument("--node-pods", default="110")
    ap.add_argument("--nodes-file", action="append", default=[],
                    help="JSON Node, NodeList/List or array of Nodes to seed (repeatable)")
    ap.add_argument("--ready-delay", type=float, default=0.0, help="seconds from binding until a pod is Ready")
    ap.add_argument("--pull-backoff", type=float, default=1.0, help="seconds from ErrImagePull to ImagePullBackOff")
    ap.add_argument("--bad-images", default="doesnotexist",
                    help="comma-separated substrings: images containing one never pull")
    ap.add_argument("--crash-images", default="crashloop",
                    help="comma-separated substrings: containers of such images are in CrashLoopBackOff")
    ap.add_argument("--storage-class", default="standard", help="default storageClassName of new PVCs")
    ap.add_argument("--watch-history", type=int, default=20000, help="events kept for watch resumption")
    ap.add_argument("--bookmark-interval", type=float, default=5.0, help="seconds between BOOKMARK events")
    ap.add_argument("--discovery", choices=["aggregated", "legacy"], default="aggregated")
    ap.add_argument("--too-large-rv-wait", type=float, default=3.0,
                    help="seconds a watch from a resourceVersion the server has not reached waits before 504")
    ap.add_argument("--no-events", dest="events", action="store_false", help="do not create Event objects")
    ap.add_argument("--max-events", type=int, default=2000)
    ap.add_argument("--heartbeat", type=float, default=0.0, help="seconds between node heartbeats (0 = none)")
    ap.add_argument("--namespace-delete-delay", type=float, default=0.0,
                    help="seconds a deleted namespace stays Terminating")
    ap.add_argument("--latency-ms", type=float, default=0.0, help="added to every Kubernetes request")
    ap.add_argument("--capture", help="append every JSON body the server returns (and watch events) here")
    ap.add_argument("--seed", type=int, default=1, help="random seed (names, uids)")
    opts = ap.parse_args(argv)
    opts.bad_images = [x for x in opts.bad_images.split(",") if x]
    opts.crash_images = [x for x in opts.crash_images.split(",") if x]
    opts.frozen_nodes = set()
    return opts


def build(opts):
    rng = random.Random(opts.seed)
    store = Store(opts.watch_history, rng)
    api = Api(store, opts)
    ctl = Controller(api, opts)
    for ns in ("default", "kube-node-lease", "kube-public", "kube-system"):
        api.create(R["namespaces"], "", {"metadata": {"name": ns}}, "kube-apiserver")
    for i in range(1, opts.nodes + 1):
        api.create(R["nodes"], "", make_node("%s%d" % (opts.node_prefix, i), i, opts.node_cpu, opts.node_memory,
                                             opts.node_pods, rng), "kubelet")
    for path in opts.nodes_file:
        for n in load_nodes_file(path):
            api.create(R["nodes"], "", n, "kubelet")
    return store, api, ctl


def main(argv=None):
    opts = parse_args(argv)
    store, api, ctl = build(opts)
    server = Server((opts.host, opts.port), Handler)
    app = App(api, ctl, opts)
    server.app = app
    ca = None
    scheme = "http"
    if opts.tls_dir:
        ctx, ca = make_tls(opts.tls_dir)
        server.socket = ctx.wrap_socket(server.socket, server_side=True, do_handshake_on_connect=False)
        scheme = "https"
    port = server.server_address[1]
    app.address = "%s:%d" % (opts.host, port)
    url = "%s://%s:%d" % (scheme, opts.host, port)
    ctl.start()
    if opts.heartbeat > 0:
        with store.lock:
            ctl.later(opts.heartbeat, ("heartbeat",))
    if opts.kubeconfig:
        write_kubeconfig(opts.kubeconfig, url, opts.token, opts.token_file, ca)
    if opts.port_file:
        tmp = opts.port_file + ".tmp"
        with open(tmp, "w") as f:
            f.write(str(port))
        os.replace(tmp, opts.port_file)
    sys.stderr.write("kubeapi: serving %s (%d nodes)\n" % (url, len(store.objs["nodes"])))
    sys.stderr.flush()
    try:
        server.serve_forever(poll_interval=0.5)
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
