"""What the site tests share: a local HTTP server and headless Chromium.

The pages are served from 127.0.0.1 and every request that would leave it is
aborted and recorded, so a page that needs the network fails its test.
"""
from __future__ import annotations

import contextlib
import functools
import http.server
import shutil
import threading
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run",
                 "--disable-default-apps"]


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):  # keep pytest output clean
        pass


@contextlib.contextmanager
def serve(directory: Path) -> Iterator[str]:
    """Serve ``directory`` on a free local port; yield its base URL."""
    if not directory.is_dir():
        raise FileNotFoundError(f"no built site at {directory}: build it first")
    handler = functools.partial(_Quiet, directory=str(directory))
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}"
    finally:
        httpd.shutdown()


@contextlib.contextmanager
def chromium() -> Iterator:
    """Yield a headless Debian Chromium driven by Playwright."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield b
        finally:
            b.close()


def visit(browser, url: str, *, init_script: str | None = None, **context):
    """Open ``url``; return (page, console errors, requests that left localhost).

    ``init_script`` runs before the page's own scripts (to set ``localStorage``,
    say); ``context`` goes to ``browser.new_page`` (viewport, colour scheme).
    """
    page = browser.new_page(**context)
    errors, outside = [], []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: errors.append(str(e)))

    def route(r):
        host = urlsplit(r.request.url).hostname
        if r.request.url.startswith(("data:", "blob:")) or host in ("127.0.0.1",
                                                                    "localhost"):
            r.continue_()
        else:
            outside.append(r.request.url)
            r.abort()

    page.route("**/*", route)
    if init_script:
        page.add_init_script(init_script)
    page.goto(url, wait_until="load")
    return page, errors, outside


def wait_for_math(page, timeout: float = 30_000) -> int:
    """Wait until MathJax has typeset the page; return the number of formulas."""
    page.wait_for_function(
        "window.MathJax && MathJax.startup && MathJax.startup.promise"
        " && document.querySelectorAll('mjx-container').length > 0",
        timeout=timeout)
    page.evaluate("MathJax.startup.promise")
    return page.locator("mjx-container").count()
