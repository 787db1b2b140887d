#!/usr/bin/env python3
"""Checks the SpinKube manifests (deploy/spinkube/*.yaml) against spin.toml,
so the deployment cannot drift from the app it deploys:

- the SpinApp: apiVersion core.spinkube.dev/v1alpha1, kind SpinApp,
  executor containerd-shim-spin, an image, more than one replica (and no
  autoscaling, which forbids replicas);
- variables: every entry of spin.toml's [variables] (those without a default
  and the secret ones above all) is bound by the SpinApp under its exact
  name, once, from a Secret if and only if it is `secret = true`, else from
  a ConfigMap; no binding names a variable spin.toml does not declare;
- every ConfigMap or Secret key the manifests reference (variables, the
  store's options, the CronJob's environment) exists in a ConfigMap or
  Secret of the manifests, and no reference is optional;
- the Secret template ships no credential: the secret variables' values are
  empty (an empty token keeps its API closed);
- key-value stores: every store a component names (`key_value_stores`) is in
  spec.runtimeConfig.keyValueStores with type redis and its `url` from a
  Secret (a redis:// or rediss:// URL); no loadFromSecret, which would make
  the operator ignore that configuration;
- the dispatch CronJob: batch/v1, every minute, a POST to the SpinApp's
  Service at the dispatch path, which spin.toml routes to the component that
  holds `dispatch_token`, with "Authorization: Bearer" and the token from
  the same Secret key the SpinApp binds `dispatch_token` to.

Field names are SpinKube's (https://spinkube.dev/docs/reference/spin-app/).

Usage: scripts/check-deploy.py [manifest folder]  (default deploy/spinkube;
exits 1 and says what is wrong when a check fails)
"""

import base64
import glob
import os
import re
import sys
import tomllib

import yaml

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
API_VERSION = "core.spinkube.dev/v1alpha1"
EXECUTOR = "containerd-shim-spin"
DISPATCH_VARIABLE = "dispatch_token"
# The core's router names the dispatch path segment by segment.
DISPATCH_ROUTE = re.compile(r'\["api", "outbound", "dispatch"\]')
EVERY_MINUTE = {"* * * * *", "*/1 * * * *"}


class Check:
    def __init__(self):
        self.errors = []

    def that(self, ok, message):
        if not ok:
            self.errors.append(message)
        return ok


def load_manifests(folder):
    docs = []
    for path in sorted(glob.glob(os.path.join(folder, "*.yaml"))):
        with open(path, encoding="utf-8") as f:
            for doc in yaml.safe_load_all(f):
                if doc:
                    docs.append((os.path.relpath(path, ROOT), doc))
    return docs


def of_kind(docs, kind):
    return [doc for _, doc in docs if doc.get("kind") == kind]


def config_keys(docs, kind):
    """{name: set of keys} of every ConfigMap or Secret."""
    keys = {}
    for doc in of_kind(docs, kind):
        name = doc["metadata"]["name"]
        data = dict(doc.get("data") or {})
        if kind == "Secret":
            data = {k: base64.b64decode(v or "").decode() for k, v in data.items()}
        data.update(doc.get("stringData") or {})
        keys[name] = data
    return keys


def check_reference(check, where, value_from, configmaps, secrets):
    """One valueFrom: exactly one of secretKeyRef/configMapKeyRef, pointing
    at a key the manifests hold. Returns (kind, name, key) or None."""
    refs = [k for k in ("secretKeyRef", "configMapKeyRef") if k in (value_from or {})]
    if not check.that(len(refs) == 1, f"{where}: valueFrom needs one secretKeyRef or configMapKeyRef"):
        return None
    kind = refs[0]
    ref = value_from[kind]
    name, key = ref.get("name"), ref.get("key")
    check.that(
        not ref.get("optional", False),
        f"{where}: {kind} must not be optional (a missing key would go unnoticed)",
    )
    held, what = (secrets, "Secret") if kind == "secretKeyRef" else (configmaps, "ConfigMap")
    if check.that(name in held, f"{where}: {what} {name!r} is not in the manifests"):
        check.that(key in held[name], f"{where}: {what} {name!r} has no key {key!r}")
    return (kind, name, key)


def check_spinapp(check, app):
    version = app.get("apiVersion")
    check.that(version == API_VERSION, f"SpinApp apiVersion is {version!r}, not {API_VERSION!r}")
    spec = app.get("spec") or {}
    executor = spec.get("executor")
    check.that(executor == EXECUTOR, f"SpinApp spec.executor is {executor!r}, not {EXECUTOR!r}")
    check.that(bool(spec.get("image")), "SpinApp spec.image is missing")
    replicas = spec.get("replicas")
    check.that(
        isinstance(replicas, int) and replicas > 1,
        f"SpinApp spec.replicas is {replicas!r}: scale-out needs more than one",
    )
    check.that(not spec.get("enableAutoscaling"), "SpinApp spec.enableAutoscaling forbids spec.replicas")
    return spec


def bind_variables(check, declared, spec, configmaps, secrets):
    """{variable: (kind, name, key)} of the SpinApp's spec.variables."""
    bound = {}
    for n, var in enumerate(spec.get("variables") or []):
        name = var.get("name")
        where = f"SpinApp spec.variables[{n}] ({name})"
        check.that(name in declared, f"{where}: spin.toml declares no variable {name!r}")
        check.that(name not in bound, f"{where}: bound twice")
        check.that("value" not in var, f"{where}: set from a ConfigMap or Secret, not an inline value")
        ref = check_reference(check, where, var.get("valueFrom"), configmaps, secrets)
        if ref:
            bound[name] = ref
    return bound


def check_variables(check, manifest, spec, configmaps, secrets):
    """Every variable of spin.toml bound, from a Secret iff it is secret.
    Returns the bindings."""
    declared = manifest.get("variables") or {}
    bound = bind_variables(check, declared, spec, configmaps, secrets)
    for name, decl in declared.items():
        needed = "declared" if "default" in decl else "required"
        if not check.that(name in bound, f"spin.toml variable {name!r} ({needed}) is not bound by the SpinApp"):
            continue
        kind, source, key = bound[name]
        if decl.get("secret", False):
            check.that(kind == "secretKeyRef", f"variable {name!r} is secret = true: it must come from a Secret")
            check.that(
                secrets.get(source, {}).get(key) in ("", None),
                f"Secret {source!r} key {key!r} ships a value: the template must hold no credential",
            )
        else:
            check.that(kind != "secretKeyRef", f"variable {name!r} is not secret: it belongs in a ConfigMap")
    return bound


def check_stores(check, manifest, spec, configmaps, secrets):
    used = set()
    for component in (manifest.get("component") or {}).values():
        used.update(component.get("key_value_stores") or [])
    runtime = spec.get("runtimeConfig") or {}
    check.that(
        "loadFromSecret" not in runtime,
        "SpinApp spec.runtimeConfig.loadFromSecret would make the operator ignore keyValueStores",
    )
    stores = {s.get("name"): s for s in runtime.get("keyValueStores") or []}
    for name in sorted(used):
        store = stores.get(name)
        where = f"key-value store {name!r} (spin.toml key_value_stores)"
        if not check.that(store is not None, f"{where} is not in SpinApp spec.runtimeConfig.keyValueStores"):
            continue
        kind = store.get("type")
        check.that(kind == "redis", f"{where}: type is {kind!r}, not 'redis' (shared by the replicas)")
        urls = [o for o in store.get("options") or [] if o.get("name") == "url"]
        if not check.that(len(urls) == 1, f"{where}: needs one 'url' option"):
            continue
        ref = check_reference(check, f"{where} option url", urls[0].get("valueFrom"), configmaps, secrets)
        if ref and check.that(ref[0] == "secretKeyRef", f"{where}: the url (with its password) must come from a Secret"):
            url = secrets.get(ref[1], {}).get(ref[2]) or ""
            check.that(re.match(r"rediss?://", url) is not None, f"{where}: the Secret's url {url!r} is not redis://")


def route_component(manifest, path):
    """The component spin.toml routes `path` to: an exact route, else the
    longest `/prefix/...` wildcard that matches."""
    best, best_len = None, -1
    for trigger in (manifest.get("trigger") or {}).get("http") or []:
        route = trigger.get("route", "")
        if route.endswith("/..."):
            prefix = route[: -len("/...")]
            if (path == prefix or path.startswith(prefix + "/")) and len(prefix) > best_len:
                best, best_len = trigger.get("component"), len(prefix)
        elif route == path:
            return trigger.get("component")
    return best


def dispatch_path(check):
    """The dispatch path, as the core's router spells it segment by segment."""
    with open(os.path.join(ROOT, "core/src/outbound/mod.rs"), encoding="utf-8") as f:
        found = DISPATCH_ROUTE.search(f.read())
    check.that(found is not None, "core/src/outbound/mod.rs no longer routes the dispatch path")
    return "/" + "/".join(re.findall(r'"(\w+)"', found.group(0))) if found else "/api/outbound/dispatch"


def check_dispatch_route(check, manifest, path):
    """spin.toml routes the dispatch path to the component holding the
    dispatch token."""
    components = manifest.get("component") or {}
    holders = [c for c, d in components.items() if DISPATCH_VARIABLE in (d.get("variables") or {})]
    routed = route_component(manifest, path)
    check.that(
        holders == [routed],
        f"spin.toml routes {path} to {routed!r}, but {DISPATCH_VARIABLE} is given to {holders}",
    )


def check_dispatch_call(check, command, service, path):
    """A POST to the SpinApp's Service (port 80) at the dispatch path."""
    url = re.search(r"https?://([^/\s:'\"]+)(:\d+)?(/[^\s'\"]*)", command)
    if check.that(url is not None, "CronJob: no URL in the container's command"):
        host, port, url_path = url.groups()
        check.that(host.split(".")[0] == service, f"CronJob calls host {host!r}, not the Service {service!r}")
        check.that(port in (None, ":80"), f"CronJob calls port {port!r}; the SpinApp's Service listens on 80")
        check.that(url_path == path, f"CronJob calls {url_path!r}, not {path!r}")
    check.that(
        re.search(r"(-X|--request)\s+POST\b", command) is not None,
        "CronJob: the dispatch call must be a POST (-X POST)",
    )


def check_dispatch_token(check, container, command, bound, configmaps, secrets):
    """Authorization: Bearer, with the Secret key the SpinApp binds
    dispatch_token to."""
    check.that("Authorization: Bearer " in command, "CronJob: the call sends no 'Authorization: Bearer' header")
    env = {e.get("name"): e for e in container.get("env") or []}
    used = [n for n in env if re.search(r"\$[{(]?" + re.escape(n) + r"\b", command)]
    if not check.that(len(used) == 1, f"CronJob: the command should use one env variable (the token), uses {used}"):
        return
    name = used[0]
    ref = check_reference(check, f"CronJob env {name}", env[name].get("valueFrom"), configmaps, secrets)
    expected = bound.get(DISPATCH_VARIABLE)
    check.that(
        ref is not None and ref == expected,
        f"CronJob env {name} is {ref}, not what the SpinApp binds {DISPATCH_VARIABLE} to ({expected})",
    )


def check_cronjob(check, manifest, docs, app, bound, configmaps, secrets):
    jobs = of_kind(docs, "CronJob")
    if not check.that(len(jobs) == 1, f"expected one dispatch CronJob, found {len(jobs)}"):
        return
    job = jobs[0]
    version = job.get("apiVersion")
    check.that(version == "batch/v1", f"CronJob apiVersion is {version!r}, not 'batch/v1'")
    schedule = (job.get("spec") or {}).get("schedule")
    check.that(schedule in EVERY_MINUTE, f"CronJob schedule {schedule!r} is not every minute")
    containers = job["spec"]["jobTemplate"]["spec"]["template"]["spec"].get("containers") or []
    if not check.that(len(containers) == 1, "CronJob: expected one container"):
        return
    container = containers[0]
    command = " ".join(str(a) for a in (container.get("command") or []) + (container.get("args") or []))
    path = dispatch_path(check)
    check_dispatch_route(check, manifest, path)
    check_dispatch_call(check, command, app["metadata"]["name"], path)
    check_dispatch_token(check, container, command, bound, configmaps, secrets)


def check_batch_reads(check, bound, configmaps):
    """The store is Redis, whose Spin get-many does not batch: the app must
    be told, or every request wastes a round trip on a failed batch."""
    binding = bound.get("key_value_batch_reads")
    if binding and binding[0] == "configMapKeyRef":
        value = configmaps.get(binding[1], {}).get(binding[2])
        check.that(value == "false", f"key_value_batch_reads is {value!r}: a Redis store needs \"false\" (README, \"Spin quirks\")")


def main():
    folder = sys.argv[1] if len(sys.argv) > 1 else os.path.join(ROOT, "deploy/spinkube")
    with open(os.path.join(ROOT, "spin.toml"), "rb") as f:
        manifest = tomllib.load(f)
    docs = load_manifests(folder)
    check = Check()
    apps = [doc for _, doc in docs if doc.get("kind") == "SpinApp"]
    if check.that(len(apps) == 1, f"expected one SpinApp in {folder}, found {len(apps)}"):
        configmaps, secrets = config_keys(docs, "ConfigMap"), config_keys(docs, "Secret")
        spec = check_spinapp(check, apps[0])
        bound = check_variables(check, manifest, spec, configmaps, secrets)
        check_stores(check, manifest, spec, configmaps, secrets)
        check_batch_reads(check, bound, configmaps)
        check_cronjob(check, manifest, docs, apps[0], bound, configmaps, secrets)
    if check.errors:
        for error in check.errors:
            print(f"check-deploy: {error}", file=sys.stderr)
        sys.exit(1)
    print(f"check-deploy: {len(docs)} manifests agree with spin.toml")


if __name__ == "__main__":
    main()
