"""Without Chromium the browser tests fail under CI=true and are skipped (reason printed) elsewhere."""

from __future__ import annotations

import pytest

from tests.web.conftest import require_chromium


def test_missing_chromium_skips_with_the_reason_outside_ci(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("CSMS_CHROMIUM", "/nonexistent/chromium")
    monkeypatch.delenv("CI", raising=False)
    with pytest.raises(pytest.skip.Exception, match="/nonexistent/chromium is missing"):
        require_chromium()
    assert "skipping the console browser tests: /nonexistent/chromium is missing" in capsys.readouterr().err


def test_missing_chromium_fails_under_ci(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CSMS_CHROMIUM", "/nonexistent/chromium")
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="CI=true: the browser tests must run"):
        require_chromium()
