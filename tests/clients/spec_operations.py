"""The spec's Client-Server operations, as `tests/clients/spec_operations.json` records them.

    python3 tests/clients/spec_operations.py [SPEC_DIR]  # rewrites the JSON file

SPEC_DIR is the matrix-spec checkout's `data/api/client-server` (default: the shared copy beside
this repository, `../shared/matrix-spec/data/api/client-server`). Every non-deprecated
operation: method, full path (the file's `basePath` + the path), operationId and file.
`test_spec_coverage.py` sends each to the real server.
"""

import json
import sys
from pathlib import Path

import yaml

HERE = Path(__file__).resolve().parent
DEFAULT_SPEC = HERE.parents[2] / "shared" / "matrix-spec" / "data" / "api" / "client-server"
OUTPUT = HERE / "spec_operations.json"


def operations(spec_dir: Path) -> list[dict]:
    ops = []
    for f in sorted(spec_dir.glob("*.yaml")):
        doc = yaml.safe_load(f.read_text())
        base = ""
        for server in doc.get("servers") or []:
            base = ((server.get("variables") or {}).get("basePath") or {}).get("default", base)
        for path, methods in (doc.get("paths") or {}).items():
            for method, op in methods.items():
                if method not in ("get", "put", "post", "delete", "patch") or op.get("deprecated"):
                    continue
                ops.append({"method": method.upper(), "path": base + path, "operation": op["operationId"], "file": f.name})
    return ops


if __name__ == "__main__":
    spec = Path(sys.argv[1]) if len(sys.argv) > 1 else DEFAULT_SPEC
    ops = operations(spec)
    OUTPUT.write_text("[\n" + ",\n".join(json.dumps(op) for op in ops) + "\n]\n")
    print(f"{OUTPUT}: {len(ops)} operations")
