"""Every field odigos-trace writes is documented: records from the demo (both sides, every
endpoint) and from failure cases are walked against docs/schema/record.schema.json — each key
path must be declared there, with the declared type, enum or const."""
import json
import os
import subprocess

from harness import check, free_port, require_root, run_main

SCHEMA = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "docs", "schema",
                      "record.schema.json")
TYPES = {"integer": int, "number": (int, float), "string": str, "boolean": bool, "object": dict}


def walk(value, node, path, errors):
    if "enum" in node and value not in node["enum"]:
        errors.append(f"{path}: {value!r} not in {node['enum']}")
    if "const" in node and value != node["const"]:
        errors.append(f"{path}: {value!r} != const {node['const']!r}")
    t = node.get("type")
    if t:
        ok = isinstance(value, TYPES[t]) and not (t in ("integer", "number") and isinstance(value, bool))
        if not ok:
            errors.append(f"{path}: {value!r} is not {t}")
    if isinstance(value, dict):
        props = node.get("properties", {})
        extra = node.get("additionalProperties")
        for k, v in value.items():
            if k in props:
                walk(v, props[k], f"{path}.{k}" if path else k, errors)
            elif isinstance(extra, dict):
                walk(v, extra, f"{path}.{k}", errors)
            else:
                errors.append(f"{path}.{k}: not documented in the schema")
        for k in node.get("required", []):
            if k not in value:
                errors.append(f"{path}: required field {k} missing")


def test(a):
    require_root()
    with open(SCHEMA) as f:
        schema = json.load(f)
    out = subprocess.run([a.binary, "--json", "--show", "headers,body=16", "demo", "--duration", "2s"],
                         capture_output=True, text=True, timeout=60)
    check(out.returncode == 0, f"demo exit {out.returncode}: {out.stderr}")
    recs = [json.loads(l) for l in out.stdout.splitlines() if l.strip()]
    # A failed connect (kind "connection") too.
    port = free_port()
    fail = subprocess.run([a.binary, "--json", "--", "curl", "-s", f"http://127.0.0.1:{port}/"],
                          capture_output=True, text=True, timeout=60)
    recs += [json.loads(l) for l in fail.stdout.splitlines() if l.startswith("{")]
    kinds = {r["kind"] for r in recs}
    check({"request", "connection"} <= kinds, f"kinds seen: {kinds}")
    errors = []
    for r in recs:
        walk(r, schema, "", errors)
    check(not errors, "records do not match the schema:\n  " + "\n  ".join(sorted(set(errors))[:30]))
    print(f"  {len(recs)} records checked against the schema")


if __name__ == "__main__":
    run_main(test)
