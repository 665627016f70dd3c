"""Check a `fusionkit report` page in a real headless browser (Debian's chromium): it loads without a console error
or an exception, every image decodes, and a full-page screenshot is taken.

    python scripts/check_report.py runs/x/report.html --screenshot report.png

Talks to the browser over the Chrome DevTools Protocol on a pipe (`--remote-debugging-pipe`: messages separated by
NUL bytes on file descriptors 3 and 4), so it needs nothing but Python's standard library and the browser.
Exit code 0 when the page is clean; the JSON result is printed.
"""
from __future__ import annotations

import argparse
import base64
import json
import os
import select
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

BROWSERS = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")


def find_browser() -> str | None:
    for name in BROWSERS:
        found = shutil.which(name)
        if found:
            return found
    return None


class Browser:
    """A headless browser driven over the DevTools pipe."""

    def __init__(self, executable: str):
        self.profile = tempfile.mkdtemp(prefix="fk-report-browser-")
        to_browser_r, self.to_browser = os.pipe()
        self.from_browser, from_browser_w = os.pipe()

        def fds() -> None:  # the protocol's fixed descriptors: 3 = commands in, 4 = replies and events out
            os.dup2(to_browser_r, 3)
            os.dup2(from_browser_w, 4)

        self.proc = subprocess.Popen(
            [executable, "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
             "--no-first-run", "--remote-debugging-pipe", f"--user-data-dir={self.profile}", "about:blank"],
            preexec_fn=fds, pass_fds=(3, 4), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        os.close(to_browser_r)
        os.close(from_browser_w)
        self.buffer = b""
        self.next_id = 0
        self.events: list[dict] = []

    def send(self, method: str, params: dict | None = None, session: str | None = None,
             timeout: float = 60) -> dict:
        self.next_id += 1
        msg = {"id": self.next_id, "method": method, "params": params or {}}
        if session:
            msg["sessionId"] = session
        os.write(self.to_browser, json.dumps(msg).encode() + b"\0")
        reply = self._until(lambda m: m.get("id") == self.next_id, timeout)
        if "error" in reply:
            raise RuntimeError(f"{method}: {reply['error']}")
        return reply.get("result", {})

    def wait_event(self, method: str, timeout: float = 60) -> dict:
        for i, e in enumerate(self.events):
            if e.get("method") == method:
                return self.events.pop(i)
        return self._until(lambda m: m.get("method") == method, timeout)

    def _until(self, wanted, timeout: float) -> dict:
        end = time.monotonic() + timeout
        while True:
            while b"\0" in self.buffer:
                raw, self.buffer = self.buffer.split(b"\0", 1)
                msg = json.loads(raw)
                if wanted(msg):
                    return msg
                if "method" in msg:
                    self.events.append(msg)
            left = end - time.monotonic()
            if left <= 0:
                raise TimeoutError("the browser did not answer in time")
            ready, _, _ = select.select([self.from_browser], [], [], left)
            if ready:
                chunk = os.read(self.from_browser, 1 << 20)
                if not chunk:
                    raise RuntimeError("the browser exited")
                self.buffer += chunk

    def close(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        for fd in (self.to_browser, self.from_browser):
            os.close(fd)
        shutil.rmtree(self.profile, ignore_errors=True)


IMAGES = """Promise.all([...document.images].map(img => img.decode().then(
    () => [img.alt, img.naturalWidth, img.naturalHeight], () => [img.alt, 0, 0])))"""


def check(page: str | Path, screenshot: str | Path | None = None, executable: str | None = None) -> dict:
    """Load ``page``; return {"errors": [...], "images": [[alt, width, height], ...], "screenshot": path}."""
    executable = executable or find_browser()
    if executable is None:
        raise RuntimeError("no chromium found (Debian: apt-get install -y chromium)")
    browser = Browser(executable)
    try:
        target = browser.send("Target.getTargets")["targetInfos"]
        page_id = next(t["targetId"] for t in target if t["type"] == "page")
        session = browser.send("Target.attachToTarget", {"targetId": page_id, "flatten": True})["sessionId"]
        for domain in ("Page", "Runtime", "Log"):
            browser.send(f"{domain}.enable", session=session)
        browser.send("Emulation.setDeviceMetricsOverride",
                     {"width": 1280, "height": 900, "deviceScaleFactor": 1, "mobile": False}, session=session)
        browser.send("Page.navigate", {"url": Path(page).resolve().as_uri()}, session=session)
        browser.wait_event("Page.loadEventFired")
        images = browser.send("Runtime.evaluate", {"expression": IMAGES, "awaitPromise": True,
                                                   "returnByValue": True}, session=session)["result"]["value"]
        errors = []
        for e in browser.events:
            p = e.get("params", {})
            if e.get("method") == "Runtime.exceptionThrown":
                errors.append(p.get("exceptionDetails", {}).get("text", "exception"))
            elif e.get("method") == "Runtime.consoleAPICalled" and p.get("type") in ("error", "assert"):
                errors.append(" ".join(str(a.get("value", "")) for a in p.get("args", [])))
            elif e.get("method") == "Log.entryAdded" and p.get("entry", {}).get("level") == "error":
                errors.append(p["entry"].get("text", "error"))
        result = {"errors": errors, "images": images, "screenshot": None}
        if screenshot:
            shot = browser.send("Page.captureScreenshot", {"format": "png", "captureBeyondViewport": True},
                                session=session)
            Path(screenshot).write_bytes(base64.b64decode(shot["data"]))
            result["screenshot"] = str(screenshot)
        return result
    finally:
        browser.close()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("page")
    ap.add_argument("--screenshot", default=None)
    args = ap.parse_args()
    result = check(args.page, args.screenshot)
    print(json.dumps(result, indent=2))
    bad = [i for i in result["images"] if not (i[1] and i[2])]
    return 0 if not result["errors"] and not bad else 1


if __name__ == "__main__":
    sys.exit(main())
