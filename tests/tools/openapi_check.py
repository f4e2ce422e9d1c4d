#!/usr/bin/python3
"""openapi_check.py - checks vigil's OpenAPI document, and every e2e response against it.

  openapi_check.py document DOC.json META.json
      DOC validates against the OpenAPI 3.1 meta-schema META (the OpenAPI Initiative's
      schema/2022-10-07, tests/fixtures/openapi/), every schema in DOC is a valid JSON Schema
      2020-12 schema, every local "$ref" resolves, every operation has an operationId (unique)
      and a security requirement with one of the scopes read/write/admin, or none.
  openapi_check.py responses DOC.json LOG.ndjson
      Every line of LOG (tests/e2e/resplog.h: method, path, status, content_type, body) matches
      DOC: an operation for its method and path (or, for a path no route has, the document's
      NoRoute 404 / MethodNotAllowed 405 / BadRequest 400 answers), a response for its status,
      a media type for its Content-Type, and, for a JSON body, the schema.  Bodies that are not
      JSON (model sources, /metrics) are checked for their content type only.  A request the
      server accepted (2xx) must also be one the document accepts: every query parameter
      declared, its value valid for its schema.
  openapi_check.py selftest DOC.json META.json
      Feeds the two checks above crafted inputs that must fail (a body with an unknown member, an
      undocumented status, a wrong problem code, a wrong Content-Type, a document with a broken
      "$ref"...) and ones that must pass, so that the checks are shown to be able to fail.

Exit status 0 when everything matches, 1 otherwise (each mismatch is printed).  One process for
the whole log: validators are built once per (operation, status, media type).  Needs Debian's
python3-jsonschema (Draft 2020-12 support: 4.x).
"""
import json
import os
import sys
import tempfile
import urllib.parse

import jsonschema

METHODS = ("get", "put", "post", "delete", "options", "head", "patch", "trace")
SCOPES = ("read", "write", "admin")
MAX_SEGMENTS = 16  # api/router.h ROUTER_MAX_SEGMENTS
HTTP_LAYER = ("400", "413", "500", "503")  # api/http.c answers these on every route


def load_json(path):
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def walk_schemas(doc):
    """Yields (where, schema) for every Schema Object of doc."""
    for name, s in doc.get("components", {}).get("schemas", {}).items():
        yield "components.schemas.%s" % name, s

    def media(where, content):
        for mt, m in (content or {}).items():
            if "schema" in m:
                yield "%s content %s" % (where, mt), m["schema"]

    def params(where, plist):
        for p in plist or []:
            if "schema" in p:
                yield "%s parameter %s" % (where, p.get("name")), p["schema"]

    comp = doc.get("components", {})
    for name, p in comp.get("parameters", {}).items():
        yield from params("components.parameters", [p])
    for name, r in comp.get("responses", {}).items():
        yield from media("components.responses.%s" % name, r.get("content"))
    for name, h in comp.get("headers", {}).items():
        if "schema" in h:
            yield "components.headers.%s" % name, h["schema"]
    for path, item in doc.get("paths", {}).items():
        yield from params(path, item.get("parameters"))
        for m in METHODS:
            op = item.get(m)
            if not op:
                continue
            where = "%s %s" % (m.upper(), path)
            yield from params(where, op.get("parameters"))
            yield from media(where + " requestBody", op.get("requestBody", {}).get("content"))
            for st, r in op.get("responses", {}).items():
                yield from media("%s %s" % (where, st), r.get("content"))
                for hn, h in (r.get("headers") or {}).items():
                    if "schema" in h:
                        yield "%s %s header %s" % (where, st, hn), h["schema"]


def local_refs(node, where="#"):
    """Yields (where, ref) for every "$ref" string in node."""
    if isinstance(node, dict):
        for k, v in node.items():
            if k == "$ref" and isinstance(v, str):
                yield where, v
            else:
                yield from local_refs(v, where + "/" + k)
    elif isinstance(node, list):
        for i, v in enumerate(node):
            yield from local_refs(v, "%s/%d" % (where, i))


def pointer(doc, ref):
    """The node ref ("#/a/b") designates in doc, or raises KeyError."""
    if not ref.startswith("#/"):
        raise KeyError(ref)
    node = doc
    for part in ref[2:].split("/"):
        part = part.replace("~1", "/").replace("~0", "~")
        node = node[int(part)] if isinstance(node, list) else node[part]
    return node


def check_document(doc, meta):
    """Returns a list of problems (empty: the document is fine)."""
    errors = []
    v = jsonschema.Draft202012Validator(meta)
    for e in sorted(v.iter_errors(doc), key=lambda e: list(e.absolute_path)):
        errors.append("meta-schema: at /%s: %s" % ("/".join(map(str, e.absolute_path)),
                                                     e.message[:300]))
    for where, s in walk_schemas(doc):
        try:
            jsonschema.Draft202012Validator.check_schema(s)
        except jsonschema.SchemaError as e:
            errors.append("%s: not a valid JSON Schema 2020-12 schema: %s" % (where, e.message))
    for where, ref in local_refs(doc):
        try:
            pointer(doc, ref)
        except (KeyError, IndexError, ValueError, TypeError):
            errors.append("%s: $ref %s resolves to nothing" % (where, ref))
    seen = {}
    for path, item in doc.get("paths", {}).items():
        for m in METHODS:
            op = item.get(m)
            if op is None:
                continue
            what = "%s %s" % (m.upper(), path)
            oid = op.get("operationId")
            if not oid:
                errors.append("%s: no operationId" % what)
            elif oid in seen:
                errors.append("%s: operationId %s also names %s" % (what, oid, seen[oid]))
            else:
                seen[oid] = what
            sec = op.get("security")
            if sec is None:
                errors.append("%s: no security (use [] for a public route)" % what)
            elif sec and (len(sec) != 1 or list(sec[0]) != ["bearer"] or
                          len(sec[0]["bearer"]) != 1 or sec[0]["bearer"][0] not in SCOPES):
                errors.append("%s: security must be [] or [{\"bearer\": [one of %s]}], not %s"
                              % (what, "/".join(SCOPES), json.dumps(sec)))
            # what the HTTP layer may answer on any route (framing, body limit, a crash of a
            # handler's allocation, the connection limit)
            missing = [st for st in HTTP_LAYER if st not in op.get("responses", {})]
            if missing:
                errors.append("%s: the HTTP layer's answers %s are not documented"
                              % (what, ", ".join(missing)))
    return errors


# ---- responses --------------------------------------------------------------------------------

def segments(path):
    """The segments of a request path as the router splits it, or None (no route can match)."""
    path = urllib.parse.unquote(path.split("?", 1)[0])
    if not path.startswith("/"):
        return None
    if path == "/":
        return []
    segs = path[1:].split("/")
    if len(segs) > MAX_SEGMENTS or any(s == "" for s in segs):
        return None
    return segs


def template_match(template, segs):
    t = template[1:].split("/") if template != "/" else []
    if len(t) != len(segs):
        return None
    literal = 0
    for a, b in zip(t, segs):
        if a.startswith("{") and a.endswith("}"):
            continue
        if a != b:
            return None
        literal += 1
    return literal


def base_media_type(ct):
    return ct.split(";", 1)[0].strip().lower() if ct else None


def is_json_type(mt):
    return mt is not None and (mt == "application/json" or mt.endswith("+json"))


class Checker:
    def __init__(self, doc):
        self.doc = doc
        self.resolver = jsonschema.RefResolver(base_uri="", referrer=doc)
        self.validators = {}
        self.seen_ops = set()

    def deref(self, node):
        while isinstance(node, dict) and "$ref" in node and len(node) == 1:
            node = pointer(self.doc, node["$ref"])
        return node

    def find(self, method, path):
        """(template, operation) for the request, or (None, why) when no route answers it:
        why is "NoRoute" or "MethodNotAllowed" (the document's components.responses)."""
        segs = segments(path)
        if segs is None:
            return None, "NoRoute"
        best, path_matched = None, False
        for template, item in self.doc.get("paths", {}).items():
            lit = template_match(template, segs)
            if lit is None:
                continue
            path_matched = True
            op = item.get(method.lower())
            if op is not None and (best is None or lit > best[0]):
                best = (lit, template, op)
        if best:
            return best[1], best[2]
        return None, "MethodNotAllowed" if path_matched else "NoRoute"

    def response_for(self, method, path, status):
        """(response object, label) or (None, error message)."""
        template, op = self.find(method, path)
        st = str(status)
        if template is None:
            comp = self.doc.get("components", {}).get("responses", {})
            # Before routing, the HTTP layer may answer any path 400 (framing) or 503 (a
            # connection over VIGIL_MAX_CONNECTIONS): the document's BadRequest / Unavailable.
            name = (op if st == allowed_status(op) else "BadRequest" if st == "400"
                    else "Unavailable" if st == "503" else None)
            if name is None or name not in comp:
                return None, ("no operation is %s %s: the answer must be %s (%s), not %s"
                              % (method, path.split("?")[0], allowed_status(op), op, st))
            return comp[name], "%s %s: %s" % (method, path.split("?")[0][:80], name)
        label = "%s %s" % (method.upper(), template)
        self.seen_ops.add(label)
        responses = op.get("responses", {})
        r = responses.get(st) or responses.get(st[0] + "XX") or responses.get("default")
        if r is None:
            return None, "%s: status %s is not documented (documented: %s)" % (
                label, st, ", ".join(sorted(responses)))
        return self.deref(r), "%s %s" % (label, st)

    def validator(self, key, schema):
        v = self.validators.get(key)
        if v is None:
            v = jsonschema.Draft202012Validator(schema, resolver=self.resolver)
            self.validators[key] = v
        return v

    def check(self, rec):
        """Returns None when the logged response matches, else a message.  A 400 may also be the
        document's BadRequest answer, which the HTTP layer gives before routing on any path."""
        msg = self.check_as(rec, *self.response_for(rec["method"], rec["path"], rec["status"]))
        if msg and rec["status"] == 400:
            comp = self.doc.get("components", {}).get("responses", {})
            if "BadRequest" in comp and not self.check_as(rec, comp["BadRequest"], "BadRequest"):
                return None
        if not msg and 200 <= rec["status"] < 300:
            msg = self.check_query(rec)
        return msg

    def parameters(self, template, op):
        """The query parameters of an operation (path-level and its own, $refs resolved)."""
        out = {}
        item = self.doc["paths"][template]
        for p in list(item.get("parameters", [])) + list(op.get("parameters", [])):
            p = self.deref(p)
            if p.get("in") == "query":
                out[p["name"]] = p
        return out

    def check_query(self, rec):
        """A request the server accepted (2xx) must be one the document accepts: every query
        parameter declared, its value valid for the schema.  Returns None or a message."""
        template, op = self.find(rec["method"], rec["path"])
        if template is None or "?" not in rec["path"]:
            return None
        declared = self.parameters(template, op)
        query = urllib.parse.parse_qsl(rec["path"].split("?", 1)[1], keep_blank_values=True)
        label = "%s %s" % (rec["method"].upper(), template)
        for name, value in query:
            p = declared.get(name)
            if p is None:
                return "%s answered %s to query parameter %r, which the document does not declare" % (
                    label, rec["status"], name)
            schema = p.get("schema", {})
            resolved = self.deref(schema)
            if resolved.get("type") in ("integer", "number"):
                try:
                    value = int(value) if resolved["type"] == "integer" else float(value)
                except ValueError:
                    pass
            errs = list(self.validator((label, "query", name), schema).iter_errors(value))
            if errs:
                return "%s answered %s to %s=%r, which the document refuses: %s" % (
                    label, rec["status"], name, value, errs[0].message[:200])
        return None

    def check_as(self, rec, resp, label):
        if resp is None:
            return label
        content = resp.get("content")
        ct = rec.get("content_type")
        # RFC 9110 8.3: a body without Content-Type may be taken as application/octet-stream
        mt = base_media_type(ct) if ct else "application/octet-stream" if rec.get("len") else None
        if not content:
            if rec.get("len", 0) == 0:
                return None
            return "%s: documented without a body, got %s bytes of %s" % (label, rec["len"], ct)
        if mt not in content:
            ranges = [k for k in content if k.endswith("/*") and mt and mt.startswith(k[:-1])]
            if not ranges:
                return "%s: Content-Type %s is not documented (documented: %s)" % (
                    label, ct, ", ".join(content))
            media = content[ranges[0]]
        else:
            media = content[mt]
        body = rec.get("body")
        if body is None or "schema" not in media:
            return None
        if not is_json_type(mt):
            return None
        try:
            value = json.loads(body)
        except ValueError as e:
            return "%s: the %s body is not JSON: %s" % (label, mt, e)
        v = self.validator((label, mt), media["schema"])
        errs = sorted(v.iter_errors(value), key=lambda e: list(e.absolute_path))
        if errs:
            e = errs[0]
            return "%s: body does not match the schema at /%s: %s" % (
                label, "/".join(map(str, e.absolute_path)), e.message[:300])
        return None


def allowed_status(why):
    return {"NoRoute": "404", "MethodNotAllowed": "405"}.get(why, "?")


def check_log(doc, lines):
    """Checks the NDJSON lines; returns (count, failures [(lineno, rec, message)], checker)."""
    c = Checker(doc)
    failures, n = [], 0
    for i, line in enumerate(lines, 1):
        if not line.strip():
            continue
        n += 1
        try:
            rec = json.loads(line)
        except ValueError as e:
            failures.append((i, None, "unreadable log line: %s" % e))
            continue
        msg = c.check(rec)
        if msg:
            failures.append((i, rec, msg))
    return n, failures, c


def all_operations(doc):
    return {"%s %s" % (m.upper(), p) for p, item in doc.get("paths", {}).items()
            for m in METHODS if m in item}


def cmd_responses(doc_path, log_path):
    doc = load_json(doc_path)
    try:
        with open(log_path, "rb") as f:
            raw = f.read()
    except OSError as e:
        print("openapi: no response log %s: %s" % (log_path, e))
        return 1
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        print("openapi: the response log is not UTF-8 (a JSON body with invalid UTF-8?): %s" % e)
        return 1
    n, failures, c = check_log(doc, text.splitlines())
    if n == 0:
        print("openapi: the response log %s is empty: the e2e client logged nothing" % log_path)
        return 1
    shown = set()
    for i, rec, msg in failures:
        key = msg  # names the operation and status (not the ids in the path): one line per kind
        if key in shown:
            continue
        shown.add(key)
        if len(shown) > 40:
            break
        who = "line %d" % i if rec is None else "%s: %s %s -> %s" % (
            rec.get("bin"), rec["method"], rec["path"][:160], rec["status"])
        print("MISMATCH %s\n    %s" % (who, msg))
    never = sorted(all_operations(doc) - c.seen_ops)
    print("openapi: %d responses checked against %s, %d mismatches (%d distinct); %d of %d "
          "operations exercised" % (n, doc_path, len(failures), len(shown), len(c.seen_ops),
                                    len(all_operations(doc))))
    if never:
        print("openapi: operations no e2e test called: %s" % ", ".join(never))
    return 1 if failures else 0


def cmd_document(doc_path, meta_path):
    doc, meta = load_json(doc_path), load_json(meta_path)
    errors = check_document(doc, meta)
    for e in errors:
        print("INVALID " + e)
    print("openapi: %s %s against %s (%s)" % (doc_path, "is invalid" if errors else "validates",
                                              meta.get("$id"), meta_path))
    return 1 if errors else 0


# ---- selftest ---------------------------------------------------------------------------------

def rec(method, path, status, ctype, body):
    return json.dumps({"bin": "selftest", "method": method, "path": path, "status": status,
                       "content_type": ctype, "body": body, "len": len(body or "")})


TITLES = {400: "Bad Request", 404: "Not Found", 405: "Method Not Allowed",
          503: "Service Unavailable"}


def problem(status, code, body_status=None):
    return json.dumps({"type": "https://vigil.dev/problems/" + code, "title": TITLES[status],
                       "status": body_status or status, "detail": "d", "code": code})


PJ = "application/problem+json"
GOOD = [
    rec("GET", "/health", 200, "application/json", '{"status":"ok"}'),
    rec("GET", "/no/such/route", 404, PJ, problem(404, "not_found")),
    rec("DELETE", "/health", 405, PJ, problem(405, "method_not_allowed")),
    rec("GET", "/api/v1/users?limit=0", 400, PJ, problem(400, "validation_failed")),
    rec("GET", "/metrics", 200, "text/plain; version=0.0.4; charset=utf-8", None),
    rec("GET", "/api/v1/users?limit=500", 200, "application/json", '{"data":[],"next_cursor":null}'),
    # the connection limit's refusal, which comes before routing (e2e_conn_limit)
    rec("GET", "/health", 503, PJ, problem(503, "unavailable")),
    rec("GET", "/ready", 503, PJ, problem(503, "unavailable")),
    rec("GET", "/no/such/route", 503, PJ, problem(503, "unavailable")),
]
BAD = [
    ("a member the schema does not have",
     rec("GET", "/health", 200, "application/json", '{"status":"ok","extra":1}')),
    ("a wrong value", rec("GET", "/health", 200, "application/json", '{"status":"fine"}')),
    ("an undocumented status", rec("GET", "/health", 418, "application/json", "{}")),
    ("a problem code the operation does not list",
     rec("GET", "/api/v1/users", 400, PJ, problem(400, "made_up_code"))),
    ("a problem whose status member is not the HTTP status",
     rec("GET", "/api/v1/users", 400, PJ, problem(400, "validation_failed", body_status=404))),
    ("a problem without its detail",
     rec("GET", "/no/such/route", 404, PJ, '{"type":"https://vigil.dev/problems/not_found",'
         '"title":"Not Found","status":404,"code":"not_found"}')),
    ("a 200 for a path no route has", rec("GET", "/no/such/route", 200, "application/json", "{}")),
    ("a 404 for a route's path with another method",
     rec("DELETE", "/health", 404, PJ, problem(404, "not_found"))),
    ("an undocumented Content-Type",
     rec("GET", "/metrics", 200, "application/json", '{"a":1}')),
    ("a 200 to a query parameter the document does not declare",
     rec("GET", "/api/v1/users?colour=red", 200, "application/json",
         '{"data":[],"next_cursor":null}')),
    ("a 200 to a query value the document refuses",
     rec("GET", "/api/v1/users?limit=501", 200, "application/json",
         '{"data":[],"next_cursor":null}')),
    ("a body that is not JSON",
     rec("GET", "/health", 200, "application/json", "ok")),
]


def cmd_selftest(doc_path, meta_path):
    doc, meta = load_json(doc_path), load_json(meta_path)
    fails = 0
    n, failures, _ = check_log(doc, GOOD)
    for i, r, msg in failures:
        print("SELFTEST a valid response was refused: %s: %s" % (GOOD[i - 1], msg))
        fails += 1
    for why, line in BAD:
        _, failures, _ = check_log(doc, [line])
        if not failures:
            print("SELFTEST the response check passed %s: %s" % (why, line))
            fails += 1
    # the document check: the real document passes, broken copies fail
    if check_document(doc, meta):
        print("SELFTEST the real document fails the document check")
        fails += 1
    broken = []
    d = json.loads(json.dumps(doc))
    d["paths"]["/health"]["get"]["responses"]["200"].pop("description")
    broken.append(("a response without description", d))
    d = json.loads(json.dumps(doc))
    d["paths"]["/health"]["get"]["x_not_a_field"] = 1
    broken.append(("an unknown member of an operation", d))
    d = json.loads(json.dumps(doc))
    d["paths"]["/health"]["get"]["responses"]["200"]["content"]["application/json"]["schema"] = {
        "$ref": "#/components/schemas/NoSuchSchema"}
    broken.append(("a $ref to nothing", d))
    d = json.loads(json.dumps(doc))
    d["paths"]["/health"]["get"]["responses"]["200"]["content"]["application/json"]["schema"] = {
        "type": "no-such-type"}
    broken.append(("a schema that is not JSON Schema", d))
    d = json.loads(json.dumps(doc))
    d["paths"]["/health"]["get"]["security"] = [{"bearer": ["root"]}]
    broken.append(("an unknown scope", d))
    d = json.loads(json.dumps(doc))
    d["paths"]["/health"]["get"]["responses"].pop("503", None)
    broken.append(("an operation without the connection limit's 503", d))
    for why, d in broken:
        if not check_document(d, meta):
            print("SELFTEST the document check passed %s" % why)
            fails += 1
    # the log reader: a file that is not UTF-8 is refused
    with tempfile.NamedTemporaryFile("wb", suffix=".ndjson", delete=False) as f:
        f.write(b'{"bin":"x","method":"GET","path":"/health","status":200,'
                b'"content_type":"application/json","body":"\xff","len":1}\n')
    try:
        with open(os.devnull, "w") as null:
            saved, sys.stdout = sys.stdout, null
            try:
                rc = cmd_responses(doc_path, f.name)
            finally:
                sys.stdout = saved
        if rc == 0:
            print("SELFTEST a log with invalid UTF-8 passed")
            fails += 1
    finally:
        os.unlink(f.name)
    print("openapi selftest: %d valid responses, %d bad ones and %d broken documents tried, "
          "%d unexpected results" % (len(GOOD), len(BAD), len(broken), fails))
    return 1 if fails else 0


def main(argv):
    if len(argv) == 4 and argv[1] == "document":
        return cmd_document(argv[2], argv[3])
    if len(argv) == 4 and argv[1] == "responses":
        return cmd_responses(argv[2], argv[3])
    if len(argv) == 4 and argv[1] == "selftest":
        return cmd_selftest(argv[2], argv[3])
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv))
