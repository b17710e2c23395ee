"""Headless Debian Chromium for the browser tests (Playwright; see sod100k.web.headless):
the skip rule, an offline page, and a helper to hand bytes back to Python."""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Iterator
from contextlib import contextmanager
from urllib.parse import urlsplit

import pytest

from sod100k.web.headless import FAKE_CAMERA, chromium, find_chromium

__all__ = ["FAKE_CAMERA", "chromium", "offline_page", "skip_without_browser"]

#: JavaScript defining ``b64(Uint8Array) -> string``, to hand bytes back to Python.
B64_JS = """const b64 = (a) => {
    let s = "";
    const step = 0x8000;
    for (let i = 0; i < a.length; i += step) s += String.fromCharCode(...a.subarray(i, i + step));
    return btoa(s);
  };"""
LOCAL_HOSTS = {"127.0.0.1", "localhost", "[::1]", "::1"}


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
