"""The layer contract (import-linter, pyproject), ruff and mypy hold for the whole tree."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _tool(name: str, fallback: list[str]) -> list[str]:
    found = shutil.which(name)
    return [found] if found else [sys.executable, *fallback]


def _run(args: list[str]) -> subprocess.CompletedProcess[str]:
    # The package is found from the checkout, whatever is installed; no caches written (parallel runs).
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    return subprocess.run(args, cwd=ROOT, capture_output=True, text=True, timeout=300, env=env)


def test_import_layers_are_kept() -> None:
    done = _run([*_tool("lint-imports", ["-c", "from importlinter.cli import lint_imports_command as c; c()"]), "--no-cache"])
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]
    assert "0 broken" in done.stdout


def test_ruff_passes_on_package_tests_and_benchmarks() -> None:
    done = _run([*_tool("ruff", ["-m", "ruff"]), "check", "--no-cache", "minitrade", "tests", "bench"])
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]


def test_mypy_passes_on_package_and_tests(tmp_path: Path) -> None:
    """Strict on minitrade/, checked (not strict) on tests/: pyproject's [tool.mypy] says which files."""
    done = _run([*_tool("mypy", ["-m", "mypy"]), "--cache-dir", str(tmp_path / "mypy-cache")])
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]
    assert "Success: no issues found" in done.stdout


# Distribution name -> the module it is imported as, where they differ.
IMPORT_NAME = {"pyyaml": "yaml", "exchange-calendars": "exchange_calendars"}


def test_every_runtime_dependency_is_imported_by_the_package() -> None:
    declared = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    names = [re.split(r"[<>=!~ \[]", d, maxsplit=1)[0].lower() for d in declared]
    source = "\n".join(p.read_text(encoding="utf-8") for p in (ROOT / "minitrade").rglob("*.py"))
    unused = [n for n in names if not re.search(rf"^\s*(import|from) {IMPORT_NAME.get(n, n)}\b", source, re.M)]
    assert unused == [], f"declared in pyproject.toml but imported nowhere in minitrade/: {unused}"
