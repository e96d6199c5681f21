"""`minitrade ib install`: IB's gateway zip unpacked under the state dir, conf.yaml locked, `ib start` uses it."""

from __future__ import annotations

import stat
import threading
import zipfile
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from minitrade.brokers.ib import gateway
from minitrade.cli import app

from .test_ib_gateway_process import JAVA_SHIM, free_port

runner = CliRunner()

# The shape of IB's shipped root/conf.yaml (abridged): only listenPort, listenSsl and ips.allow may change.
SHIPPED_CONF = """\
ip2loc: "US"
proxyRemoteSsl: true
proxyRemoteHost: "https://api.ibkr.com"
listenPort: 5000
listenSsl: true
sslCert: "vertx.jks"
sslPwd: "mywebapi"
serverOptions:
    blockedThreadCheckInterval: 1000000
    eventLoopPoolSize: 20
webApps:
    - name: "demo"
      index: "index.html"
ips:
  allow:
    - 192.*
    - 131.216.*
    - 127.0.0.1
  deny:
    - 212.90.324.10
"""


def gateway_zip(path: Path, *, marker: str = "v1", extra: dict[str, str] | None = None,
                symlink: str | None = None) -> Path:
    """A zip with the layout of clientportal.gw.zip (bin/run.sh, root/conf.yaml, dist/, build/lib/runtime/)."""
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as z:
        run_sh = zipfile.ZipInfo("bin/run.sh")
        run_sh.external_attr = (stat.S_IFREG | 0o755) << 16
        z.writestr(run_sh, "#!/bin/bash\njava -cp root:dist/*:build/lib/runtime/* GatewayStart\n")
        z.writestr("root/conf.yaml", SHIPPED_CONF)
        z.writestr("root/vertx.jks", b"\x00keystore")
        z.writestr("dist/ibgroup.web.core.iblink.router.clientportal.gw.jar", b"PK jar " + marker.encode())
        z.writestr("build/lib/runtime/vertx-core.jar", b"PK jar")
        z.writestr(f"doc/{marker}.txt", marker)
        for name, body in (extra or {}).items():
            z.writestr(name, body)
        if symlink is not None:
            link = zipfile.ZipInfo(symlink)
            link.external_attr = (stat.S_IFLNK | 0o777) << 16
            z.writestr(link, "/etc/passwd")
    return path


def trading_repo(root: Path, port: int) -> Path:
    """A repo with one IB broker and no gateway.install_dir: `ib start` must find the installed copy."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "minitrade.yaml").write_text(
        "state_dir: state\nbrokers:\n  ib-paper:\n    type: ib\n    username: ${IB_USERNAME}\n"
        f"    password: ${{IB_PASSWORD}}\n    gateway: {{url: 'https://localhost:{port}', verify_tls: false}}\n")
    (root / "plans").mkdir(exist_ok=True)
    (root / "strategies").mkdir(exist_ok=True)
    return root


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    return trading_repo(tmp_path / "repo", 5123)


def installed(repo: Path) -> Path:
    return repo / "state" / "ib-gateway" / "ib-paper"


def test_install_from_a_zip_unpacks_it_and_locks_conf_yaml_to_this_machine(repo: Path, tmp_path: Path) -> None:
    result = runner.invoke(app, ["ib", "install", "--from", str(gateway_zip(tmp_path / "gw.zip")), "-C", str(repo)])
    assert result.exit_code == 0, result.output
    folder = installed(repo)
    assert f"installed in {folder}" in result.output
    for rel in ("bin/run.sh", "root/vertx.jks", "dist/ibgroup.web.core.iblink.router.clientportal.gw.jar",
                "build/lib/runtime/vertx-core.jar"):
        assert (folder / rel).is_file(), rel
    assert (folder / "bin" / "run.sh").stat().st_mode & 0o100
    conf = yaml.safe_load((folder / "root" / "conf.yaml").read_text())
    assert conf["listenPort"] == 5123 and conf["listenSsl"] is True
    assert conf["ips"] == {"allow": ["127.0.0.1"], "deny": ["212.90.324.10"]}
    shipped = yaml.safe_load(SHIPPED_CONF)
    assert {k: v for k, v in conf.items() if k not in ("listenPort", "listenSsl", "ips")} == \
        {k: v for k, v in shipped.items() if k not in ("listenPort", "listenSsl", "ips")}


def test_installing_again_replaces_the_copy_and_leaves_no_temporary_folder(repo: Path, tmp_path: Path) -> None:
    for marker in ("v1", "v2"):
        zip_path = gateway_zip(tmp_path / f"{marker}.zip", marker=marker)
        result = runner.invoke(app, ["ib", "install", "--from", str(zip_path), "-C", str(repo)])
        assert result.exit_code == 0, result.output
    assert sorted(p.name for p in (installed(repo) / "doc").iterdir()) == ["v2.txt"]
    assert sorted(p.name for p in installed(repo).parent.iterdir()) == ["ib-paper"]


def test_install_takes_the_listen_port_from_port(repo: Path, tmp_path: Path) -> None:
    result = runner.invoke(app, ["ib", "install", "--from", str(gateway_zip(tmp_path / "gw.zip")),
                                 "--port", "5999", "-C", str(repo)])
    assert result.exit_code == 0, result.output
    assert "will listen on 5999, not on the port of https://localhost:5123" in result.output
    assert yaml.safe_load((installed(repo) / "root" / "conf.yaml").read_text())["listenPort"] == 5999


@pytest.mark.parametrize("entry", [
    pytest.param({"../evil.sh": "x"}, id="parent"),
    pytest.param({"root/../../evil.sh": "x"}, id="parent-inside"),
    pytest.param({"/tmp/evil.sh": "x"}, id="absolute"),
    pytest.param({"..\\evil.sh": "x"}, id="backslash"),
    pytest.param("root/link", id="symlink"),
])
def test_a_zip_with_an_entry_escaping_the_folder_or_a_symlink_is_refused(
        repo: Path, tmp_path: Path, entry: dict[str, str] | str) -> None:
    good = runner.invoke(app, ["ib", "install", "--from", str(gateway_zip(tmp_path / "v1.zip")), "-C", str(repo)])
    assert good.exit_code == 0, good.output
    bad = gateway_zip(tmp_path / "bad.zip", marker="v2", extra=entry if isinstance(entry, dict) else None,
                      symlink=entry if isinstance(entry, str) else None)
    result = runner.invoke(app, ["ib", "install", "--from", str(bad), "-C", str(repo)])
    assert result.exit_code == 1
    assert "refused" in result.output and ("outside the install folder" in result.output
                                           or "is a symlink" in result.output)
    assert not list(tmp_path.rglob("evil.sh"))
    assert sorted(p.name for p in (installed(repo) / "doc").iterdir()) == ["v1.txt"]   # the previous copy stays
    assert sorted(p.name for p in installed(repo).parent.iterdir()) == ["ib-paper"]


def test_a_zip_that_is_not_the_gateway_is_refused(repo: Path, tmp_path: Path) -> None:
    with zipfile.ZipFile(tmp_path / "other.zip", "w") as z:
        z.writestr("README.md", "not a gateway")
    result = runner.invoke(app, ["ib", "install", "--from", str(tmp_path / "other.zip"), "-C", str(repo)])
    assert result.exit_code == 1
    assert "is not IB's Client Portal gateway (no root/conf.yaml in it)" in result.output
    assert not installed(repo).exists()


def test_start_without_install_dir_says_to_run_ib_install(repo: Path) -> None:
    result = runner.invoke(app, ["ib", "start", "-C", str(repo)])
    assert result.exit_code == 1
    assert "no gateway is installed for ib-paper: run `minitrade ib install --account ib-paper`" in result.output


def test_ib_start_runs_the_installed_copy(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    port = free_port()
    repo = trading_repo(tmp_path / "repo", port)
    java = tmp_path / "java"
    java.write_text(JAVA_SHIM)
    java.chmod(0o755)
    monkeypatch.setenv("FAKE_GATEWAY_PORT", str(port))
    monkeypatch.setenv("SHIM_ARGS", str(tmp_path / "args.txt"))
    monkeypatch.setenv("PYTHONPATH", str(Path(__file__).resolve().parents[2]))
    assert runner.invoke(app, ["ib", "install", "--from", str(gateway_zip(tmp_path / "gw.zip")),
                               "-C", str(repo)]).exit_code == 0
    try:
        result = runner.invoke(app, ["ib", "start", "--java", str(java), "-C", str(repo)])
        assert result.exit_code == 0, result.output
        assert (tmp_path / "args.txt").read_text().splitlines()[0] == str(installed(repo))
        again = runner.invoke(app, ["ib", "install", "--from", str(tmp_path / "gw.zip"), "-C", str(repo)])
        assert again.exit_code == 1 and "is running" in again.output and "minitrade ib stop" in again.output
    finally:
        assert gateway.stop("ib-paper", state_dir=repo / "state")


class _ZipServer:
    """Serves one zip over real HTTP on 127.0.0.1, as IB's download server would."""

    def __init__(self, body: bytes) -> None:
        payload = body

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                if self.path != "/portal/clientportal.gw.zip":
                    self.send_error(404)
                    return
                self.send_response(200)
                self.send_header("Content-Type", "application/zip")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/portal/clientportal.gw.zip"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> _ZipServer:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join()


@pytest.fixture
def zip_server(tmp_path: Path) -> Iterator[_ZipServer]:
    # Big enough for several progress updates (incompressible bytes: a deflated zero file would be tiny).
    zip_path = gateway_zip(tmp_path / "served.zip", extra={"build/lib/runtime/big.jar": "x"})
    with zipfile.ZipFile(zip_path, "a", zipfile.ZIP_STORED) as z:
        z.writestr("build/lib/runtime/random.jar", bytes(range(256)) * 12_000)
    with _ZipServer(zip_path.read_bytes()) as server:
        yield server


def test_install_downloads_from_the_configured_url_with_a_progress_line(repo: Path, zip_server: _ZipServer) -> None:
    result = runner.invoke(app, ["ib", "install", "-C", str(repo)], env={"MINITRADE_IB_GATEWAY_URL": zip_server.url})
    assert result.exit_code == 0, result.output
    assert f"downloading {zip_server.url}" in result.stderr
    assert "(100%)" in result.stderr and " MB" in result.stderr
    assert (installed(repo) / "build" / "lib" / "runtime" / "random.jar").stat().st_size == 256 * 12_000
    assert yaml.safe_load((installed(repo) / "root" / "conf.yaml").read_text())["listenPort"] == 5123
    assert not list(installed(repo).rglob("*.zip"))


def test_a_failed_download_says_what_to_do_and_installs_nothing(repo: Path, zip_server: _ZipServer) -> None:
    result = runner.invoke(app, ["ib", "install", "-C", str(repo)],
                           env={"MINITRADE_IB_GATEWAY_URL": zip_server.url.replace(".zip", ".tar")})
    assert result.exit_code == 1
    assert "failed: HTTP 404" in result.output and "pass --from FILE" in result.output
    assert not installed(repo).exists()


def test_a_zip_wrapping_the_gateway_in_one_folder_is_unpacked_without_it(repo: Path, tmp_path: Path) -> None:
    with zipfile.ZipFile(gateway_zip(tmp_path / "flat.zip")) as flat, \
            zipfile.ZipFile(tmp_path / "wrapped.zip", "w") as wrapped:
        for info in flat.infolist():
            wrapped.writestr(f"clientportal.gw/{info.filename}", flat.read(info))
    result = runner.invoke(app, ["ib", "install", "--from", str(tmp_path / "wrapped.zip"), "-C", str(repo)])
    assert result.exit_code == 0, result.output
    assert (installed(repo) / "root" / "conf.yaml").is_file() and (installed(repo) / "bin" / "run.sh").is_file()
