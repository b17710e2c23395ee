"""Headless Debian Chromium for the browser tests, driven by Playwright for Python.

Playwright cannot download its own browsers here, so it drives the system Chromium
(``scripts/install.sh --dev`` installs it) through ``executable_path``. There is no
internet: background networking, component updates and sync are switched off, or
Chromium keeps retrying lookups.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from urllib.parse import urlsplit

import pytest

CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--disable-sync",
]
#: Chromium's synthetic camera (a moving test pattern), granted without a prompt.
FAKE_CAMERA = ["--use-fake-device-for-media-stream", "--use-fake-ui-for-media-stream"]
#: JavaScript defining ``b64(Uint8Array) -> string``, to hand bytes back to Python.
B64_JS = """const b64 = (a) => {
    let s = "";
    const step = 0x8000;
    for (let i = 0; i < a.length; i += step) s += String.fromCharCode(...a.subarray(i, i + step));
    return btoa(s);
  };"""
LOCAL_HOSTS = {"127.0.0.1", "localhost", "[::1]", "::1"}


def find_chromium() -> str | None:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        found = shutil.which(name)
        if found:
            return found
    return None


CHROMIUM = find_chromium()
PLAYWRIGHT = importlib.util.find_spec("playwright") is not None


def skip_without_browser() -> list:
    """The marks of a browser test module: ``browser``, and a skip (a failure in CI) when
    Chromium or Playwright is missing."""
    missing = [
        what for what, ok in (("chromium", CHROMIUM), ("playwright (Python)", PLAYWRIGHT)) if not ok
    ]
    if missing and os.environ.get("CI"):
        raise RuntimeError(f"{' and '.join(missing)} missing: run scripts/install.sh --dev")
    return [
        pytest.mark.browser,
        pytest.mark.skipif(
            bool(missing),
            reason=f"{' and '.join(missing)} not installed (scripts/install.sh --dev installs it)",
        ),
    ]


@contextmanager
def chromium(extra_flags: tuple[str, ...] = ()) -> Iterator:
    """A Playwright ``Browser`` on the system Chromium."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=[*CHROMIUM_FLAGS, *extra_flags])
        try:
            yield browser
        finally:
            browser.close()


@contextmanager
def offline_page(browser) -> Iterator:
    """A fresh page that may reach only this machine: any other request is aborted and
    listed in ``page.external_requests`` (tests assert it stays empty). Page errors and
    console errors are collected in ``page.errors``."""
    context = browser.new_context()
    external: list[str] = []

    def guard(route) -> None:
        url = route.request.url
        host = urlsplit(url).hostname or ""
        if url.startswith(("data:", "blob:")) or host in LOCAL_HOSTS:
            route.continue_()
        else:
            external.append(url)
            route.abort()

    context.route("**/*", guard)
    page = context.new_page()
    page.external_requests = external
    page.errors = []
    page.on("pageerror", lambda e: page.errors.append(str(e)))
    page.on("console", lambda m: m.type == "error" and page.errors.append(m.text))
    try:
        yield page
    finally:
        context.close()
