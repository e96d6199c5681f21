"""A thin wrapper over the `git` command: HEAD, files at a commit, commit info, dirtiness."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from minitrade.errors import GitError


@dataclass(frozen=True)
class CommitInfo:
    sha: str
    author_time: datetime
    message: str


def _git(root: Path, *args: str, binary: bool = False, env: Mapping[str, str] | None = None,
         timeout: float = 60.0) -> str | bytes:
    full_env = {**os.environ, **env} if env else None
    try:
        done = subprocess.run(["git", "-C", str(root), *args], capture_output=True, check=False, timeout=timeout,
                              env=full_env, stdin=subprocess.DEVNULL)
    except FileNotFoundError as e:
        raise GitError("git is not installed") from e
    except subprocess.TimeoutExpired as e:
        raise GitError(f"git {' '.join(args)} timed out in {root}") from e
    if done.returncode != 0:
        msg = done.stderr.decode("utf-8", "replace").strip().splitlines()
        raise GitError(f"git {' '.join(args)} failed in {root}: {msg[-1] if msg else 'unknown error'}")
    return done.stdout if binary else done.stdout.decode("utf-8", "replace")


def is_repo(root: Path) -> bool:
    try:
        return str(_git(root, "rev-parse", "--is-inside-work-tree")).strip() == "true"
    except GitError:
        return False


def toplevel(root: Path) -> Path:
    return Path(str(_git(root, "rev-parse", "--show-toplevel")).strip())


def resolve(root: Path, rev: str = "HEAD") -> str | None:
    """The full SHA of `rev`, or None when the repo has no commit yet (rev HEAD only)."""
    try:
        return str(_git(root, "rev-parse", "--verify", "--quiet", f"{rev}^{{commit}}")).strip()
    except GitError:
        if rev == "HEAD":
            return None
        raise GitError(f"unknown revision {rev!r} in {root}") from None


def branch(root: Path) -> str | None:
    """The checked-out branch, or None on a detached HEAD (or outside a repo)."""
    try:
        return str(_git(root, "symbolic-ref", "--short", "-q", "HEAD")).strip() or None
    except GitError:
        return None


def commit_info(root: Path, sha: str) -> CommitInfo:
    out = str(_git(root, "show", "-s", "--format=%H%x00%aI%x00%B", sha))
    full, when, message = out.split("\x00", 2)
    return CommitInfo(full.strip(), datetime.fromisoformat(when.strip()), message.strip())


def list_files(root: Path, sha: str, prefix: str = "") -> list[str]:
    """Repo-relative paths of the files in commit `sha` (under `prefix`)."""
    args = ["ls-tree", "-r", "--name-only", "-z", sha]
    if prefix:
        args += ["--", prefix]
    return [p for p in str(_git(root, *args)).split("\x00") if p]


def list_symlinks(root: Path, sha: str) -> list[str]:
    """Repo-relative paths of the symbolic links (tree entries of mode 120000) in commit `sha`."""
    out = str(_git(root, "ls-tree", "-r", "-z", sha))
    entries = (e.split("\t", 1) for e in out.split("\x00") if "\t" in e)
    return [path for meta, path in entries if meta.startswith("120000 ")]


def read_file(root: Path, sha: str, path: str) -> bytes:
    return bytes(_git(root, "show", f"{sha}:{path}", binary=True))  # type: ignore[arg-type]


def dirty_paths(root: Path, paths: list[str]) -> list[str]:
    """Which of `paths` (files or folders) differ from HEAD in the working tree, untracked included."""
    out = str(_git(root, "status", "--porcelain", "-z", "--untracked-files=all", "--", *paths))
    entries = [e for e in out.split("\x00") if e]
    return sorted({e[3:] for e in entries if len(e) > 3})


# ---------------------------------------------------------------------------------------------
# the daemon's own clone of a remote (minitrade.source)

def init(root: Path) -> None:
    _git(root, "init", "--quiet")


def remote_url(root: Path, remote: str) -> str | None:
    try:
        return str(_git(root, "remote", "get-url", remote)).strip()
    except GitError:
        return None


def add_remote(root: Path, remote: str, url: str) -> None:
    _git(root, "remote", "add", remote, "--", url)


def set_remote_url(root: Path, remote: str, url: str) -> None:
    _git(root, "remote", "set-url", remote, "--", url)


def fetch_branch(root: Path, remote: str, branch: str, *, env: Mapping[str, str], timeout: float) -> None:
    """Fetch `branch` into refs/remotes/<remote>/<branch>, also when it was force-pushed (`+`)."""
    _git(root, "fetch", "--quiet", "--no-tags", "--prune", remote,
         f"+refs/heads/{branch}:refs/remotes/{remote}/{branch}", env=env, timeout=timeout)


def resolve_ref(root: Path, ref: str) -> str | None:
    """The commit `ref` points at, or None when it does not exist (yet)."""
    try:
        return str(_git(root, "rev-parse", "--verify", "--quiet", f"{ref}^{{commit}}")).strip() or None
    except GitError:
        return None


def checkout_detached(root: Path, sha: str) -> None:
    """Make the working tree exactly `sha` (nobody edits the daemon's clone)."""
    _git(root, "checkout", "--quiet", "--force", "--detach", sha)
    _git(root, "clean", "--quiet", "-d", "--force")


def is_ancestor(root: Path, older: str, newer: str) -> bool:
    try:
        _git(root, "merge-base", "--is-ancestor", older, newer)
        return True
    except GitError:
        return False
