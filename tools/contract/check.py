#!/usr/bin/env python3
"""OpenAPI contract check for the requests asana-docspace sends.

Validates recorded HTTP requests (the simulators' request log, see
docs/architecture.md, "Simulator request log") against the vendors' own OpenAPI
documents with a real validator: openapi-core's request validation (path and
method matching, path/query parameters, request body schema).

Setup (Python 3.11; a virtualenv keeps the pinned versions away from the system):

    python3 -m venv tools/contract/.venv          # git-ignored
    tools/contract/.venv/bin/pip install -r tools/contract/requirements.txt

Usage (PY=tools/contract/.venv/bin/python, or any python3 with the requirements):

    $PY tools/contract/check.py [options] LOG.jsonl [LOG2.jsonl ...]   # '-' = stdin
    $PY tools/contract/check.py --explain            # show the spec patches, no input needed
    $PY tools/contract/test_check.py                 # self-test (valid passes, invalid fails)

Options:
    --specs DIR     spec directory holding asana/asana_oas.yaml and docspace/*.json
                    (default: $ASANA_DOCSPACE_SPECS, else <repo>/../shared/specs)
    --explain       print every in-memory change made to the vendor specs, and why
    --no-cache      do not read or write the parsed-spec cache
    --no-extra-checks
                    only openapi-core's checks (see "Extra strictness" below)
    -v, --verbose   also print one line per valid request, with the operationId it matched

Input: JSON lines, one request per line:
    {"service":"asana"|"docspace","method":"GET","path":"/api/1.0/tasks/1201",
     "query":"opt_fields=assignee.email,assignee.name","content_type":"application/json",
     "body":<json or null>,"status":200}
Asana paths carry the /api/1.0 prefix (spec server https://app.asana.com/api/1.0);
DocSpace paths start with /api/2.0, as the spec's paths do. `status` is ignored: what the
client sent is checked whatever the simulator answered. Paths under /_sim/ are the
simulators' own control endpoints and are skipped (counted as skipped). Blank lines are ignored.

Output: one line per invalid request,
    FILE:LINE: SERVICE METHOD PATH[?QUERY] (operationId): reason | reason ...
then a final line
    contract: N requests checked, M violations, K skipped
Exit status: 0 when M == 0, 1 when M > 0, 2 on usage errors (missing file, bad JSON line,
unknown service, spec not found, openapi-core not installed).

Specs: Asana `asana/asana_oas.yaml` (OpenAPI 3.0.0); DocSpace `docspace/api-docs.json`
(OpenAPI 3.0.4), falling back to people_2.0.json, files_2.0.json, api_2.0.json (in that order)
only when api-docs.json has no path+method for the request. The parsed and patched specs
are cached as JSON in $XDG_CACHE_HOME/asana-docspace-contract (or
/tmp/asana-docspace-contract-<uid>), keyed by the spec file's sha256 and this script's sha256.

Changes made to the specs in memory (run --explain for counts):
  Relaxations (exactly two, both deliberate):
    R1 Asana `opt_fields` query parameters: the `enum` on the array items is dropped (the
       enums list one nesting level only; the API accepts deeper paths such as
       assignee.email). Type, style form and explode false (comma-separated) are kept.
    R2 DocSpace `EmployeeType`: integers 0-4 are accepted besides the names (the spec's own
       InviteUsersRequestDto example sends "type": 1; the newer people_2.0.json already says
       oneOf[names, 0-4]). The client sends integers because the names changed meaning in v3.0.
  Quirk fixes (the spec as written makes openapi-core reject every request, valid or not):
    Q1 DocSpace allOf + additionalProperties:false (C# inheritance: allOf[$ref closed base,
       {own properties}] with additionalProperties:false beside allOf). Under JSON Schema
       rules no object can satisfy it (each part forbids the other part's keys). Such schemas
       are flattened into one closed object schema with the union of the properties and
       required lists, so unknown keys are still rejected.
    Q2 DocSpace `style: deepObject` query parameters that openapi-core cannot deserialize
       (array schemas; objects without explode) made every request to the operation fail,
       even without the parameter. Arrays become style form + explode (ASP.NET binds repeated
       keys), objects get explode: true.
    Q3 Asana YAML integer keys (response codes such as 200:) become strings, as in JSON.
  Not from the log: the log never records Authorization, so a placeholder
  `Authorization: Bearer <redacted>` header is supplied; the security check then asserts
  that the operation accepts bearer authentication.
  Extra strictness (derived from the spec, not a rule list; off with --no-extra-checks):
  a query parameter the operation does not declare, a body sent to an operation that
  declares no requestBody, and a JSON body key that no applicable schema declares, are
  violations. openapi-core alone ignores all three. The body-key check is allOf-aware and
  applies only to objects whose schema lists `properties` and is silent on
  additionalProperties (Asana's style: e.g. {"user": ...} without the {"data": ...} envelope
  is caught); additionalProperties false is openapi-core's own check.
"""

from __future__ import annotations

import copy
import hashlib
import json
import os
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Optional
from urllib.parse import parse_qsl, urlsplit

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
DEFAULT_SPECS = REPO.parent / "shared" / "specs"

SERVICES: dict[str, dict[str, Any]] = {
    "asana": {
        "files": ["asana/asana_oas.yaml"],
        # The spec's server is absolute (https://app.asana.com/api/1.0); logged paths carry
        # /api/1.0, so the full URL is scheme+host of that server + logged path.
        "host": None,
    },
    "docspace": {
        "files": [
            "docspace/api-docs.json",
            "docspace/people_2.0.json",
            "docspace/files_2.0.json",
            "docspace/api_2.0.json",
        ],
        # servers: [{url: "{baseUrl}", default ""}]; paths include /api/2.0. openapi-core
        # compares only the path part of a relative server URL, so the host is arbitrary.
        "host": "https://docspace.invalid",
    },
}

PATH_PREFIX = {"asana": "/api/1.0", "docspace": "/api/2.0"}
SIM_PREFIX = "/_sim/"
PLACEHOLDER_AUTH = "Bearer <redacted>"


class UsageError(Exception):
    """Exit status 2."""


# --------------------------------------------------------------------------------------
# Spec patches. Each returns a list of notes (strings) for --explain.
# --------------------------------------------------------------------------------------

def _resolve(spec: dict, node: Any) -> Any:
    """Follow local $refs ('#/a/b')."""
    seen = 0
    while isinstance(node, dict) and "$ref" in node:
        ref = node["$ref"]
        if not ref.startswith("#/"):
            return node
        cur: Any = spec
        for part in ref[2:].split("/"):
            cur = cur[part.replace("~1", "/").replace("~0", "~")]
        node = cur
        seen += 1
        if seen > 50:
            raise ValueError(f"$ref loop at {ref}")
    return node


def _iter_parameter_objects(spec: dict) -> Iterable[tuple[str, dict]]:
    """Every parameter object defined in paths or components.parameters (not $ref stubs)."""
    for name, param in (spec.get("components", {}).get("parameters") or {}).items():
        if isinstance(param, dict) and "$ref" not in param:
            yield f"#/components/parameters/{name}", param
    for pname, item in (spec.get("paths") or {}).items():
        if not isinstance(item, dict):
            continue
        for i, param in enumerate(item.get("parameters") or []):
            if isinstance(param, dict) and "$ref" not in param:
                yield f"{pname} (path-level #{i})", param
        for method, op in item.items():
            if method == "parameters" or not isinstance(op, dict):
                continue
            for i, param in enumerate(op.get("parameters") or []):
                if isinstance(param, dict) and "$ref" not in param:
                    yield f"{method.upper()} {pname} #{i}", param


def relax_asana_opt_fields(spec: dict) -> list[str]:
    """R1: drop the enum on opt_fields array items, keep everything else."""
    n = 0
    shapes = set()
    for _where, param in _iter_parameter_objects(spec):
        if param.get("in") != "query" or param.get("name") != "opt_fields":
            continue
        schema = param.get("schema") or {}
        items = schema.get("items")
        if isinstance(items, dict) and "enum" in items:
            del items["enum"]
            n += 1
        shapes.add((schema.get("type"), (items or {}).get("type"),
                    param.get("style", "form"), param.get("explode")))
    shape_txt = ", ".join(f"type {t} of {it}, style {s}, explode {e}" for t, it, s, e in sorted(shapes, key=str))
    return [f"R1 relaxation: opt_fields item enum dropped on {n} query parameters "
            f"(kept: {shape_txt})"]


EMPLOYEE_TYPE_INTS = {
    "enum": [0, 1, 2, 3, 4],
    "type": "integer",
    "description": "[0 - All, 1 - Room admin, 2 - Guest, 3 - DocSpace admin, 4 - User]",
}


def relax_docspace_employee_type(spec: dict) -> list[str]:
    """R2: EmployeeType accepts integers 0-4 besides the names."""
    schemas = spec.get("components", {}).get("schemas") or {}
    et = schemas.get("EmployeeType")
    if not isinstance(et, dict):
        return ["R2 relaxation: no EmployeeType schema in this file (nothing to do)"]
    # The integer alternative goes first: openapi-core casts a query string with the first
    # oneOf branch that casts, so names-first would turn employeeType=4 into the string "4".
    # (Order does not matter to JSON Schema validation of bodies.)
    key = "oneOf" if "oneOf" in et else "anyOf" if "anyOf" in et else None
    if key:
        variants = et[key]
        ints = [v for v in variants if _resolve(spec, v).get("type") == "integer"]
        if ints:
            et[key] = ints + [v for v in variants if v not in ints]
            return [f"R2 relaxation: EmployeeType already accepts integers in this file ({key} "
                    "names|0-4); only the integer alternative moved first for query casting"]
    if et.get("type") != "string":
        raise ValueError(f"unexpected EmployeeType shape: {json.dumps(et)[:200]}")
    names = {k: v for k, v in et.items() if k in ("enum", "type", "description", "example")}
    schemas["EmployeeType"] = {
        "oneOf": [dict(EMPLOYEE_TYPE_INTS), names],
        "description": et.get("description", ""),
    }
    return [f"R2 relaxation: EmployeeType = oneOf[integer 0-4, string {et.get('enum')}] "
            "(was names only)"]


_MERGE_ANNOTATIONS = ("description", "nullable", "example", "title", "readOnly", "writeOnly",
                      "deprecated")


def _flatten_allof(spec: dict, schema: dict, stack: tuple = ()) -> dict:
    """Merge allOf[...] + own properties into one object schema (see Q1)."""
    props: dict[str, Any] = {}
    required: list[str] = []

    def add(part: dict, where: str) -> None:
        extra = set(part) - {"type", "properties", "required", "additionalProperties", "allOf",
                             "x-derived", "x-derived-types", *_MERGE_ANNOTATIONS}
        if extra:
            raise ValueError(f"cannot flatten {where}: unexpected keys {sorted(extra)}")
        if part.get("type", "object") != "object":
            raise ValueError(f"cannot flatten {where}: type {part.get('type')}")
        ap = part.get("additionalProperties", False)
        if ap not in (False, True):
            raise ValueError(f"cannot flatten {where}: additionalProperties is a schema")
        for name, sub in (part.get("properties") or {}).items():
            if name in props and props[name] != sub:
                props[name] = {"allOf": [props[name], sub]}
            else:
                props[name] = sub
        for r in part.get("required") or []:
            if r not in required:
                required.append(r)

    for branch in schema["allOf"]:
        ref = branch.get("$ref") if isinstance(branch, dict) else None
        if ref in stack:
            raise ValueError(f"allOf loop through {ref}")
        part = _resolve(spec, branch)
        if "allOf" in part:
            part = _flatten_allof(spec, part, stack + ((ref,) if ref else ()))
        add(part, ref or "inline allOf part")
    add({k: v for k, v in schema.items() if k != "allOf"}, "the schema itself")

    out: dict[str, Any] = {"type": "object", "properties": props, "additionalProperties": False}
    if required:
        out["required"] = required
    for k in _MERGE_ANNOTATIONS:
        if k in schema:
            out[k] = schema[k]
    return out


def fix_docspace_closed_allof(spec: dict) -> list[str]:
    """Q1: flatten allOf compositions that additionalProperties:false makes unsatisfiable."""
    fixed: list[str] = []

    def needs_fix(node: dict) -> bool:
        if not isinstance(node.get("allOf"), list):
            return False
        if node.get("additionalProperties") is False:
            return True
        return any(_resolve(spec, b).get("additionalProperties") is False for b in node["allOf"])

    originals = copy.deepcopy(spec.get("components", {}).get("schemas") or {})
    view = dict(spec)
    view["components"] = dict(spec.get("components", {}))
    view["components"]["schemas"] = originals  # resolve branches against the unpatched schemas

    def walk(node: Any, where: str) -> Any:
        if isinstance(node, dict):
            if needs_fix(node):
                fixed.append(where)
                return _flatten_allof(view, node)
            return {k: walk(v, f"{where}/{k}") for k, v in node.items()}
        if isinstance(node, list):
            return [walk(v, f"{where}/{i}") for i, v in enumerate(node)]
        return node

    for key in ("paths", "components"):
        if key in spec:
            spec[key] = walk(spec[key], f"#/{key}")
    names = ", ".join(w.rsplit("/", 1)[-1] if w.startswith("#/components/schemas/") else w
                      for w in fixed)
    return [f"Q1 quirk fix: {len(fixed)} allOf+additionalProperties:false schemas flattened "
            f"into one closed object each: {names}"] if fixed else []


def fix_docspace_deep_object(spec: dict) -> list[str]:
    """Q2: deepObject query parameters openapi-core cannot deserialize."""
    arrays, objects = [], []
    for where, param in _iter_parameter_objects(spec):
        if param.get("in") != "query" or param.get("style") != "deepObject":
            continue
        schema = _resolve(spec, param.get("schema") or {})
        if schema.get("type") == "array":
            param["style"] = "form"
            param["explode"] = True
            arrays.append(f"{where} {param['name']}")
        elif param.get("explode") is not True:
            param["explode"] = True
            objects.append(f"{where} {param['name']}")
    notes = []
    if arrays:
        notes.append(f"Q2 quirk fix: {len(arrays)} deepObject array query parameters -> style form, "
                     f"explode true: " + "; ".join(arrays))
    if objects:
        notes.append(f"Q2 quirk fix: {len(objects)} deepObject object query parameters without "
                     f"explode -> explode true: " + "; ".join(objects))
    return notes


PATCHES = {
    "asana": [relax_asana_opt_fields],
    "docspace": [relax_docspace_employee_type, fix_docspace_closed_allof, fix_docspace_deep_object],
}


# --------------------------------------------------------------------------------------
# Loading (with cache)
# --------------------------------------------------------------------------------------

def _cache_dir() -> Path:
    xdg = os.environ.get("XDG_CACHE_HOME")
    if xdg:
        return Path(xdg) / "asana-docspace-contract"
    return Path(tempfile.gettempdir()) / f"asana-docspace-contract-{os.getuid()}"


def _self_hash() -> str:
    return hashlib.sha256(Path(__file__).read_bytes()).hexdigest()[:16]


def load_patched(service: str, path: Path, use_cache: bool = True) -> tuple[dict, list[str]]:
    """Parse a spec file, apply the service's patches, return (spec, notes). Cached."""
    raw = path.read_bytes()
    digest = hashlib.sha256(raw).hexdigest()
    cache_file = _cache_dir() / f"{service}-{path.name}-{digest[:24]}-{_self_hash()}.json"
    if use_cache and cache_file.is_file():
        try:
            with cache_file.open("rb") as f:
                cached = json.load(f)
            return cached["spec"], cached["notes"]
        except (OSError, ValueError, KeyError):
            pass  # corrupt cache entry: rebuild below
    if path.suffix in (".yaml", ".yml"):
        import yaml
        loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
        data = yaml.load(raw, Loader=loader)
        # Q3: YAML turns `200:` into an int key; round-trip through JSON so keys are strings.
        int_keys = _count_int_keys(data)
        spec = json.loads(json.dumps(data))
        notes = [f"Q3 quirk fix: {int_keys} integer mapping keys (YAML response codes) read as strings"] if int_keys else []
    else:
        spec = json.loads(raw)
        notes = []
    for patch in PATCHES[service]:
        notes.extend(patch(spec))
    notes.insert(0, f"spec {path} sha256 {digest[:16]}… openapi {spec.get('openapi')}, "
                    f"{len(spec.get('paths') or {})} paths")
    if use_cache:
        try:
            cache_file.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=cache_file.parent, suffix=".tmp")
            with os.fdopen(fd, "w") as f:
                json.dump({"spec": spec, "notes": notes}, f)
            os.replace(tmp, cache_file)
            for stale in cache_file.parent.glob(f"{service}-{path.name}-*.json"):
                if stale != cache_file:  # older spec or checker version
                    stale.unlink(missing_ok=True)
        except OSError:
            pass  # a read-only cache dir only costs time
    return spec, notes


def _count_int_keys(node: Any) -> int:
    if isinstance(node, dict):
        return sum(not isinstance(k, str) for k in node) + sum(_count_int_keys(v) for v in node.values())
    if isinstance(node, list):
        return sum(_count_int_keys(v) for v in node)
    return 0


# --------------------------------------------------------------------------------------
# Validation
# --------------------------------------------------------------------------------------

def _import_openapi_core():
    try:
        from openapi_core import Config, OpenAPI  # noqa: F401
    except ImportError as e:
        raise UsageError(
            f"openapi-core is not importable ({e}); install the pinned versions: "
            f"python3 -m pip install -r {HERE / 'requirements.txt'} (ideally in a venv)") from e


class LoggedRequest:
    """openapi_core.protocols.Request built from one log line."""

    def __init__(self, host_url: str, entry: dict):
        from openapi_core.datatypes import RequestParameters
        from werkzeug.datastructures import Headers, ImmutableMultiDict

        self.host_url = host_url
        self.path = entry["path"]
        self.method = entry["method"].lower()
        self.query_pairs = parse_qsl(entry.get("query") or "", keep_blank_values=True)
        self.parameters = RequestParameters(
            query=ImmutableMultiDict(self.query_pairs),
            header=Headers({"Authorization": PLACEHOLDER_AUTH}),
            cookie=ImmutableMultiDict(),
        )
        self.content_type = (entry.get("content_type") or "").lower()
        body = entry.get("body")
        if body is None:
            self.body: Optional[bytes] = None
        elif isinstance(body, str) and "json" not in self.content_type:
            self.body = body.encode()
        else:
            self.body = json.dumps(body).encode()

    @property
    def full_url(self) -> str:
        return self.host_url + self.path


@dataclass
class SpecHandle:
    service: str
    path: Path
    spec: dict
    notes: list[str]
    api: Any = None
    validator: Any = None
    finder: Any = None
    host_url: str = ""

    def ensure(self) -> None:
        if self.api is not None:
            return
        from openapi_core import Config, OpenAPI
        from openapi_core.templating.paths.finders import APICallPathFinder

        # spec_validator_cls=None: openapi-spec-validator takes seconds on these documents
        # and rejects api-docs.json for an unrelated operation (GET /api/2.0/files/group).
        self.api = OpenAPI.from_dict(self.spec, config=Config(spec_validator_cls=None))
        self.validator = self.api.request_validator
        self.finder = APICallPathFinder(self.api.spec)
        host = SERVICES[self.service]["host"]
        if host is None:
            u = urlsplit(self.spec["servers"][0]["url"])
            host = f"{u.scheme}://{u.netloc}"
        self.host_url = host


@dataclass
class Result:
    reasons: list[str] = field(default_factory=list)
    operation_id: str = ""
    spec_file: str = ""


class Checker:
    def __init__(self, specs_dir: Path, use_cache: bool = True, extra_checks: bool = True):
        self.specs_dir = specs_dir
        self.use_cache = use_cache
        self.extra_checks = extra_checks
        self._handles: dict[str, list[Optional[SpecHandle]]] = {}

    def _spec_path(self, rel: str) -> Path:
        p = self.specs_dir / rel
        if not p.is_file():
            raise UsageError(f"spec not found: {p} (set --specs DIR or ASANA_DOCSPACE_SPECS)")
        return p

    def handle(self, service: str, index: int) -> SpecHandle:
        files = SERVICES[service]["files"]
        slots = self._handles.setdefault(service, [None] * len(files))
        if slots[index] is None:
            path = self._spec_path(files[index])
            spec, notes = load_patched(service, path, self.use_cache)
            slots[index] = SpecHandle(service, path, spec, notes)
        h = slots[index]
        h.ensure()
        return h

    def explain(self) -> list[str]:
        out = []
        for service, conf in SERVICES.items():
            for i, _ in enumerate(conf["files"]):
                h = self.handle(service, i)
                out.append(f"[{service}] " + h.notes[0])
                out.extend(f"[{service}]   {n}" for n in h.notes[1:])
        out.append("[both]   security: the log has no Authorization header; a placeholder "
                   f"'Authorization: {PLACEHOLDER_AUTH}' is supplied, so an operation that does not "
                   "accept bearer auth is reported")
        state = "on" if self.extra_checks else "OFF (--no-extra-checks)"
        out.append(f"[both]   extra strictness ({state}): query parameters the operation does not "
                   "declare, a body sent to an operation without requestBody, and JSON body keys no "
                   "applicable schema declares (allOf-aware; only where the spec lists properties "
                   "and is silent on additionalProperties), are violations")
        return out

    def check(self, entry: dict) -> Result:
        from openapi_core.templating.paths.exceptions import PathError

        service = entry["service"]
        files = SERVICES[service]["files"]
        first_error: Optional[Exception] = None
        for i in range(len(files)):
            h = self.handle(service, i)
            req = LoggedRequest(h.host_url, entry)
            try:
                found = h.finder.find(req.method, req.full_url)
            except PathError as e:
                first_error = first_error or e
                continue
            res = Result(operation_id=(found.operation / "operationId").read_str(default="")
                         if "operationId" in found.operation else "",
                         spec_file=h.path.name)
            for err in h.validator.iter_errors(req):
                res.reasons.extend(describe_error(err))
            if self.extra_checks:
                res.reasons.extend(extra_checks(h.spec, found, req))
            return res
        reasons = describe_error(first_error) if first_error else ["no spec matched"]
        prefix = PATH_PREFIX[service]
        if not entry["path"].startswith(prefix + "/"):
            reasons.append(f"(logged {service} paths must start with {prefix})")
        return Result(reasons=reasons)


# --------------------------------------------------------------------------------------
# Error descriptions
# --------------------------------------------------------------------------------------

def _short(text: str, limit: int = 300) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _json_path(err: Any) -> str:
    out = ""
    for p in getattr(err, "absolute_path", []) or []:
        out += f"[{p}]" if isinstance(p, int) else (f".{p}" if out else str(p))
    return out


def _schema_messages(err: Any, prefix: str) -> list[str]:
    msgs = []
    for se in getattr(err, "schema_errors", ()) or ():
        where = _json_path(se)
        msg = se.message
        ctx = list(getattr(se, "context", None) or [])
        if ctx:  # oneOf/anyOf: say what each alternative wanted
            msg += " (" + "; ".join(sorted({c.message for c in ctx})) + ")"
        msgs.append(_short(f"{prefix}{'.' + where if where and prefix else where}: {msg}"))
    return msgs


def describe_error(err: Exception) -> list[str]:
    from openapi_core.casting.schemas.exceptions import CastError
    from openapi_core.templating.media_types.exceptions import MediaTypeNotFound
    from openapi_core.templating.paths.exceptions import OperationNotFound, PathNotFound
    from openapi_core.validation.request.exceptions import (
        InvalidParameter, InvalidRequestBody, InvalidSecurity, MissingRequiredParameter,
        MissingRequiredRequestBody, ParameterValidationError, SecurityValidationError)

    cause = err.__cause__
    if isinstance(err, PathNotFound):
        return ["no such path in the spec"]
    if isinstance(err, OperationNotFound):
        return [f"method {getattr(err, 'method', '?').upper()} not allowed on this path in the spec"]
    if isinstance(err, MissingRequiredParameter):
        return [f"missing required {err.location} parameter '{err.name}'"]
    if isinstance(err, InvalidParameter):
        prefix = f"{err.location} parameter '{err.name}'"
        msgs = _schema_messages(cause, prefix)
        return msgs or [_short(f"{prefix}: {cause or err}")]
    if isinstance(err, ParameterValidationError):
        if isinstance(cause, CastError):
            detail = f"{cause.value!r} is not a valid {cause.type}"
        else:
            detail = f"cannot be read ({cause!r})" if cause else str(err)
        return [_short(f"{err.location} parameter '{err.name}': {detail}")]
    if isinstance(err, MissingRequiredRequestBody):
        return ["missing required request body"]
    if isinstance(cause, MediaTypeNotFound):
        return [_short(f"request content type {cause.mimetype or '(none)'!r} not accepted "
                       f"(spec: {', '.join(cause.availableMimetypes)})")]
    if isinstance(err, InvalidRequestBody):
        msgs = _schema_messages(cause, "body")
        return msgs or [_short(f"request body: {cause or err}")]
    if isinstance(err, (InvalidSecurity, SecurityValidationError)):
        return [_short(f"security: {cause or err} (the checker sends a placeholder bearer token)")]
    return [_short(f"{type(err).__name__}: {err}" + (f" ({cause})" if cause else ""))]


def extra_checks(spec: dict, found: Any, req: LoggedRequest) -> list[str]:
    """Spec-derived checks openapi-core does not make: undeclared query params, stray body."""
    reasons = []
    op = found.operation.read_value() if hasattr(found.operation, "read_value") else dict(found.operation)
    item = found.path.read_value() if hasattr(found.path, "read_value") else dict(found.path)
    declared: set[str] = set()
    prefixes: list[str] = []
    any_keys = False
    for p in list(op.get("parameters") or []) + list(item.get("parameters") or []):
        p = _resolve(spec, p)
        if p.get("in") != "query":
            continue
        declared.add(p["name"])
        style = p.get("style", "form")
        schema = _resolve(spec, p.get("schema") or {})
        if style == "deepObject":
            prefixes.append(p["name"] + "[")
        elif style == "form" and p.get("explode", True) and schema.get("type") == "object":
            props = schema.get("properties")
            if props:
                declared.update(props)
            else:
                any_keys = True
    if not any_keys:
        for key in dict.fromkeys(k for k, _ in req.query_pairs):
            if key not in declared and not any(key.startswith(px) for px in prefixes):
                reasons.append(f"query parameter '{key}' is not declared by the operation")
    if req.body is not None and "requestBody" not in op:
        reasons.append("request has a body but the operation declares no requestBody")
    elif req.body is not None and "json" in req.content_type:
        media = _json_media_schema(spec, op, req.content_type)
        if media is not None:
            try:
                value = json.loads(req.body)
            except ValueError:
                value = None  # openapi-core reports unparseable JSON itself
            reasons.extend(undeclared_properties(spec, media, value, "body"))
    return reasons


def _json_media_schema(spec: dict, op: dict, content_type: str) -> Optional[dict]:
    content = _resolve(spec, op.get("requestBody") or {}).get("content") or {}
    mime = content_type.split(";", 1)[0].strip()
    media = content.get(mime)
    if media is None:
        return None  # openapi-core reports the media type mismatch
    return media.get("schema")


def _expand(spec: dict, schema: Any, depth: int = 0) -> list[dict]:
    """The schema and every allOf/oneOf/anyOf part applying at the same location."""
    schema = _resolve(spec, schema)
    if not isinstance(schema, dict) or depth > 20:
        return []
    out = [schema]
    for key in ("allOf", "oneOf", "anyOf"):
        for part in schema.get(key) or []:
            out.extend(_expand(spec, part, depth + 1))
    return out


def undeclared_properties(spec: dict, schema: Any, value: Any, where: str) -> list[str]:
    """Object keys that no applicable schema declares (allOf-aware; oneOf/anyOf parts are
    unioned, i.e. lenient). Objects are checked only where the spec lists `properties` and says
    nothing about additionalProperties: additionalProperties false is openapi-core's job,
    true or a schema means "anything goes"."""
    parts = _expand(spec, schema)
    reasons: list[str] = []
    if isinstance(value, dict):
        declared: dict[str, list[Any]] = {}
        for part in parts:
            for name, sub in (part.get("properties") or {}).items():
                declared.setdefault(name, []).append(sub)
        has_props = any("properties" in part for part in parts)
        says_additional = any("additionalProperties" in part for part in parts)
        if has_props and not says_additional:
            extra = [k for k in value if k not in declared]
            if extra:
                reasons.append(f"{where}: propert{'y' if len(extra) == 1 else 'ies'} "
                               f"{', '.join(repr(k) for k in extra)} not declared by the schema "
                               f"(declared: {', '.join(sorted(declared)) or 'none'})")
        for k, v in value.items():
            for sub in declared.get(k, []):
                reasons.extend(undeclared_properties(spec, sub, v, f"{where}.{k}"))
    elif isinstance(value, list):
        for part in parts:
            if "items" in part:
                for i, v in enumerate(value):
                    reasons.extend(undeclared_properties(spec, part["items"], v, f"{where}[{i}]"))
    return list(dict.fromkeys(reasons))


# --------------------------------------------------------------------------------------
# CLI
# --------------------------------------------------------------------------------------

def read_entries(paths: list[str]) -> Iterable[tuple[str, int, dict]]:
    for name in paths:
        if name == "-":
            lines = sys.stdin.read().splitlines()
        else:
            p = Path(name)
            if not p.is_file():
                raise UsageError(f"input file not found: {name}")
            lines = p.read_text(encoding="utf-8").splitlines()
        for n, line in enumerate(lines, 1):
            if not line.strip():
                continue
            try:
                entry = json.loads(line)
            except ValueError as e:
                raise UsageError(f"{name}:{n}: not a JSON object: {e}") from e
            if not isinstance(entry, dict):
                raise UsageError(f"{name}:{n}: not a JSON object")
            for key in ("service", "method", "path"):
                if not isinstance(entry.get(key), str) or not entry[key]:
                    raise UsageError(f"{name}:{n}: missing or non-string '{key}'")
            if entry["service"] not in SERVICES:
                raise UsageError(f"{name}:{n}: unknown service {entry['service']!r} "
                                 f"(expected one of {', '.join(SERVICES)})")
            if not entry["path"].startswith("/"):
                raise UsageError(f"{name}:{n}: path must start with '/': {entry['path']!r}")
            yield name, n, entry


def request_label(entry: dict) -> str:
    q = entry.get("query") or ""
    return f"{entry['service']} {entry['method'].upper()} {entry['path']}{'?' + q if q else ''}"


def main(argv: Optional[list[str]] = None) -> int:
    import argparse

    class Parser(argparse.ArgumentParser):
        def error(self, message: str) -> None:  # usage errors exit 2 (argparse's default too)
            self.print_usage(sys.stderr)
            print(f"contract: error: {message}", file=sys.stderr)
            sys.exit(2)

    ap = Parser(prog="check.py", description="Validate recorded requests against the vendors' "
                "OpenAPI specs (see the module docstring).")
    ap.add_argument("logs", nargs="*", help="JSON-lines request logs ('-' = stdin)")
    ap.add_argument("--specs", help="spec directory (default $ASANA_DOCSPACE_SPECS or "
                    "<repo>/../shared/specs)")
    ap.add_argument("--explain", action="store_true", help="print the in-memory spec patches")
    ap.add_argument("--no-cache", action="store_true", help="do not use the parsed-spec cache")
    ap.add_argument("--no-extra-checks", action="store_true", help="only openapi-core's checks: "
                    "allow undeclared query parameters, stray bodies and undeclared body keys")
    ap.add_argument("-v", "--verbose", action="store_true", help="print valid requests too")
    args = ap.parse_args(argv)

    if not args.logs and not args.explain:
        ap.error("no request log given (or use --explain)")
    specs_dir = Path(args.specs or os.environ.get("ASANA_DOCSPACE_SPECS") or DEFAULT_SPECS)
    try:
        _import_openapi_core()
        if not specs_dir.is_dir():
            raise UsageError(f"spec directory not found: {specs_dir} "
                             "(set --specs DIR or ASANA_DOCSPACE_SPECS)")
        checker = Checker(specs_dir, use_cache=not args.no_cache,
                          extra_checks=not args.no_extra_checks)
        if args.explain:
            for line in checker.explain():
                print(line)
        if not args.logs:
            return 0
        entries = list(read_entries(args.logs))  # parse everything first: bad input is exit 2
        checked = violations = skipped = 0
        for name, n, entry in entries:
            if entry["path"].startswith(SIM_PREFIX):
                skipped += 1
                continue
            checked += 1
            res = checker.check(entry)
            op = f" ({res.operation_id})" if res.operation_id else ""
            if res.reasons:
                violations += 1
                print(f"{name}:{n}: {request_label(entry)}{op}: " + " | ".join(res.reasons))
            elif args.verbose:
                print(f"{name}:{n}: ok {request_label(entry)}{op} [{res.spec_file}]")
    except UsageError as e:
        print(f"contract: error: {e}", file=sys.stderr)
        return 2
    print(f"contract: {checked} requests checked, {violations} violations, {skipped} skipped")
    return 1 if violations else 0


if __name__ == "__main__":
    sys.exit(main())
