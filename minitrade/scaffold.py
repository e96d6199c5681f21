"""`minitrade init`: a new trading repo that validates, plans and applies at once.

It also writes a GitHub Actions workflow that validates each pull request and posts its plan as a comment.
"""

from __future__ import annotations

import shutil
import subprocess
from importlib import resources
from pathlib import Path

from minitrade.errors import GitError
from minitrade.schemas import write_schemas

FILES = {
    "minitrade.yaml": "minitrade.yaml",
    "plans/example.yaml": "plans/example.yaml",
    "strategies/example.py": "strategies/example.py",
    ".gitignore": "gitignore",
    ".github/workflows/minitrade.yml": "github-workflow.yml",   # validate + plan as a comment on pull requests
}


def scaffold(root: Path) -> list[Path]:
    """Create the files (never overwriting one), `git init` and commit them; returns what was created."""
    existing = [rel for rel in FILES if (root / rel).exists()]
    if existing:
        raise GitError(f"{root} already has {', '.join(existing)}; choose an empty folder")
    root.mkdir(parents=True, exist_ok=True)
    source = resources.files("minitrade") / "scaffold_files"
    created = []
    for rel, name in FILES.items():
        target = root / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        with resources.as_file(source / name) as path:
            shutil.copyfile(path, target)
        created.append(target)
    created += write_schemas(root / "schemas")
    _git_commit(root, [str(p.relative_to(root)) for p in created])
    return created


def _git_commit(root: Path, paths: list[str]) -> None:
    def git(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(["git", "-C", str(root), *args], capture_output=True, text=True, check=False)

    if git("rev-parse", "--is-inside-work-tree").returncode != 0 and git("init", "-q").returncode != 0:
        raise GitError(f"git init failed in {root}")
    identity: list[str] = []
    if not git("config", "user.email").stdout.strip():
        identity = ["-c", "user.name=minitrade init", "-c", "user.email=minitrade@localhost"]
    git("add", "--", *paths)
    done = git(*identity, "commit", "-q", "-m", "minitrade init: example trading repo", "--", *paths)
    if done.returncode != 0:
        raise GitError(f"git commit failed in {root}: {done.stderr.strip()}")
