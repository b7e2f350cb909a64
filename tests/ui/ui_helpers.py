"""Shared by the UI tests (a module of its own: `from conftest import ...` resolves to whichever conftest module
pytest imported first when several test folders run together)."""

from __future__ import annotations

import shutil

# Two variants of each model: what `dvc exp run -S ...` twice would record (values picked to be easy to spot).
VARIANTS = [
    {"name": "lr2e-4", "sparse4d_lr": 2e-4, "detectnet_lr": 1e-3, "HOTA": 31.25, "mAP": 0.375},
    {"name": "lr5e-4", "sparse4d_lr": 5e-4, "detectnet_lr": 3e-3, "HOTA": 47.75, "mAP": 0.875},
]


def find_chromium() -> tuple[str, str] | None:
    """(browser, chromedriver) from the system (Debian's chromium + chromium-driver), or None."""
    browser = next(filter(None, map(shutil.which, ("chromium", "chromium-browser", "google-chrome"))), None)
    driver = shutil.which("chromedriver")
    return (browser, driver) if browser and driver else None
