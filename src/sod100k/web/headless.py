"""Headless Chromium for the bundle (tests, benchmarks, screenshots), via Playwright.

Playwright cannot download its own browsers on machines without internet, so this
drives the system Chromium (Debian's ``/usr/bin/chromium``) through ``executable_path``,
with background networking, component updates and sync switched off (offline, Chromium
otherwise keeps retrying lookups). Playwright is a development dependency, imported only
when :func:`chromium` is called.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from contextlib import contextmanager

CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--disable-sync",
)
#: Chromium's synthetic camera (a moving test pattern), granted without a prompt.
FAKE_CAMERA = ("--use-fake-device-for-media-stream", "--use-fake-ui-for-media-stream")


def find_chromium() -> str | None:
    """The system Chromium's path, or None."""
    for name in ("chromium", "chromium-browser", "google-chrome"):
        found = shutil.which(name)
        if found:
            return found
    return None


@contextmanager
def chromium(executable: str | None = None, extra_flags: tuple[str, ...] = ()) -> Iterator:
    """A Playwright ``Browser`` on the system Chromium (``executable``, else found on PATH).

    Raises:
        FileNotFoundError: no Chromium is installed.
    """
    from playwright.sync_api import sync_playwright

    executable = executable or find_chromium()
    if executable is None:
        raise FileNotFoundError("chromium is not installed (apt-get install chromium)")
    with sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=executable, args=[*CHROMIUM_FLAGS, *extra_flags]
        )
        try:
            yield browser
        finally:
            browser.close()
