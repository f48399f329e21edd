#!/usr/bin/env python3
"""Checks deploy/k8s/ as `kubectl apply -k` would use it.

Validates every manifest against Kubernetes' schemas (kubernetes-validate
--strict: unknown fields are errors), then renders the kustomization the
way kustomize does for what it uses (resources, the common labels, JSON
patches with `replace`/`add`, image names) and validates the result, and
checks that the shard count is the same in its three places: the run's
ATLAS_SHARDS and the shards Job's completions and parallelism.

No kustomize or kubectl binary can be installed here (neither is on PyPI,
npm or Debian's registry in a form this machine reaches), hence the
rendering by hand.
"""
import pathlib
import subprocess
import sys
import tempfile

import yaml

ROOT = pathlib.Path(__file__).resolve().parent.parent / "deploy" / "k8s"


def fail(msg):
    print(f"deploy/k8s: {msg}", file=sys.stderr)
    sys.exit(1)


def pointer(doc, path):
    """The parent of a JSON pointer's target, and the last key."""
    keys = [k.replace("~1", "/").replace("~0", "~") for k in path.lstrip("/").split("/")]
    for k in keys[:-1]:
        doc = doc[int(k)] if isinstance(doc, list) else doc[k]
    return doc, keys[-1]


def main():
    kust = yaml.safe_load((ROOT / "kustomization.yaml").read_text())
    files = [ROOT / r for r in kust["resources"]]
    for f in files:
        if not f.exists():
            fail(f"kustomization.yaml lists {f.name}, which does not exist")
    on_disk = sorted(p.name for p in ROOT.glob("*.yaml") if p.name != "kustomization.yaml")
    if sorted(f.name for f in files) != on_disk:
        fail(f"kustomization.yaml lists {sorted(f.name for f in files)}, the folder holds {on_disk}")
    subprocess.run(["kubernetes-validate", "--strict", "--quiet", *map(str, files)], check=True)

    docs = [d for f in files for d in yaml.safe_load_all(f.read_text()) if d]
    for p in kust.get("patches", []):
        t = p["target"]
        hits = [d for d in docs if d["kind"] == t["kind"] and d["metadata"]["name"] == t["name"]]
        if len(hits) != 1:
            fail(f"a patch targets {t['kind']}/{t['name']}: {len(hits)} resources match")
        for op in yaml.safe_load(p["patch"]):
            parent, key = pointer(hits[0], op["path"])
            if op["op"] == "replace" and key not in parent:
                fail(f"patch replaces {op['path']} in {t['name']}, which has no such field")
            if op["op"] not in ("replace", "add"):
                fail(f"patch op {op['op']} is not checked here")
            parent[key] = op["value"]
    for label in kust.get("labels", []):
        for d in docs:
            d["metadata"].setdefault("labels", {}).update(label["pairs"])
    images = {i["name"] for i in kust.get("images", [])}
    for d in docs:
        if d["kind"] == "Job":
            for c in d["spec"]["template"]["spec"]["containers"]:
                if c["image"] not in images:
                    fail(f"{d['metadata']['name']} runs image {c['image']}, which images: does not set")

    run = next(d for d in docs if d["kind"] == "ConfigMap" and d["metadata"]["name"] == "atlas-run")
    shards = next(d for d in docs if d["kind"] == "Job" and d["metadata"]["name"] == "atlas-shards")
    n = int(run["data"]["ATLAS_SHARDS"])
    spec = shards["spec"]
    if spec.get("completionMode") != "Indexed":
        fail("the shards Job is not an Indexed Job")
    if (spec["completions"], spec["parallelism"]) != (n, n):
        fail(f"ATLAS_SHARDS={n}, the shards Job runs completions={spec['completions']} parallelism={spec['parallelism']}")

    with tempfile.NamedTemporaryFile("w", suffix=".yaml", delete=False) as out:
        yaml.safe_dump_all(docs, out)
    subprocess.run(["kubernetes-validate", "--strict", "--quiet", out.name], check=True)
    pathlib.Path(out.name).unlink()
    print(f"deploy/k8s: {len(docs)} resources valid, rendered and checked ({n} shards)")


if __name__ == "__main__":
    main()
