"""Drive Debian's headless ``chromium`` from a test, with no extra Python package.

Chromium speaks the DevTools protocol over a pipe (``--remote-debugging-pipe``:
JSON messages ended by a NUL byte, commands on its fd 3, answers on its fd 4),
so a page can be loaded, evaluated in and photographed with the standard
library alone.
"""

from __future__ import annotations

import base64
import contextlib
import fcntl
import json
import os
import select
import shutil
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

CHROMIUM = "chromium"


def chromium_path() -> str | None:
    """The chromium binary, or None when it is not installed."""
    return shutil.which(CHROMIUM)


class BrowserError(RuntimeError):
    pass


class Browser:
    """One headless chromium with one page: ``with Browser() as b: b.open(url)``."""

    def __init__(self, width: int = 1280, height: int = 900, timeout: float = 60.0) -> None:
        self.width, self.height, self.timeout = width, height, timeout
        self._id = 0
        self._buf = b""
        self._session = ""

    def __enter__(self) -> Browser:
        binary = chromium_path()
        if binary is None:
            raise BrowserError("chromium is not installed (./setup.sh installs it)")
        self._profile = tempfile.mkdtemp(prefix="kolapy-chromium-")
        to_child_r, self._to_child = os.pipe()
        self._from_child, from_child_w = os.pipe()
        # the child must find them exactly at fds 3 and 4: stage them high, then dup2
        high_r = fcntl.fcntl(to_child_r, fcntl.F_DUPFD, 20)
        high_w = fcntl.fcntl(from_child_w, fcntl.F_DUPFD, 20)
        os.close(to_child_r)
        os.close(from_child_w)

        def fds() -> None:
            os.dup2(high_r, 3)
            os.dup2(high_w, 4)

        self.proc = subprocess.Popen(
            [binary, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
             "--remote-debugging-pipe", f"--user-data-dir={self._profile}",
             f"--window-size={self.width},{self.height}", "about:blank"],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            pass_fds=(3, 4, high_r, high_w), preexec_fn=fds,  # fds are closed after fds()
        )
        os.close(high_r)
        os.close(high_w)
        return self

    def __exit__(self, *exc: object) -> None:
        with contextlib.suppress(OSError):
            self._send("Browser.close", {}, wait=False)
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        os.close(self._to_child)
        os.close(self._from_child)
        shutil.rmtree(self._profile, ignore_errors=True)

    # -- protocol --------------------------------------------------------------
    def _send(self, method: str, params: dict[str, Any], wait: bool = True,
              session: bool = False) -> dict[str, Any]:
        self._id += 1
        msg: dict[str, Any] = {"id": self._id, "method": method, "params": params}
        if session:
            msg["sessionId"] = self._session
        os.write(self._to_child, json.dumps(msg).encode() + b"\0")
        return self._answer(self._id, method) if wait else {}

    def _answer(self, wanted: int, method: str) -> dict[str, Any]:
        end = time.monotonic() + self.timeout
        while True:
            while b"\0" in self._buf:
                raw, self._buf = self._buf.split(b"\0", 1)
                msg = json.loads(raw)
                if msg.get("id") == wanted:
                    if "error" in msg:
                        raise BrowserError(f"{method}: {msg['error']}")
                    return dict(msg.get("result", {}))
            left = end - time.monotonic()
            if left <= 0:
                raise BrowserError(f"{method}: no answer from chromium in {self.timeout} s")
            ready, _, _ = select.select([self._from_child], [], [], left)
            if ready:
                data = os.read(self._from_child, 1 << 20)
                if not data:
                    raise BrowserError(f"{method}: chromium closed its pipe")
                self._buf += data

    # -- what a test uses ------------------------------------------------------------
    def open(self, url: str, ready: str = "document.readyState === 'complete'") -> None:
        """Load ``url`` in a new page and wait until the JS expression ``ready`` holds."""
        target = self._send("Target.createTarget", {"url": "about:blank"})["targetId"]
        self._session = self._send(
            "Target.attachToTarget", {"targetId": target, "flatten": True}
        )["sessionId"]
        self._send("Emulation.setDeviceMetricsOverride",
                   {"width": self.width, "height": self.height, "deviceScaleFactor": 1,
                    "mobile": False}, session=True)
        self._send("Page.navigate", {"url": url}, session=True)
        end = time.monotonic() + self.timeout
        while not self.eval(f"!!({ready})"):
            if time.monotonic() > end:
                raise BrowserError(f"{url}: not ready ({ready}) in {self.timeout} s")
            time.sleep(0.1)

    def eval(self, expression: str) -> Any:
        """The value of a JS expression in the page (JSON-able values only)."""
        got = self._send("Runtime.evaluate",
                         {"expression": expression, "returnByValue": True}, session=True)
        if "exceptionDetails" in got:
            raise BrowserError(f"{expression}: {got['exceptionDetails']}")
        return got.get("result", {}).get("value")

    def screenshot(self, path: Path, full_page: bool = True) -> Path:
        """Save a PNG of the page (the whole page, not just the window, by default)."""
        params: dict[str, Any] = {"format": "png"}
        if full_page:
            w, h = self.eval("[document.documentElement.scrollWidth,"
                             " document.documentElement.scrollHeight]")
            params["clip"] = {"x": 0, "y": 0, "width": w, "height": h, "scale": 1}
            params["captureBeyondViewport"] = True
        data = self._send("Page.captureScreenshot", params, session=True)["data"]
        path.write_bytes(base64.b64decode(data))
        return path
