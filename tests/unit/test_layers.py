"""The architecture as contracts: the layering of docs/architecture.md, no package cycles, a light config tree."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_import_contracts_are_kept() -> None:
    lint_imports = Path(sys.executable).with_name("lint-imports")
    done = subprocess.run([str(lint_imports), "--no-cache"], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "3 kept, 0 broken" in done.stdout


def test_the_config_tree_costs_pydantic_and_the_standard_library_only() -> None:
    # A fresh interpreter builds and validates a config, then lists every top-level module it loaded.
    script = (
        "import json, sys\n"
        "from mstar_ray.config import MStarConfig\n"
        "MStarConfig(model={'path': 'm'}, data={'labeled': 'l', 'validation': 'v'}, loop={'eval_test': False})\n"
        "print(json.dumps(sorted({m.split('.')[0] for m in sys.modules})))\n"
    )
    done = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, check=True)
    loaded = {m for m in json.loads(done.stdout) if not m.startswith(("__editable__", "_sysconfigdata_"))}
    allowed = set(sys.stdlib_module_names) | {"mstar_ray", "pydantic", "pydantic_core", "typing_extensions"}
    allowed |= {"annotated_types", "typing_inspection", "_distutils_hack", "__main__"}
    assert loaded - allowed == set()
