"""Headless Chromium for the tests: Debian's `chromium` package driven by Playwright.

No browser is downloaded: install it with `apt-get install -y chromium` (never
`playwright install`). Screenshots go to test-output/ for a person to look at.
"""

from __future__ import annotations

import shutil
from pathlib import Path

CHROMIUM = "/usr/bin/chromium"
OUTPUT = Path(__file__).resolve().parents[1] / "test-output"
ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
    "--disable-component-update", "--no-first-run", "--disable-sync",
]
FAKE_CAMERA_ARGS = ["--use-fake-device-for-media-stream", "--use-fake-ui-for-media-stream"]


def require_chromium() -> None:
    """Fail (not skip) with the install command when the browser is missing."""
    if not Path(CHROMIUM).exists() and not shutil.which("chromium"):
        raise AssertionError("headless Chromium is missing: apt-get install -y chromium (the tests never download a browser)")


def launch(playwright, fake_camera: bool = False, extra_args: list[str] | None = None):
    require_chromium()
    return playwright.chromium.launch(executable_path=CHROMIUM,
                                      args=ARGS + (FAKE_CAMERA_ARGS if fake_camera else []) + list(extra_args or []))


def screenshot_path(name: str) -> Path:
    OUTPUT.mkdir(exist_ok=True)
    return OUTPUT / name
