#!/usr/bin/env python3
"""Self-test for tools/contract/check.py: valid requests pass, invalid ones fail.

Run:  python3 tools/contract/test_check.py      (plain runner, no pytest needed)
 or:  python3 -m pytest tools/contract/test_check.py   (the test_* functions are pytest-style)

Needs the packages in requirements.txt and the specs (see check.py's docstring). Every sample
below was looked up in the vendors' specs; the expected operationId is asserted so a request
cannot pass by matching some other operation.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
import traceback
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import check  # noqa: E402

SPECS = Path(os.environ.get("ASANA_DOCSPACE_SPECS") or check.DEFAULT_SPECS)
UUID = "3fa85f64-5717-4562-b3fc-2c963f66afa6"
_CHECKER: check.Checker | None = None


def checker() -> check.Checker:
    global _CHECKER
    if _CHECKER is None:
        _CHECKER = check.Checker(SPECS)
    return _CHECKER


def req(service, method, path, query="", body=None, content_type=None, status=200):
    if content_type is None and body is not None:
        content_type = "application/json"
    return {"service": service, "method": method, "path": path, "query": query,
            "content_type": content_type, "body": body, "status": status}


def asana(method, path, query="", body=None, **kw):
    return req("asana", method, "/api/1.0" + path, query, body, **kw)


def docspace(method, path, query="", body=None, **kw):
    return req("docspace", method, "/api/2.0" + path, query, body, **kw)


# (request, operationId it must match)
VALID = [
    (asana("GET", "/tasks/1201", "opt_fields=assignee.email,assignee.name"), "getTask"),
    (asana("POST", "/workspaces/1100/addUser", "opt_fields=email,name",
           {"data": {"user": "a@b.com"}}), "addUserForWorkspace"),
    (asana("GET", "/projects/1300/tasks", "limit=100&opt_fields=assignee.email,completed"),
     "getTasksForProject"),
    (asana("GET", "/projects/1300/tasks", "limit=100&offset=eyJ0eXAi&opt_fields=assignee.email"),
     "getTasksForProject"),
    (asana("POST", "/webhooks", "opt_fields=gid,active",
           {"data": {"resource": "1300", "target": "https://bridge.example.com/webhooks/asana/k1",
                     "filters": [{"resource_type": "task", "action": "changed",
                                  "fields": ["assignee"]}]}}), "createWebhook"),
    (asana("GET", "/webhooks", "workspace=1100&limit=100"), "getWebhooks"),
    (asana("DELETE", "/webhooks/1400"), "deleteWebhook"),
    (asana("GET", "/events", "resource=1&sync=x"), "getEvents"),
    (asana("GET", "/users/me", "opt_fields=email,name"), "getUser"),
    (docspace("GET", "/people/email", "email=a@b.com"), "getProfileByEmail"),
    (docspace("POST", "/people/invite", body={"invitations": [{"email": "a@b.com", "type": 4}]}),
     "inviteUsers"),
    # names are valid per the spec too (the client sends integers, see brief)
    (docspace("POST", "/people/invite", body={"invitations": [{"email": "a@b.com", "type": "User"}],
                                              "culture": "en-US"}), "inviteUsers"),
    (docspace("PUT", "/files/rooms/123/share",
              body={"invitations": [{"id": UUID, "access": 10}], "notify": True}),
     "setRoomSecurity"),
    (docspace("GET", "/files/rooms/123"), "getRoomInfo"),
    (docspace("GET", "/people/filter", "count=100&startIndex=0&activationStatus=2"),
     "searchUsersByExtendedFilter"),
    # R2 also covers the query parameter; the Q2 fix makes the operation usable at all
    (docspace("GET", "/people/filter", "employeeType=4&employeeTypes=1&employeeTypes=4"),
     "searchUsersByExtendedFilter"),
    (req("docspace", "POST", "/api/2.0/people/invite", body={"invitations": []},
         content_type="application/json; charset=utf-8"), "inviteUsers"),
]

# (request, substring the violation must contain)
INVALID = [
    (asana("GET", "/nonexistent/1"), "no such path"),
    (docspace("GET", "/nonexistent"), "no such path"),
    (req("asana", "GET", "/tasks/1201"), "must start with /api/1.0"),
    (asana("PATCH", "/tasks/1201"), "method PATCH not allowed"),
    (docspace("PATCH", "/files/rooms/123"), "method PATCH not allowed"),
    (docspace("PUT", "/files/rooms/123/share",
              body={"invitations": [{"id": UUID, "access": "editing"}], "notify": True}),
     "body.invitations[0].access: 'editing' is not one of"),
    (docspace("PUT", "/files/rooms/123/share", body={"invitations": [{"id": UUID, "access": 99}]}),
     "body.invitations[0].access: 99 is not one of"),
    (docspace("PUT", "/files/rooms/123/share", body={"invitations": [{"id": "not-a-uuid", "access": 10}]}),
     "is not a 'uuid'"),
    (docspace("PUT", "/files/rooms/123/share", body={"invitations": [{"id": UUID, "acess": 10}]}),
     "'acess' was unexpected"),  # Q1 flattening keeps the object closed
    (docspace("PUT", "/files/rooms/abc/share", body={"invitations": []}),
     "path parameter 'id': 'abc' is not a valid integer"),
    (docspace("PUT", "/files/rooms/123/share"), "missing required request body"),
    (docspace("POST", "/people/invite", body={"invitations": [{"email": "a@b.com", "type": "Admin"}]}),
     "body.invitations[0].type: 'Admin' is not valid"),
    (docspace("POST", "/people/invite", body={"invitations": [{"email": "a@b.com", "type": 5}]}),
     "body.invitations[0].type: 5 is not valid"),
    (docspace("POST", "/people/invite", body={"invitations": [{"email": "a@b.com", "type": "4"}]}),
     "body.invitations[0].type: '4' is not valid"),
    (docspace("POST", "/people/invite",
              body={"invitations": [{"email": "a@b.com", "type": 4, "name": "A"}]}),
     "'name' was unexpected"),
    (docspace("POST", "/people/invite", body={}), "'invitations' is a required property"),
    (docspace("POST", "/people/invite", body="invitations=a@b.com", content_type="text/plain"),
     "request content type 'text/plain' not accepted"),
    (docspace("GET", "/people/filter", "count=500"), "query parameter 'count': 500 is greater"),
    (docspace("GET", "/people/filter", "activationStatus=3"), "query parameter 'activationStatus'"),
    (docspace("GET", "/people/filter", "employeeType=9"), "query parameter 'employeeType'"),
    (docspace("GET", "/people/filter", "cnt=100"), "query parameter 'cnt' is not declared"),
    (docspace("GET", "/people/email", body={"email": "a@b.com"}),
     "the operation declares no requestBody"),
    (asana("POST", "/workspaces/1100/addUser"), "missing required request body"),
    (asana("POST", "/workspaces/1100/addUser", body={"user": "a@b.com"}),
     "property 'user' not declared by the schema (declared: data)"),
    (asana("POST", "/workspaces/1100/addUser", body={"data": "a@b.com"}),
     "body.data: 'a@b.com' is not of type 'object'"),
    (asana("POST", "/workspaces/1100/addUser", body={"data": {"user": 1100}}),
     "body.data.user: 1100 is not of type 'string'"),
    (asana("GET", "/projects/1300/tasks", "limit=500&opt_fields=assignee.email"),
     "query parameter 'limit': 500 is greater than the maximum of 100"),
    (asana("GET", "/projects/1300/tasks", "limit=0"), "query parameter 'limit'"),
    (asana("GET", "/events", "sync=x"), "missing required query parameter 'resource'"),
    (asana("GET", "/webhooks", "limit=100"), "missing required query parameter 'workspace'"),
    (asana("POST", "/webhooks", body={"data": {"resource": "1300"}}),
     "'target' is a required property"),
    (asana("POST", "/webhooks", body={"data": {"resource": "1300", "target": "https://x.example/h",
                                               "filters": [{"resource_typ": "task"}]}}),
     "'resource_typ' not declared"),
    (asana("GET", "/tasks/1201", "opt_field=assignee.email"), "'opt_field' is not declared"),
    (asana("GET", "/tasks/1201", "opt_pretty=maybe"),
     "query parameter 'opt_pretty': 'maybe' is not a valid boolean"),
    # a JSON body must say so: no content type is not application/json
    (asana("POST", "/workspaces/1100/addUser", body={"data": {"user": "me"}}, content_type=""),
     "request content type"),
]


def test_valid_samples_pass():
    bad = []
    for entry, op in VALID:
        res = checker().check(entry)
        if res.reasons or res.operation_id != op:
            bad.append(f"{check.request_label(entry)} -> op {res.operation_id!r} (want {op}): "
                       f"{res.reasons}")
    assert not bad, "valid samples rejected:\n  " + "\n  ".join(bad)


def test_invalid_samples_fail():
    bad = []
    for entry, needle in INVALID:
        res = checker().check(entry)
        if not any(needle in r for r in res.reasons):
            bad.append(f"{check.request_label(entry)}: want {needle!r}, got {res.reasons}")
    assert not bad, "invalid samples not caught as expected:\n  " + "\n  ".join(bad)


def test_relaxation_r1_is_what_makes_assignee_email_pass():
    """Without R1 the vendor enum rejects assignee.email: the check is not vacuous."""
    saved = check.PATCHES["asana"]
    check.PATCHES["asana"] = []
    try:
        strict = check.Checker(SPECS, use_cache=False)
        res = strict.check(VALID[0][0])
    finally:
        check.PATCHES["asana"] = saved
    assert any("'assignee.email' is not one of" in r for r in res.reasons), res.reasons
    # and R1 kept the parameter's shape: array of strings, form, comma-separated
    h = checker().handle("asana", 0)
    params = h.spec["paths"]["/tasks/{task_gid}"]["get"]["parameters"]
    p = next(p for p in params if p.get("name") == "opt_fields")
    assert p["style"] == "form" and p["explode"] is False, p
    assert p["schema"]["type"] == "array" and p["schema"]["items"] == {"type": "string"}, p


def test_patches_are_scoped():
    """R2 touches EmployeeType only; FileShare stays an integer enum; notes name each change."""
    h = checker().handle("docspace", 0)
    schemas = h.spec["components"]["schemas"]
    assert schemas["FileShare"]["type"] == "integer"
    assert "oneOf" in schemas["EmployeeType"]
    notes = "\n".join(checker().explain())
    for tag in ("R1 relaxation", "R2 relaxation", "Q1 quirk fix", "Q2 quirk fix", "placeholder"):
        assert tag in notes, tag


def run_cli(*args, input_text=None, env=None):
    e = dict(os.environ)
    e.update(env or {})
    return subprocess.run([sys.executable, str(HERE / "check.py"), *args], input=input_text,
                          capture_output=True, text=True, env=e, timeout=300)


def write_log(entries, directory):
    p = Path(directory) / "requests.jsonl"
    p.write_text("".join(json.dumps(e) + "\n" for e in entries))
    return str(p)


def test_cli_exit_codes_and_output():
    with tempfile.TemporaryDirectory() as d:
        good = [e for e, _ in VALID] + [req("asana", "POST", "/_sim/faults", body={"x": 1})]
        r = run_cli(write_log(good, d), "--specs", str(SPECS))
        assert r.returncode == 0, r.stdout + r.stderr
        assert r.stdout.strip().splitlines()[-1] == (
            f"contract: {len(VALID)} requests checked, 0 violations, 1 skipped"), r.stdout

        bad_entry = docspace("PUT", "/files/rooms/123/share",
                             body={"invitations": [{"id": UUID, "access": "editing"}]})
        r = run_cli(write_log(good + [bad_entry], d))
        assert r.returncode == 1, r.stdout + r.stderr
        lines = r.stdout.strip().splitlines()
        assert lines[-1] == f"contract: {len(VALID) + 1} requests checked, 1 violations, 1 skipped"
        assert lines[0].startswith(f"{d}/requests.jsonl:{len(good) + 1}: docspace PUT "
                                   "/api/2.0/files/rooms/123/share (setRoomSecurity): "), lines[0]

        r = run_cli("-", input_text=json.dumps(bad_entry) + "\n")  # stdin
        assert r.returncode == 1 and "1 violations" in r.stdout, r.stdout + r.stderr

        r = run_cli(str(Path(d) / "missing.jsonl"))
        assert r.returncode == 2 and "not found" in r.stderr, r.stderr
        r = run_cli(write_log([req("jira", "GET", "/x")], d))
        assert r.returncode == 2 and "unknown service" in r.stderr, r.stderr
        r = run_cli(write_log(good, d), "--specs", str(Path(d) / "nospecs"))
        assert r.returncode == 2 and "spec directory not found" in r.stderr, r.stderr
        Path(d, "broken.jsonl").write_text("{not json\n")
        r = run_cli(str(Path(d) / "broken.jsonl"))
        assert r.returncode == 2, r.stdout + r.stderr
        r = run_cli()
        assert r.returncode == 2, r.stdout + r.stderr
        r = run_cli("--explain")
        assert r.returncode == 0 and "R1 relaxation" in r.stdout and "R2 relaxation" in r.stdout


def test_env_var_and_cache():
    with tempfile.TemporaryDirectory() as d:
        log = write_log([VALID[0][0], VALID[9][0]], d)
        env = {"ASANA_DOCSPACE_SPECS": str(SPECS), "XDG_CACHE_HOME": str(Path(d) / "cache")}
        t0 = time.monotonic()
        r = run_cli(log, env=env)
        cold = time.monotonic() - t0
        assert r.returncode == 0, r.stdout + r.stderr
        cached = sorted(p.name for p in (Path(d) / "cache" / "asana-docspace-contract").iterdir())
        assert any(n.startswith("asana-asana_oas.yaml-") for n in cached), cached
        assert any(n.startswith("docspace-api-docs.json-") for n in cached), cached
        t0 = time.monotonic()
        r = run_cli(log, env=env)
        warm = time.monotonic() - t0
        assert r.returncode == 0, r.stdout + r.stderr
        print(f"    (cold {cold:.2f}s, cached {warm:.2f}s)")


def main() -> int:
    tests = [(n, f) for n, f in globals().items() if n.startswith("test_") and callable(f)]
    passed = failed = 0
    for name, fn in tests:
        try:
            fn()
        except Exception:  # noqa: BLE001 - report every failure, keep going
            failed += 1
            print(f"FAIL {name}")
            traceback.print_exc()
        else:
            passed += 1
            print(f"ok   {name}")
    print(f"{passed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
