"""Shared fixtures. ``app``: the real app (``python app.py``) served on a free port.

One server is started per test session and shared by the API and browser tests. It
runs with the shipped weights, or those in ``$GLOW_DEMO_WEIGHTS`` when that is set, in
an empty working folder, with Gradio's temporary folder (``GRADIO_TEMP_DIR``) elsewhere,
so a test can check that it writes nothing outside that.

``randomise``: moves a flow's parameters off their initial values, the same way every time.

``@pytest.mark.needs_data(path, ...)``: the test reads the data sets in ``../shared/data``,
which no user's clone has. Without them it is skipped, saying which folder is missing;
with ``CI`` set it fails instead, so CI (which has the data) never silently skips it.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch

from glow_demo.model import ActNorm

ROOT = Path(__file__).resolve().parents[1]
START_TIMEOUT_S = 120


def _randomise(module: torch.nn.Module, scale: float = 0.1) -> torch.nn.Module:
    """Move every parameter off its initial value (zero-initialised convs make identity
    layers, whose log-det is trivially right and which decode anything) and mark ActNorms
    initialised; seeded, so the same module gets the same weights every time."""
    torch.manual_seed(1)
    with torch.no_grad():
        for p in module.parameters():
            p.add_(torch.randn_like(p) * scale)
        for m in module.modules():
            if isinstance(m, ActNorm):
                m.initialized.fill_(1)
    return module


@pytest.fixture
def randomise() -> Callable[..., torch.nn.Module]:
    return _randomise


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "needs_data(*paths): reads these folders of ../shared/data; skipped "
        "without them, failed without them when CI is set")


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item: pytest.Item) -> None:
    """Skip (or, under CI, fail) a ``needs_data`` test before its fixtures read the data."""
    for mark in item.iter_markers("needs_data"):
        missing = [str(p) for p in mark.args if not Path(p).exists()]
        if missing:
            reason = f"data set not found: {', '.join(missing)} (see README, Data and licence)"
            if os.environ.get("CI"):
                pytest.fail(f"{reason}; CI must provide ../shared/data", pytrace=False)
            pytest.skip(reason)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _tail(path: Path, n: int = 40) -> str:
    return "\n".join(path.read_text(errors="replace").splitlines()[-n:])


@dataclass(frozen=True)
class AppServer:
    url: str  # http://127.0.0.1:<port>/
    cwd: Path  # the app's working folder: empty at start
    temp_dir: Path  # GRADIO_TEMP_DIR
    log: Path  # the app's stdout and stderr
    pid: int  # the server process (its memory is read from /proc/<pid>/status)


@pytest.fixture(scope="session")
def decode_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A cache folder holding the compiled decode of the app's model, as a user's holds
    it from the app's first start on (``glow_demo.compiled``): built once per session."""
    from glow_demo import compiled
    from glow_demo.editor import FaceEditor
    from glow_demo.model import DEFAULT_WEIGHTS

    cache = tmp_path_factory.mktemp("decode-cache")
    editor = FaceEditor.load(os.environ.get("GLOW_DEMO_WEIGHTS") or DEFAULT_WEIGHTS)
    # If it cannot be built the app decodes eagerly, and only the tests of the compiled
    # decode itself fail (test_compiled.py, test_app_api.py), not every app test.
    compiled.compile_decode(editor.model, cache)
    return cache


@pytest.fixture(scope="session")
def app(tmp_path_factory: pytest.TempPathFactory, decode_cache: Path) -> Iterator[AppServer]:
    """Start ``python app.py --port <free>``, wait until it serves the page, stop it after.
    Its compiled decoder is in ``decode_cache``, so it decodes as it does for a user once
    that is built."""
    tmp = tmp_path_factory.mktemp("app")
    cwd, temp_dir, log = tmp / "cwd", tmp / "gradio", tmp / "app.log"
    cwd.mkdir()
    port = _free_port()
    url = f"http://127.0.0.1:{port}/"
    cmd = [sys.executable, str(ROOT / "app.py"), "--port", str(port)]
    if os.environ.get("GLOW_DEMO_WEIGHTS"):
        cmd += ["--weights", os.environ["GLOW_DEMO_WEIGHTS"]]
    env = {**os.environ, "GRADIO_TEMP_DIR": str(temp_dir), "PYTHONUNBUFFERED": "1",
           "GLOW_DEMO_CACHE": str(decode_cache)}
    with log.open("w") as out:
        proc = subprocess.Popen(cmd, cwd=cwd, env=env, stdout=out, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + START_TIMEOUT_S
        while True:
            if proc.poll() is not None:
                pytest.fail(f"app.py exited with {proc.returncode}:\n{_tail(log)}")
            try:
                with urllib.request.urlopen(url, timeout=5) as response:
                    if response.status == 200:
                        break
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"app.py did not serve {url} within {START_TIMEOUT_S} s:\n"
                            f"{_tail(log)}")
            time.sleep(0.25)
        yield AppServer(url=url, cwd=cwd, temp_dir=temp_dir, log=log, pid=proc.pid)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


# ----- a real browser (Debian's Chromium, driven by Playwright) -------------------------

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--no-first-run"]
BROWSER_TIMEOUT_MS = 90_000  # a test module may set its own TIMEOUT_MS


@pytest.fixture(scope="module")
def browser():
    """Chromium for the module's tests: skipped without it, failed without it under CI."""
    if not CHROMIUM.exists():
        reason = f"{CHROMIUM} not found: apt-get install chromium"
        if os.environ.get("CI"):
            pytest.fail(f"{reason} (CI must install it)", pytrace=False)
        pytest.skip(reason)
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), headless=True,
                                    args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture
def page(request: pytest.FixtureRequest, browser, app: AppServer):
    """A fresh page on the app; requests that leave this computer are blocked and listed."""
    import re

    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    context.set_default_timeout(getattr(request.module, "TIMEOUT_MS", BROWSER_TIMEOUT_MS))
    page = context.new_page()
    page.external_requests = []

    def route(r):
        if re.match(r"^(https?|wss?)://(127\.0\.0\.1|localhost)[:/]", r.request.url) or \
                r.request.url.startswith(("data:", "blob:")):
            r.continue_()
        else:
            page.external_requests.append(r.request.url)
            r.abort()

    page.route("**/*", route)
    page.goto(app.url)
    yield page
    context.close()
