"""Find the Chromium (or Chrome) browser and the chromedriver that drives it; never assume a distribution.

Used by `minitrade ib login` (the gateway's login page) and by the browser tests. Looked up in this
order, per program:

1. an environment variable: `MINITRADE_CHROMIUM` (the browser executable) and `MINITRADE_CHROMEDRIVER`
   (the driver). They describe the machine, not the trading repo, so they are not settings in
   minitrade.yaml (which is shared through git between machines);
2. the PATH: `chromium`, `chromium-browser`, `google-chrome`, `google-chrome-stable` for the browser
   and `chromedriver` for the driver;
3. on macOS, the application bundles of Chromium and Google Chrome in /Applications.

Selenium Manager is never asked: it would download a driver from the network behind the user's back.
"""

from __future__ import annotations

import os
import shutil
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from minitrade.errors import BrowserMissing

BROWSER_ENV, DRIVER_ENV = "MINITRADE_CHROMIUM", "MINITRADE_CHROMEDRIVER"
BROWSER_NAMES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
DRIVER_NAMES = ("chromedriver",)
MACOS_BROWSERS = ("/Applications/Chromium.app/Contents/MacOS/Chromium",
                  "/Applications/Google Chrome.app/Contents/MacOS/Google Chrome")
INSTALL_HINT = ("install Chromium and its driver (Debian/Ubuntu: `apt install chromium chromium-driver`; "
                "Fedora: `dnf install chromium chromedriver`; macOS: `brew install --cask chromium "
                "chromedriver`), or point {browser_env} and {driver_env} at the executables")


@dataclass(frozen=True)
class Browser:
    """The browser executable and the chromedriver that drives it."""

    binary: Path
    driver: Path


def find_browser(env: Mapping[str, str] | None = None) -> Browser:
    """The browser and driver of this machine.

    Raises:
        BrowserMissing: either is not found, or an environment variable names a file that does not run.
    """
    env = os.environ if env is None else env
    binary = _find("Chromium/Chrome", BROWSER_ENV, BROWSER_NAMES,
                   MACOS_BROWSERS if sys.platform == "darwin" else (), env)
    driver = _find("chromedriver", DRIVER_ENV, DRIVER_NAMES, (), env)
    missing = [what for what, path in (("Chromium (or Chrome)", binary), ("chromedriver", driver)) if path is None]
    if missing:
        hint = INSTALL_HINT.format(browser_env=BROWSER_ENV, driver_env=DRIVER_ENV)
        raise BrowserMissing(f"{' and '.join(missing)} not found on PATH ({', '.join(BROWSER_NAMES + DRIVER_NAMES)} "
                             f"were looked for): {hint}")
    assert binary is not None and driver is not None
    return Browser(binary, driver)


def _find(what: str, variable: str, names: tuple[str, ...], fixed: tuple[str, ...],
          env: Mapping[str, str]) -> Path | None:
    """The program a variable names (it must run), else the first found on PATH or at a fixed place."""
    named = env.get(variable, "").strip()
    if named:
        path = Path(named).expanduser()
        if not (path.is_file() and os.access(path, os.X_OK)):
            raise BrowserMissing(f"{variable}={named} is not an executable file; point it at the {what} "
                                 f"executable or unset it to search the PATH")
        return path
    search = env.get("PATH", os.defpath)
    for name in names:
        found = shutil.which(name, path=search)
        if found:
            return Path(found)
    return next((Path(p) for p in fixed if os.access(p, os.X_OK)), None)
