"""The daemon's remote source: its own clone of one branch under the state dir, fetched at an interval.

GitOps the way Flux follows a GitRepository: people push to a remote, the daemon fetches the branch
into `STATE/source` (never a person's working tree) and the pass applies new commits exactly as it
does locally. The clone's working tree is checked out (detached) at the fetched head so that
commands run beside the daemon (`minitrade plan --state-dir STATE`) see what was pushed.

Credentials never touch the disk or a command line: an HTTPS token reaches git as an HTTP header
through GIT_CONFIG_* environment variables of the git process only; an SSH key is a file the
person keeps (its path is passed to ssh). A URL with a password in it is refused.
"""

from __future__ import annotations

import base64
import json
import logging
import os
import re
import time
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from urllib.parse import urlsplit

from pydantic import SecretStr

from minitrade import clock, gitrepo
from minitrade.errors import ConfigError, ConfigIssue, GitError
from minitrade.statedir import SOURCE_CLONE

log = logging.getLogger("minitrade.source")
STATUS_FILE = "source.json"
MAX_BACKOFF = timedelta(minutes=15)
FETCH_TIMEOUT = 120.0
# A branch name git accepts and no option or refspec trick: `--upload-pack=...`, `a:b`, `+x`, `..`.
_BRANCH = re.compile(r"^(?!-)(?!.*\.\.)[A-Za-z0-9._/-]+$")


@dataclass(frozen=True)
class SourceSpec:
    """What the daemon follows: `url`'s `branch`, fetched every `interval`."""

    url: str
    branch: str = "main"
    interval: timedelta = timedelta(seconds=60)
    token: SecretStr | None = None   # HTTPS token (resolved from ${ENV}; never written anywhere)
    ssh_key: Path | None = None      # private key file for ssh:// and scp-like URLs

    def __post_init__(self) -> None:
        check_url(self.url)
        if not _BRANCH.match(self.branch):
            raise ConfigError(ConfigIssue("--branch", None, "", f"{self.branch!r} is not a branch name",
                                          "e.g. --branch main"))

    @property
    def tracking_ref(self) -> str:
        """The ref the pass applies: the branch as last fetched."""
        return f"refs/remotes/origin/{self.branch}"


def check_url(url: str) -> None:
    """Refuse a URL that carries a password or token: it would be stored in the clone's config."""
    parts = urlsplit(url)
    if parts.scheme in ("http", "https", "ssh", "git") and parts.password:
        raise ConfigError(ConfigIssue("--source", None, "", f"the URL has a password or token in it "
                                      f"({parts.scheme}://***@{parts.hostname}{parts.path})",
                                      "remove it from the URL and pass it with --token '${MINITRADE_GIT_TOKEN}'"))
    if url.startswith("-"):
        raise ConfigError(ConfigIssue("--source", None, "", f"{url!r} is not a repository URL",
                                      "e.g. https://github.com/you/trading.git"))


@dataclass(frozen=True)
class Fetched:
    """One successful fetch: the branch head now and before (None on the first fetch)."""

    head: str
    previous: str | None
    forced: bool  # the new head does not descend from the previous one (a force-push)

    @property
    def moved(self) -> bool:
        return self.head != self.previous


@dataclass
class SourceStatus:
    """What `minitrade status` shows of the remote source; kept in STATE/source.json."""

    url: str
    branch: str
    remote_head: str | None = None
    last_fetch_at: datetime | None = None     # last attempt
    last_success_at: datetime | None = None
    error: str | None = None
    failing_since: datetime | None = None

    def to_json(self) -> str:
        return json.dumps({k: v.isoformat() if isinstance(v, datetime) else v for k, v in asdict(self).items()})

    @classmethod
    def from_json(cls, text: str) -> SourceStatus:
        raw = json.loads(text)
        for key in ("last_fetch_at", "last_success_at", "failing_since"):
            if raw.get(key):
                raw[key] = datetime.fromisoformat(raw[key])
        return cls(**raw)


def read_status(state_dir: Path) -> SourceStatus | None:
    """The remote source's status as the daemon last wrote it, or None when it follows no remote."""
    try:
        return SourceStatus.from_json((state_dir / STATUS_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError, TypeError):
        return None


@dataclass
class Backoff:
    """When to fetch next: every `interval`, doubling after each failure up to MAX_BACKOFF. On the
    monotonic clock: the schedule of fetches must not follow a faked or adjusted wall clock."""

    interval: timedelta
    failures: int = 0
    next_at: float | None = None  # time.monotonic(); None: due now

    def due(self) -> bool:
        return self.next_at is None or time.monotonic() >= self.next_at

    def seconds_left(self) -> float:
        return 0.0 if self.next_at is None else max(0.0, self.next_at - time.monotonic())

    def succeeded(self) -> None:
        self.failures = 0
        self.next_at = time.monotonic() + self.interval.total_seconds()

    def failed(self) -> timedelta:
        self.failures += 1
        wait = min(self.interval * (1 << min(self.failures - 1, 16)), max(MAX_BACKOFF, self.interval))
        self.next_at = time.monotonic() + wait.total_seconds()
        return wait


@dataclass
class RemoteSource:
    """The daemon's clone of `spec.url` under `state_dir`, and its fetch status."""

    spec: SourceSpec
    state_dir: Path
    status: SourceStatus = field(init=False)

    def __post_init__(self) -> None:
        self.status = read_status(self.state_dir) or SourceStatus(self.spec.url, self.spec.branch)
        if self.status.url != self.spec.url or self.status.branch != self.spec.branch:
            self.status = SourceStatus(self.spec.url, self.spec.branch)

    @property
    def root(self) -> Path:
        return self.state_dir / SOURCE_CLONE

    def ensure_clone(self) -> None:
        """Create the clone (an empty repo with `origin`) or point an existing one at the URL."""
        if not (self.root / ".git").exists():
            self.root.mkdir(parents=True, exist_ok=True)
            gitrepo.init(self.root)
        origin = gitrepo.remote_url(self.root, "origin")  # a git process each: asked once a fetch
        if origin is None:
            gitrepo.add_remote(self.root, "origin", self.spec.url)
        elif origin != self.spec.url:
            log.warning("the clone's origin was %s; now following %s", origin, self.spec.url)
            gitrepo.set_remote_url(self.root, "origin", self.spec.url)

    def fetch(self) -> Fetched:
        """Fetch the branch (a force-push included) and check its head out; GitError on failure."""
        now = clock.now()
        self.status.last_fetch_at = now
        previous = gitrepo.resolve_ref(self.root, self.spec.tracking_ref)
        try:
            self.ensure_clone()
            gitrepo.fetch_branch(self.root, "origin", self.spec.branch, env=self._git_env(),
                                 timeout=FETCH_TIMEOUT)
            head = gitrepo.resolve_ref(self.root, self.spec.tracking_ref)
            if head is None:
                raise GitError(f"branch {self.spec.branch!r} not found at {self.spec.url}")
            if head != previous:
                gitrepo.checkout_detached(self.root, head)
        except GitError as e:
            self.status.error = self._redacted(str(e))
            self.status.failing_since = self.status.failing_since or now
            self._save()
            raise GitError(self.status.error) from None
        forced = previous is not None and head != previous and not gitrepo.is_ancestor(self.root, previous, head)
        self.status.remote_head, self.status.last_success_at = head, now
        self.status.error, self.status.failing_since = None, None
        self._save()
        return Fetched(head, previous, forced)

    def _git_env(self) -> dict[str, str]:
        """Environment for git: never prompt; the token as an HTTP header (env only); the ssh key."""
        env = {"GIT_TERMINAL_PROMPT": "0", "GIT_ASKPASS": "true", "SSH_ASKPASS": "true"}
        if self.spec.token is not None:
            basic = base64.b64encode(f"x-access-token:{self.spec.token.get_secret_value()}".encode()).decode()
            env.update({"GIT_CONFIG_COUNT": "1", "GIT_CONFIG_KEY_0": "http.extraHeader",
                        "GIT_CONFIG_VALUE_0": f"Authorization: Basic {basic}"})
        if self.spec.ssh_key is not None:
            known = self.state_dir / "known_hosts"  # first contact pins the host key (like a first clone)
            env["GIT_SSH_COMMAND"] = (f"ssh -i {_quote(self.spec.ssh_key)} -o IdentitiesOnly=yes -o BatchMode=yes "
                                      f"-o StrictHostKeyChecking=accept-new -o UserKnownHostsFile={_quote(known)}")
        return env

    def _redacted(self, text: str) -> str:
        token = self.spec.token.get_secret_value() if self.spec.token is not None else ""
        return text.replace(token, "***") if token else text

    def _save(self) -> None:
        self.state_dir.mkdir(parents=True, exist_ok=True)
        path = self.state_dir / STATUS_FILE
        tmp = path.with_suffix(".tmp")
        tmp.write_text(self.status.to_json(), encoding="utf-8")
        os.replace(tmp, path)


def _quote(path: Path) -> str:
    import shlex

    return shlex.quote(str(path))
