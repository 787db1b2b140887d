#!/usr/bin/env python3
"""Fuzzes the running app against its contract (docs/openapi.json) with
schemathesis: every operation once per role key (admin, agent, flow), and
the operations the operator's or the scheduler's token opens once with that
token. Every answer must be documented: no 5xx, a documented status and
content type, a body and headers matching the documented schemas.

scripts/fuzz-contract.sh starts the dev host and runs this with the venv of
scripts/contract-venv.sh; run that, not this.

Before fuzzing, an organisation is seeded through the API with a resource
of each kind, so the path ids the fuzzer sends are mostly real ones: each
`{id}` of an operation is, with probability 0.8, the id of a seeded
resource of the collection its path names (for DELETE, a second one kept
for deleting, so the others stay for the later runs), else a generated
value.
"""

import argparse
import base64
import hashlib
import hmac
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CHECKS = ",".join([
    "not_a_server_error",
    "status_code_conformance",
    "content_type_conformance",
    "response_schema_conformance",
    "response_headers_conformance",
])
# The share of path ids taken from the seeded resources.
SEEDED_ID_PROBABILITY = 0.8
TWILIO_TOKEN = "f00dfeedf00dfeedf00dfeedf00d6549"
TWILIO_SID = "AC0123456789abcdef0123456789abcdef"
WHATSAPP_NUMBER = "+14155238886"
SMS_NUMBER = "14252306549"
# The runs of the document's token schemes.
SCHEME_RUNS = {"operator_token": "operator", "dispatch_token": "dispatch"}


class Api:
    """The app's API over HTTP, as the seed calls it."""

    def __init__(self, base):
        self.base = base

    def call(self, method, path, key=None, body=None, form=None, headers=None):
        data, headers = None, dict(headers or {})
        if key:
            headers["Authorization"] = f"Bearer {key}"
        if body is not None:
            data, headers["Content-Type"] = json.dumps(body).encode(), "application/json"
        if form is not None:
            data = urllib.parse.urlencode(form).encode()
            headers["Content-Type"] = "application/x-www-form-urlencoded"
        request = urllib.request.Request(self.base + path, data, headers, method=method)
        try:
            with urllib.request.urlopen(request, timeout=30) as answer:
                return answer.status, answer.read()
        except urllib.error.HTTPError as error:
            return error.code, error.read()

    def create(self, key, path, body, status=201):
        got, answer = self.call("POST", path, key, body)
        if got != status:
            sys.exit(f"fuzz-contract: seeding failed: POST {path} answered {got}: {answer[:500]!r}")
        return json.loads(answer)


def seed_config(api, admin, ids, doomed):
    """Two of each configuration resource: one to use, one to delete."""
    for name in ("kept", "doomed"):
        pick = ids if name == "kept" else doomed
        queue = api.create(admin, "/api/queues", {"name": f"Fuzz {name}"})["id"]
        pick["/api/queues"] = queue
        pick["/api/agents"] = api.create(admin, "/api/agents", {
            "name": f"Agent {name}", "queues": [ids["/api/queues"]]})["id"]
        pick["/api/templates"] = api.create(admin, "/api/templates", {
            "name": f"Case {name}", "channel_types": ["sms", "whatsapp"], "default_locale": "en-US",
            "versions": {"en-US": {"text": "Hi {{CustomerName}}, case {{CaseName}}.", "approved": True,
                                   "content_sid": "HX0123456789abcdef0123456789abcdef"}}})["id"]
        pick["/api/contacts"] = api.create(admin, "/api/contacts", {
            "name": f"Kari {name}", "fields": {"tier": "gold"}})["id"]
    twilio = {"provider": "twilio", "account_sid": TWILIO_SID, "auth_token": TWILIO_TOKEN}
    ids["/api/accounts"] = ids["/webhooks/twilio"] = api.create(admin, "/api/accounts", {
        **twilio, "name": "WhatsApp", "numbers": [{"name": "Support", "number": WHATSAPP_NUMBER}]})["id"]
    doomed["/api/accounts"] = api.create(admin, "/api/accounts", {
        **twilio, "name": "Spare", "numbers": [{"name": "Spare", "number": "+14155238887"}]})["id"]
    ids["/webhooks/telesign"] = api.create(admin, "/api/accounts", {
        "provider": "telesign", "name": "SMS", "customer_id": "FFFFFFFF-EEEE-DDDD-1234-AB1234567890",
        "api_key": base64.b64encode(b"fuzz-api-key").decode(),
        "numbers": [{"number": SMS_NUMBER, "type": "long_code", "description": "Main"}]})["id"]
    for name, channel, account, address in (
        ("kept", "whatsapp", ids["/api/accounts"], WHATSAPP_NUMBER),
        ("doomed", "sms", ids["/webhooks/telesign"], SMS_NUMBER),
    ):
        (ids if name == "kept" else doomed)["/api/workstreams"] = api.create(admin, "/api/workstreams", {
            "name": f"Support {name}", "channel": channel, "fallback_queue": ids["/api/queues"],
            "channels": [{"account_id": account, "address": address, "language": "en-US"}]})["id"]
    for pick in (ids, doomed):
        pick["/api/outbound-configs"] = api.create(admin, "/api/outbound-configs", {
            "name": "Case created", "channel_type": "sms", "channel": SMS_NUMBER,
            "template_id": ids["/api/templates"]})["id"]
    ids["/api/outbound"] = ids["/api/outbound-configs"]


def seed_conversation(api, admin, ids):
    """A customer's WhatsApp message, signed like Twilio's, so a
    conversation (and its contact) exists."""
    url = f"{api.base}/webhooks/twilio/{ids['/webhooks/twilio']}"
    form = {"AccountSid": TWILIO_SID, "MessageSid": "SM" + "0" * 32, "From": "whatsapp:+4917612345678",
            "To": f"whatsapp:{WHATSAPP_NUMBER}", "Body": "I want a refund", "NumMedia": "0",
            "ProfileName": "Jane Doe"}
    signed = url + "".join(k + form[k] for k in sorted(form))
    signature = base64.b64encode(hmac.new(TWILIO_TOKEN.encode(), signed.encode(), hashlib.sha1).digest())
    status, answer = api.call("POST", url.removeprefix(api.base), form=form,
                              headers={"X-Twilio-Signature": signature.decode()})
    if status != 200:
        sys.exit(f"fuzz-contract: seeding failed: the Twilio webhook answered {status}: {answer[:500]!r}")
    status, answer = api.call("GET", "/api/conversations", admin)
    items = json.loads(answer)["items"] if status == 200 else []
    if not items:
        sys.exit(f"fuzz-contract: seeding failed: no conversation after the webhook ({status})")
    ids["/api/conversations"] = items[0]["id"]


def seed(api, operator):
    """An organisation with keys of every role and resources of every kind:
    (keys by role, ids of resources to use, ids of resources to delete), by
    the path their operations start with."""
    doomed_org = api.create(operator, "/api/orgs", {"name": "Fuzz spare"})
    org = api.create(operator, "/api/orgs", {"name": "Fuzz"})
    admin = org["api_key"]["key"]
    ids, doomed = {"/api/orgs": org["org"]["id"]}, {"/api/orgs": doomed_org["org"]["id"]}
    seed_config(api, admin, ids, doomed)
    keys = {"admin": admin}
    keys["agent"] = api.create(admin, "/api/keys", {
        "name": "Agent", "role": "agent", "agent_id": ids["/api/agents"]})["key"]
    flow = api.create(admin, "/api/keys", {"name": "Flow", "role": "flow"})
    keys["flow"], ids["/api/keys"] = flow["key"], flow["id"]
    doomed["/api/keys"] = api.create(admin, "/api/keys", {"name": "Spare", "role": "flow"})["id"]
    contact = {"tocontactid": "+4790000001", "channelid": "sms", "optin": True,
               "CustomerName": "Kari", "CaseName": "CAS-1"}
    ids["/api/outbound/jobs"] = api.create(keys["flow"], f"/api/outbound/{ids['/api/outbound']}/send", {
        "ContactList": [contact], "delay_seconds": 30 * 86400}, status=202)["id"]
    seed_conversation(api, admin, ids)
    return keys, ids, doomed


def operations(doc):
    """(path, method, operation) of every documented operation."""
    for path, item in doc["paths"].items():
        for method, op in item.items():
            if method in ("get", "put", "post", "patch", "delete"):
                yield path, method, op


def only(doc, keep):
    """The document with the operations `keep(op)` accepts."""
    paths = {}
    for path, method, op in operations(doc):
        if keep(op):
            paths.setdefault(path, {})[method] = op
    return {**doc, "paths": paths}


def toml(value):
    """A TOML value (JSON's strings, numbers and arrays are TOML's)."""
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{json.dumps(k)} = {toml(v)}" for k, v in value.items()) + " }"
    return json.dumps(value)


def credentials(op):
    """The runs whose credential the operation takes: the roles its API key
    scopes name, `operator`, `dispatch`; an operation without one (public,
    or signed by a provider) is fuzzed in the admin run."""
    names = set()
    for requirement in op.get("security", []):
        for scheme, scopes in requirement.items():
            names.update(scopes if scheme == "api_key" else [SCHEME_RUNS.get(scheme)])
    return names - {None} or {"admin"}


def path_parameters(path, method, ids, doomed):
    """The dictionary each `{param}` of `path` draws from: (parameter,
    dictionary name, seeded id), for the parameters a seeded resource fits."""
    for match in re.finditer(r"{([^}]+)}", path):
        prefix = path[: match.start()].rstrip("/")
        doom = method == "delete" and path.endswith(match.group(0))
        pick = doomed if doom else ids
        if prefix in pick:
            name = ("doomed" if doom else "kept") + re.sub(r"\W", "_", prefix)
            yield match.group(1), name, pick[prefix]


def config(args, name, token, doc, ids, doomed):
    """schemathesis.toml for one run: its credential, the cases per
    operation (the document's examples, the coverage phase's edge cases and
    `--examples` generated ones; a single generated one for an operation the
    credential may not call: its refusal must be documented too), and the
    seeded ids its path parameters draw from."""
    lines = ["[generation]", f"max-examples = {args.examples}", "",
             # Stateful testing needs the document's links, which it has not.
             "[phases.stateful]", "enabled = false", "",
             "[headers]", f"Authorization = {toml('Bearer ' + token)}", ""]
    dictionaries = {}
    for path, method, op in operations(doc):
        settings = {}
        bindings = {}
        for parameter, dictionary, value in path_parameters(path, method, ids, doomed):
            dictionaries[dictionary] = value
            bindings[f"path.{parameter}"] = {"dictionary": dictionary, "probability": SEEDED_ID_PROBABILITY}
        if bindings:
            settings["parameters"] = bindings
        if name not in credentials(op):
            settings["generation"] = {"max-examples": 1}
            settings["phases"] = {"examples": {"enabled": False}, "coverage": {"enabled": False}}
        if settings:
            lines += ["[[operations]]", f"include-operation-id = {toml(op['operationId'])}"]
            lines += [f"{key} = {toml(value)}" for key, value in settings.items()] + [""]
    for dictionary, value in dictionaries.items():
        lines += [f"[dictionaries.{dictionary}]", f"values = {toml([value])}", ""]
    return "\n".join(lines)


def runs(doc, keys, operator, dispatcher):
    """(name, token, document) of each run."""
    for role, key in keys.items():
        yield role, key, doc
    for name, token in (("operator", operator), ("dispatch", dispatcher)):
        scoped = only(doc, lambda op: name in credentials(op))
        if scoped["paths"]:
            yield name, token, scoped


def run(args, name, token, doc, ids, doomed, deadline):
    """One schemathesis run; True when it found nothing."""
    folder = tempfile.mkdtemp(prefix=f"fuzz-{name}-")
    spec, settings = os.path.join(folder, "openapi.json"), os.path.join(folder, "schemathesis.toml")
    with open(spec, "w") as out:
        json.dump(doc, out)
    with open(settings, "w") as out:
        out.write(config(args, name, token, doc, ids, doomed))
    ops = [op for _, _, op in operations(doc)]
    home = sum(1 for op in ops if name in credentials(op))
    print(f"fuzz-contract: {name}: {home} operations it may call, {args.examples} cases each "
          f"and the coverage phase; {len(ops) - home} it may not, once", flush=True)
    command = [
        sys.executable, "-m", "schemathesis.cli", "--no-color",
        "--config-file", settings, "run", spec, "--url", args.base,
        "--checks", ",".join([CHECKS, *args.also_check]),
        "--seed", str(args.seed), "--generation-database", "none",
        "--generation-with-security-parameters", "false",
        # One worker: CPython 3.11's parser is not safe across threads
        # (hypothesis parses sources), and the dev host has the other core.
        "--workers", "1", "--request-timeout", "30",
        "--suppress-health-check", "all", "--warnings", "off",
        "--report", "junit", "--report-junit-path", os.path.join(args.report_dir, f"{name}.xml"),
    ]
    try:
        done = subprocess.run(command, cwd=folder, timeout=max(1, deadline - time.monotonic()))
    except subprocess.TimeoutExpired:
        print(f"fuzz-contract: {name}: stopped at the time cap ({args.max_time} s): "
              "fewer --examples, or a longer --max-time", flush=True)
        return False
    return done.returncode == 0


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--base", required=True, help="the app's origin, e.g. http://127.0.0.1:3000")
    parser.add_argument("--operator-token", required=True)
    parser.add_argument("--dispatch-token", required=True)
    parser.add_argument("--examples", type=int, default=10, help="generated cases per operation and run")
    parser.add_argument("--seed", type=int, default=16, help="the generator's seed")
    # A guard against a hung run, far above what the suite's cases take
    # (about a minute of CPU for 70 operations at 10 cases).
    parser.add_argument("--max-time", type=int, default=600,
                        help="seconds for every run together; a run still going then fails")
    parser.add_argument("--also-check", action="append", default=[], metavar="CHECK",
                        help="another schemathesis check, e.g. positive_data_acceptance "
                             "(schema-valid requests must not be refused: how exact the request schemas are)")
    parser.add_argument("--document", default=os.path.join(ROOT, "docs", "openapi.json"),
                        help="the contract to hold the app to (default: docs/openapi.json)")
    parser.add_argument("--report-dir", default=tempfile.mkdtemp(prefix="fuzz-contract-"))
    args = parser.parse_args()
    # Stopped from outside, exit cleanly: subprocess.run then stops the
    # schemathesis it is waiting for.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    deadline = time.monotonic() + args.max_time
    doc = json.load(open(args.document, encoding="utf-8"))
    keys, ids, doomed = seed(Api(args.base), args.operator_token)
    failed = [name for name, token, scoped in runs(doc, keys, args.operator_token, args.dispatch_token)
              if not run(args, name, token, scoped, ids, doomed, deadline)]
    print(f"fuzz-contract: JUnit reports in {args.report_dir}")
    if failed:
        print(f"fuzz-contract: findings (above) in the runs of: {', '.join(failed)}")
        return 1
    print("fuzz-contract: every answer matched the contract")
    return 0


if __name__ == "__main__":
    sys.exit(main())
