"""Headless Chromium driven over the Chrome DevTools Protocol (websockets only, no extra packages)."""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any

import httpx

from tests.support.processes import spawn

CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
]


def find_or_install_chromium() -> tuple[str | None, str]:
    """The chromium binary, installing Debian's package when missing and allowed; else why not."""
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found:
        return found, "found"
    if os.geteuid() != 0:
        return None, "chromium is not installed and the tests are not root (run: sudo apt-get install -y chromium)"
    if shutil.which("apt-get") is None:
        return None, "chromium is not installed and there is no apt-get to install it"
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for argv in (["apt-get", "update"], ["apt-get", "install", "-y", "--no-install-recommends", "chromium"]):
        result = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=900, check=False)
        if result.returncode != 0:
            tail = (result.stderr or result.stdout).strip().splitlines()[-3:]
            return None, f"'{' '.join(argv)}' failed: {' / '.join(tail)}"
    found = shutil.which("chromium")
    return (found, "installed") if found else (None, "apt-get install chromium did not provide /usr/bin/chromium")


class Page:
    """One page target: send commands, wait for events."""

    def __init__(self, socket: Any) -> None:
        self.socket = socket
        self.ids = itertools.count(1)
        self.events: list[dict[str, Any]] = []

    async def send(self, method: str, **params: Any) -> dict[str, Any]:
        message_id = next(self.ids)
        await self.socket.send(json.dumps({"id": message_id, "method": method, "params": params}))
        while True:
            message = json.loads(await self.socket.recv())
            if message.get("id") == message_id:
                if "error" in message:
                    raise RuntimeError(f"{method}: {message['error']}")
                result: dict[str, Any] = message.get("result", {})
                return result
            self.events.append(message)

    async def wait_event(self, method: str, timeout: float = 20.0) -> dict[str, Any]:
        for index, event in enumerate(self.events):
            if event.get("method") == method:
                return self.events.pop(index)
        async with asyncio.timeout(timeout):
            while True:
                message = json.loads(await self.socket.recv())
                if message.get("method") == method:
                    return message
                self.events.append(message)

    async def evaluate(self, expression: str) -> Any:
        result = await self.send("Runtime.evaluate", expression=expression, returnByValue=True)
        return result["result"].get("value")

    async def type_into(self, element_id: str, text: str) -> None:
        """Focus the field the way a click does, then type (insertText = keyboard/IME input events)."""
        await self.click(element_id)
        await self.send("Input.insertText", text=text)

    async def click(self, element_id: str) -> None:
        await self._click_at(f"document.getElementById({json.dumps(element_id)})")

    async def click_button(self, text: str) -> None:
        """Click the last visible button whose text is ``text`` (a modal's buttons come after the page's)."""
        await self._click_at(
            f"[...document.querySelectorAll('button')].filter(b => b.innerText.trim() === {json.dumps(text)}"
            " && b.offsetParent !== null).pop()"
        )

    async def _click_at(self, element: str) -> None:
        """A real mouse click at the middle of ``element`` (a JavaScript expression), as a person clicks.

        The element is scrolled to the middle of the view, not to its top: a page's fixed top bar (the Prefect UI's
        narrow-window menu) would cover an element scrolled to the top, and the click would land on the bar."""
        box = await self.evaluate(
            f"(() => {{ const e = {element}; e.scrollIntoView({{block: 'center', inline: 'center'}});"
            " const r = e.getBoundingClientRect(); return [r.x + r.width / 2, r.y + r.height / 2]; })()"
        )
        x, y = box
        for kind in ("mousePressed", "mouseReleased"):
            await self.send("Input.dispatchMouseEvent", type=kind, x=x, y=y, button="left", clickCount=1)


def start_chromium(binary: str, port: int, profile: Path, url: str, log: Path) -> subprocess.Popen[bytes]:
    argv = [binary, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", f"--remote-debugging-port={port}", url]
    return spawn(argv, dict(os.environ), log)


def page_websocket(port: int, process: subprocess.Popen[bytes], timeout: float = 30.0) -> str:
    # Chromium offers no readiness signal but its DevTools endpoint: poll it with a deadline.
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"chromium exited with status {process.returncode}")
        try:
            targets = httpx.get(f"http://127.0.0.1:{port}/json/list", timeout=2).json()
            pages = [t for t in targets if t.get("type") == "page"]
            if pages:
                url: str = pages[0]["webSocketDebuggerUrl"]
                return url
        except (httpx.HTTPError, ValueError):
            pass
        time.sleep(0.2)
    raise RuntimeError(f"chromium's DevTools did not answer within {timeout:.0f} s")
