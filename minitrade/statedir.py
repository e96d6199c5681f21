"""Where a trading repo keeps its state, found without validating the repo.

The daemon must start on a broken head or a half-edited working tree (the applied state keeps
running), and state-reading commands must work beside a daemon that follows a remote: so the
state dir is found from `--state-dir` / MINITRADE_STATE_DIR first, else read leniently from
minitrade.yaml (working tree, else HEAD), else the default `state`.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from minitrade import gitrepo
from minitrade.errors import GitError
from minitrade.yamlsource import YamlDoc, parse_yaml

STATE_DIR_ENV = "MINITRADE_STATE_DIR"
DEFAULT_STATE_DIR = "state"
SETTINGS_FILE = "minitrade.yaml"
# A daemon following a remote keeps its clone here, inside its state dir.
SOURCE_CLONE = "source"


@dataclass(frozen=True)
class StatePlace:
    """The state dir and the tracked branch of a repo, as far as they can be told without validating."""

    state_dir: Path
    branch: str | None
    timezone: str  # minitrade.yaml's, for times typed on the command line (UTC when unreadable)


def state_dir_override() -> Path | None:
    """The state dir given by `--state-dir` or MINITRADE_STATE_DIR, if any (absolute)."""
    value = os.environ.get(STATE_DIR_ENV, "").strip()
    return Path(value).expanduser().resolve() if value else None


def resolve_state_dir(root: Path, configured: str) -> Path:
    """`configured` (minitrade.yaml's state_dir) relative to `root`, unless overridden."""
    override = state_dir_override()
    if override is not None:
        return override
    state = Path(configured).expanduser()
    return state if state.is_absolute() else root / state


def locate(root: Path) -> StatePlace:
    """The state dir and branch of the repo at `root`, never failing on invalid files."""
    settings = _lenient_settings(root)
    configured, branch, zone = settings.get("state_dir"), settings.get("branch"), settings.get("timezone")
    return StatePlace(resolve_state_dir(root, configured if isinstance(configured, str) else DEFAULT_STATE_DIR),
                      branch if isinstance(branch, str) else None, zone if isinstance(zone, str) else "UTC")


def _lenient_settings(root: Path) -> dict[str, object]:
    """minitrade.yaml's top-level mapping from the working tree, else from HEAD, else empty."""
    for raw in (_worktree_settings(root), _head_settings(root)):
        if raw is None:
            continue
        doc = parse_yaml(raw, SETTINGS_FILE)  # bounded: a hostile file is refused, not expanded
        if isinstance(doc, YamlDoc) and isinstance(doc.data, dict):
            return doc.data
    return {}


def _worktree_settings(root: Path) -> bytes | None:
    try:
        return (root / SETTINGS_FILE).read_bytes()
    except OSError:
        return None


def _head_settings(root: Path) -> bytes | None:
    try:
        head = gitrepo.resolve(root, "HEAD") if gitrepo.is_repo(root) else None
        return gitrepo.read_file(root, head, SETTINGS_FILE) if head else None
    except GitError:
        return None
