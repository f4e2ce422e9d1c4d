#!/usr/bin/python3
"""k8scheck.py FILE - structural check of docker/k8s/vigil.yaml (used by test.sh; no cluster needed).

Parses every YAML document (python3-yaml) and checks what the deployment relies on: a Deployment
whose pod runs the api and hotpath containers sharing an emptyDir at /run/vigil; liveness /health
and readiness /ready on the API, `vigil-hotpath --check` probes on the worker; requests and limits
on both; a non-root, read-only, no-privilege-escalation, all-capabilities-dropped security context
with distinct uids, one shared gid and fsGroup; DATABASE_URL and VIGIL_BOOTSTRAP_KEY from a Secret;
a Service whose selector matches the pod and targets the API port.  Prints a summary line, or
every problem found and exits 1."""
import sys

import yaml


def main(path):
    docs = [d for d in yaml.safe_load_all(open(path)) if d is not None]
    errs = []

    def need(cond, msg):
        if not cond:
            errs.append(msg)
        return cond

    for d in docs:
        need(isinstance(d, dict) and d.get("apiVersion") and d.get("kind") and
             d.get("metadata", {}).get("name"), "document without apiVersion/kind/metadata.name")
    deps = [d for d in docs if d.get("kind") == "Deployment"]
    svcs = [d for d in docs if d.get("kind") == "Service"]
    if not need(len(deps) == 1, "expected one Deployment") or not need(len(svcs) == 1,
                                                                       "expected one Service"):
        print("\n".join(errs))
        return 1
    dep, svc = deps[0], svcs[0]
    need(dep["apiVersion"] == "apps/v1", "Deployment apiVersion is not apps/v1")
    tmpl = dep["spec"]["template"]
    pod_labels = tmpl["metadata"]["labels"]
    sel = dep["spec"]["selector"]["matchLabels"]
    need(all(pod_labels.get(k) == v for k, v in sel.items()), "selector does not match pod labels")
    pod = tmpl["spec"]
    psc = pod.get("securityContext", {})
    need(psc.get("runAsNonRoot") is True, "pod: runAsNonRoot not true")
    need(isinstance(psc.get("fsGroup"), int), "pod: no fsGroup (the socket's group)")
    vols = {v["name"]: v for v in pod.get("volumes", [])}
    ctrs = {c["name"]: c for c in pod.get("containers", [])}
    if not need(set(ctrs) >= {"api", "hotpath"}, "containers api and hotpath not both present"):
        print("\n".join(errs))
        return 1
    gids = set()
    uids = set()
    for name, c in ctrs.items():
        sc = c.get("securityContext", {})
        need(sc.get("runAsNonRoot", psc.get("runAsNonRoot")) is True, name + ": not runAsNonRoot")
        need(sc.get("readOnlyRootFilesystem") is True, name + ": root fs not read-only")
        need(sc.get("allowPrivilegeEscalation") is False, name + ": allowPrivilegeEscalation")
        need(sc.get("capabilities", {}).get("drop") == ["ALL"], name + ": capabilities not drop ALL")
        uid = sc.get("runAsUser", psc.get("runAsUser"))
        need(isinstance(uid, int) and uid > 0, name + ": runAsUser not a non-zero uid")
        uids.add(uid)
        gids.add(sc.get("runAsGroup", psc.get("runAsGroup")))
        res = c.get("resources", {})
        for kind in ("requests", "limits"):
            need(res.get(kind, {}).get("cpu") and res.get(kind, {}).get("memory"),
                 "%s: resources.%s cpu/memory missing" % (name, kind))
        mounts = {m["mountPath"]: m["name"] for m in c.get("volumeMounts", [])}
        vname = mounts.get("/run/vigil")
        need(vname and "emptyDir" in vols.get(vname, {}), name + ": /run/vigil is not an emptyDir")
        need(c.get("image"), name + ": no image")
    need(len(uids) == 2, "api and hotpath must run as distinct uids")
    need(len(gids) == 1 and psc.get("fsGroup") in gids, "api and hotpath must share one gid = fsGroup")
    need(ctrs["api"]["volumeMounts"] and ctrs["hotpath"]["volumeMounts"] and
         {m["name"] for m in ctrs["api"]["volumeMounts"] if m["mountPath"] == "/run/vigil"} ==
         {m["name"] for m in ctrs["hotpath"]["volumeMounts"] if m["mountPath"] == "/run/vigil"},
         "api and hotpath do not mount the same volume at /run/vigil")
    api = ctrs["api"]
    need(api.get("livenessProbe", {}).get("httpGet", {}).get("path") == "/health",
         "api: liveness is not GET /health")
    need(api.get("readinessProbe", {}).get("httpGet", {}).get("path") == "/ready",
         "api: readiness is not GET /ready")
    hp = ctrs["hotpath"]
    for probe in ("livenessProbe", "readinessProbe"):
        need(hp.get(probe, {}).get("exec", {}).get("command", [])[-1:] == ["--check"],
             "hotpath: %s is not vigil-hotpath --check" % probe)
    env = {e["name"]: e for e in api.get("env", [])}
    for var in ("DATABASE_URL", "VIGIL_BOOTSTRAP_KEY"):
        need("secretKeyRef" in env.get(var, {}).get("valueFrom", {}), "api: %s not from a Secret" % var)
    need(env.get("VIGIL_HOTPATH_SOCKET", {}).get("value", "").startswith("/run/vigil/"),
         "api: VIGIL_HOTPATH_SOCKET not under /run/vigil")
    hpenv = {e["name"]: e for e in hp.get("env", [])}
    need(hpenv.get("VIGIL_HOTPATH_SOCKET", {}).get("value") == env.get("VIGIL_HOTPATH_SOCKET", {})
         .get("value"), "api and hotpath disagree on VIGIL_HOTPATH_SOCKET")
    need(not hp.get("ports"), "hotpath exposes ports")
    ports = {p.get("name"): p["containerPort"] for p in api.get("ports", [])}
    sel = svc["spec"].get("selector", {})
    need(sel and all(pod_labels.get(k) == v for k, v in sel.items()), "Service selector != pod labels")
    for p in svc["spec"].get("ports", []):
        t = p.get("targetPort")
        need(t in ports or t in ports.values(), "Service targetPort %r is not an api port" % t)
    if errs:
        print("\n".join(errs))
        return 1
    print("%d documents; Deployment %s (containers %s), Service %s: all checks hold" %
          (len(docs), dep["metadata"]["name"], ", ".join(ctrs), svc["metadata"]["name"]))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
