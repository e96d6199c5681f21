"""Install IB's Client Portal gateway (clientportal.gw.zip) under the state dir, locked to this machine.

The zip is IB's published download (or one given with --from): `bin/run.sh`, `root/conf.yaml`,
`dist/*.jar`, `build/lib/runtime/*.jar`. It is unpacked into a temporary folder beside the target
and renamed into place, so a failed or interrupted install leaves the previous copy as it was. A zip
entry that would land outside the folder (absolute path, `..`), a symlink or a special file refuses
the whole zip: it is code that will run with the trader's credentials.
"""

from __future__ import annotations

import os
import shutil
import stat
import tempfile
import zipfile
from collections.abc import Callable
from pathlib import Path, PurePosixPath
from typing import Any
from urllib.parse import urlsplit

import requests
import yaml

from minitrade.brokers.ib.gateway import installed_dir, running_pid
from minitrade.errors import BrokerError, BrokerUnavailable
from minitrade.models import IBBroker as IBBrokerSpec

DOWNLOAD_URL = "https://download2.interactivebrokers.com/portal/clientportal.gw.zip"
URL_ENV = "MINITRADE_IB_GATEWAY_URL"     # a mirror, or a local server in tests
MAX_UNPACKED = 512 * 1024 * 1024          # IB's zip unpacks to ~20 MB; more is a zip bomb, not a gateway
_CHUNK = 256 * 1024

Progress = Callable[[int, int | None], None]   # (bytes so far, total bytes if the server said)


def download_url() -> str:
    """IB's published download, unless MINITRADE_IB_GATEWAY_URL names another."""
    return os.environ.get(URL_ENV) or DOWNLOAD_URL


def install(account: str, spec: IBBrokerSpec, *, state_dir: Path, zip_path: Path | None = None,
            url: str | None = None, port: int | None = None, progress: Progress | None = None) -> Path:
    """Unpack the gateway for `account` (from `zip_path`, else downloaded) and write its conf.yaml.

    Replaces an earlier install of the same account; refuses while its gateway runs. `port` overrides
    listenPort (default: the port of gateway.url).

    Example: install("ib-paper", spec, state_dir=Path("state"), zip_path=Path("clientportal.gw.zip"))
    """
    target = installed_dir(state_dir, account)
    pid = running_pid(account, state_dir=state_dir)
    if pid is not None:
        raise BrokerError(f"the gateway of {account} is running (pid {pid}): stop it first "
                          f"(`minitrade ib stop --account {account}`), then install again", account=account)
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=target.parent, prefix=f".{account}.") as tmp:
        work = Path(tmp)
        if zip_path is None:
            zip_path = work / "clientportal.gw.zip"
            download(url or download_url(), zip_path, progress=progress, account=account)
        unpacked = work / "gateway"
        unpack(zip_path, unpacked, account=account)
        write_conf(unpacked / "root" / "conf.yaml", spec.gateway.url, port=port, account=account)
        if target.exists():
            target.rename(work / "previous")     # removed with the temporary folder
        unpacked.rename(target)
    return target


def download(url: str, target: Path, *, progress: Progress | None = None, account: str = "") -> None:
    """Stream `url` into `target`, reporting progress."""
    try:
        with requests.get(url, stream=True, timeout=60) as response:
            if response.status_code != 200:
                raise BrokerUnavailable(f"downloading the gateway from {url} failed: HTTP {response.status_code}; "
                                        "try again later, or download it yourself and pass --from FILE",
                                        account=account)
            total = int(response.headers["Content-Length"]) if response.headers.get("Content-Length") else None
            done = 0
            with target.open("wb") as out:
                for chunk in response.iter_content(_CHUNK):
                    out.write(chunk)
                    done += len(chunk)
                    if progress is not None:
                        progress(done, total)
    except requests.RequestException as e:
        raise BrokerUnavailable(f"downloading the gateway from {url} failed ({type(e).__name__}); check the "
                                "network, or download it yourself and pass --from FILE", account=account) from e


def unpack(zip_path: Path, target: Path, *, account: str = "") -> None:
    """Check every entry of the zip first, then extract it into `target` (created)."""
    try:
        with zipfile.ZipFile(zip_path) as archive:
            members = _checked(archive, zip_path, account)
            prefix = _top_folder(members)
            target.mkdir(parents=True)
            for info, path in members:
                _extract(archive, info, target.joinpath(*path.parts[len(prefix.parts):]))
    except (zipfile.BadZipFile, zipfile.LargeZipFile, EOFError) as e:
        raise BrokerError(f"{zip_path} is not a readable zip ({e}): download clientportal.gw.zip again",
                          account=account) from e
    if not (target / "root" / "conf.yaml").is_file():
        raise BrokerError(f"{zip_path} is not IB's Client Portal gateway (no root/conf.yaml in it)", account=account)


def _checked(archive: zipfile.ZipFile, zip_path: Path, account: str) -> list[tuple[zipfile.ZipInfo, PurePosixPath]]:
    members, size = [], 0
    for info in archive.infolist():
        name = info.filename
        path = PurePosixPath(name)
        if name.startswith(("/", "\\")) or "\\" in name or ":" in name or ".." in path.parts:
            raise BrokerError(f"{zip_path} refused: entry {name!r} would be written outside the install folder",
                              account=account)
        kind = stat.S_IFMT(info.external_attr >> 16)
        if kind and kind not in (stat.S_IFREG, stat.S_IFDIR):
            what = "a symlink" if kind == stat.S_IFLNK else "not a plain file"
            raise BrokerError(f"{zip_path} refused: entry {name!r} is {what}", account=account)
        size += info.file_size
        if size > MAX_UNPACKED:
            raise BrokerError(f"{zip_path} refused: it unpacks to more than {MAX_UNPACKED >> 20} MB",
                              account=account)
        members.append((info, path))
    return members


def _top_folder(members: list[tuple[zipfile.ZipInfo, PurePosixPath]]) -> PurePosixPath:
    """'' for IB's layout (root/ at the top); the one folder when the zip wraps everything in one."""
    tops = {path.parts[0] for _, path in members if path.parts}
    if len(tops) == 1:
        top = tops.pop()
        if any(p.parts == (top, "root", "conf.yaml") for _, p in members):
            return PurePosixPath(top)
    return PurePosixPath()


def _extract(archive: zipfile.ZipFile, info: zipfile.ZipInfo, dest: Path) -> None:
    if info.is_dir():
        dest.mkdir(parents=True, exist_ok=True)
        return
    dest.parent.mkdir(parents=True, exist_ok=True)
    with archive.open(info) as src, dest.open("wb") as out:
        shutil.copyfileobj(src, out, _CHUNK)
    mode = (info.external_attr >> 16) & 0o777
    dest.chmod((mode | 0o600) & 0o755 if mode else 0o644)   # bin/run.sh stays executable; nothing world-writable


def write_conf(path: Path, url: str, *, port: int | None = None, account: str = "") -> None:
    """Point the shipped conf.yaml at gateway.url's port and this machine only; other keys stay as shipped."""
    try:
        conf = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as e:
        raise BrokerError(f"the gateway's root/conf.yaml cannot be read ({type(e).__name__}): "
                          "download clientportal.gw.zip again", account=account) from e
    if not isinstance(conf, dict):
        raise BrokerError("the gateway's root/conf.yaml is not a map of settings: download clientportal.gw.zip "
                          "again", account=account)
    parts = urlsplit(url)
    conf["listenPort"] = port or parts.port or (443 if parts.scheme == "https" else 80)
    conf["listenSsl"] = parts.scheme == "https"     # the client speaks what gateway.url says
    ips: dict[str, Any] = conf["ips"] if isinstance(conf.get("ips"), dict) else {}
    ips["allow"] = ["127.0.0.1"]                   # the session trades real money: this machine only
    conf["ips"] = ips
    path.write_text(yaml.safe_dump(conf, sort_keys=False, default_flow_style=False), encoding="utf-8")
