"""Without Chromium the browser tests fail under CI=true and are skipped (reason printed) elsewhere."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _run(ci: bool) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "CI"}
    env["CSMS_CHROMIUM"] = "/nonexistent/chromium"
    if ci:
        env["CI"] = "true"
    test = "tests/web/test_console.py"
    cmd = [sys.executable, "-m", "pytest", "-q", "-rs", "-p", "no:cacheprovider", test, "-k", "markup"]
    return subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)


def test_missing_chromium_skips_with_the_reason_outside_ci() -> None:
    r = _run(ci=False)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "1 skipped" in r.stdout
    assert "/nonexistent/chromium is missing" in r.stdout + r.stderr


def test_missing_chromium_fails_under_ci() -> None:
    r = _run(ci=True)
    assert r.returncode != 0
    assert "CI=true: the browser tests must run" in r.stdout
