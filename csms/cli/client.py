"""HTTP client of the ``csms`` CLI: where the CSMS is, which token to use, and errors that say
what to do next.

The API URL and token come from, in order: the ``--url`` / ``--token`` flags, the environment
(``CSMS_API_URL`` / ``CSMS_API_TOKEN``), the CLI config file (``~/.config/csms/cli.toml``, or
``$XDG_CONFIG_HOME/csms/cli.toml``, or the file named by ``CSMS_CLI_CONFIG``)::

    url = "http://csms.example.net:8080"
    token = "csms_..."

and finally ``http://127.0.0.1:8080`` without a token.
"""

from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

DEFAULT_URL = "http://127.0.0.1:8080"
GET_TIMEOUT = 30.0
COMMAND_TIMEOUT = 160.0  # a command may wait behind others (server.queue_timeout) plus its own call


class CliError(Exception):
    """An error to print for the user (``message``, then ``hint``: what to do next)."""

    def __init__(
        self,
        message: str,
        hint: str | None = None,
        *,
        status: int | None = None,
        code: str | None = None,
        details: dict[str, Any] | None = None,
        exit_code: int = 1,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint
        self.status = status
        self.code = code
        self.details = details or {}
        self.exit_code = exit_code

    def as_json(self) -> dict[str, Any]:
        return {
            "error": {
                "code": self.code or "cli_error",
                "message": self.message,
                "details": self.details or None,
                "status": self.status,
                "hint": self.hint,
            }
        }


def config_path() -> Path:
    explicit = os.environ.get("CSMS_CLI_CONFIG")
    if explicit:
        return Path(explicit).expanduser()
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "csms" / "cli.toml"


def load_config(path: Path | None = None) -> dict[str, Any]:
    file = path or config_path()
    try:
        data = tomllib.loads(file.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise CliError(f"cannot read the CLI config {file}: {exc}", "fix or delete the file", exit_code=2) from None
    unknown = set(data) - {"url", "token"}
    if unknown:
        raise CliError(f"{file}: unknown keys {sorted(unknown)}", "the file may only set url and token", exit_code=2)
    return data


def save_config(url: str, token: str | None, path: Path | None = None) -> Path:
    file = path or config_path()
    file.parent.mkdir(parents=True, exist_ok=True)
    lines = [f"url = {_toml_str(url)}"]
    if token:
        lines.append(f"token = {_toml_str(token)}")
    file.write_text("\n".join(lines) + "\n", encoding="utf-8")
    file.chmod(0o600)
    return file


def _toml_str(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


@dataclass(frozen=True, slots=True)
class Target:
    url: str
    token: str | None


def resolve(url: str | None, token: str | None) -> Target:
    """Flags (typer also fills them from CSMS_API_URL / CSMS_API_TOKEN) > config file > default."""
    cfg: dict[str, Any] = {}
    if url is None or token is None:
        cfg = load_config()
    final_url = (url or cfg.get("url") or DEFAULT_URL).rstrip("/")
    if not final_url.startswith(("http://", "https://")):
        raise CliError(
            f"--url must start with http:// or https:// (got {final_url!r})",
            "e.g. --url http://127.0.0.1:8080",
            exit_code=2,
        )
    final_token = (token or cfg.get("token") or "").strip() or None
    if final_token is not None and not all(33 <= ord(c) < 127 for c in final_token):
        raise CliError(
            "the API token contains spaces, line breaks or non-ASCII characters",
            "pass exactly the token `csms admin token create` printed (it starts with csms_)",
            code="bad_token",
            exit_code=2,
        )
    return Target(final_url, final_token)


_NO_TOKEN_HINT = (
    "pass --token, set CSMS_API_TOKEN, or save one with `csms login URL --token TOKEN`; "
    "an administrator issues tokens with `csms admin token create NAME --scope operator`"
)


def hint_for(status: int, code: str, details: dict[str, Any], target: Target) -> str | None:
    """What to do next, for each API error code."""
    if code == "unauthorized":
        if target.token is None:
            return "no API token given: " + _NO_TOKEN_HINT
        return "the token was rejected (mistyped or revoked): " + _NO_TOKEN_HINT
    if code == "forbidden":
        return (
            f"this needs a token with scope '{details.get('required_scope', 'operator')}'; "
            "ask an administrator: `csms admin token create NAME --scope operator`"
        )
    if code == "unknown_station":
        matches = details.get("close_matches") or []
        if matches:
            return f"check the id (close matches: {', '.join(matches)}); `csms stations` lists every station"
        return "`csms stations` lists every station; new stations are registered with `csms admin add-station`"
    if code == "station_offline":
        sid = details.get("station_id", "the station")
        return f"check the station's power and network link; `csms station {sid}` shows when it was last seen"
    if code == "station_timeout":
        return "the station may be busy or its link unstable; retry, or follow its traffic with `csms station ID watch`"
    if code == "station_callerror":
        ocpp = details.get("ocpp_code")
        if ocpp in ("NotSupported", "NotImplemented"):
            return "the station does not implement this message; check its firmware version"
        return "the station refused the request itself; check the arguments and the station's log"
    if code == "not_allowed":
        return (
            f"the station's boot is {details.get('boot', 'not Accepted')}; accept it first "
            "(boot policy `accept`: `csms admin add-station ID --policy accept`) and let it boot again"
        )
    if code == "invalid_payload":
        field = details.get("field")
        return f"fix the argument that maps to OCPP field '{field}'" if field else "check the arguments"
    if code == "validation_error":
        return "check the arguments (`--help` shows what is expected)"
    if status >= 500:
        return "the CSMS failed; its log has the details"
    return None


class ApiClient:
    """Thin synchronous wrapper over httpx; raises :class:`CliError` for every failure."""

    def __init__(self, target: Target, *, transport: httpx.BaseTransport | None = None) -> None:
        self.target = target
        headers = {"User-Agent": "csms-cli", "Accept": "application/json"}
        if target.token:
            headers["Authorization"] = f"Bearer {target.token}"
        self._http = httpx.Client(base_url=target.url, headers=headers, timeout=GET_TIMEOUT, transport=transport)

    @classmethod
    def from_options(cls, url: str | None, token: str | None) -> ApiClient:
        return cls(resolve(url, token))

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> ApiClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def request(
        self,
        method: str,
        path: str,
        *,
        params: dict[str, Any] | None = None,
        json: Any = None,
        timeout: float | None = None,
        raw: bool = False,
    ) -> Any:
        clean = {k: v for k, v in (params or {}).items() if v is not None}
        try:
            resp = self._http.request(method, path, params=clean, json=json, timeout=timeout or GET_TIMEOUT)
        except httpx.TimeoutException:
            raise CliError(
                f"the CSMS API at {self.target.url} did not answer in time",
                "the CSMS may be overloaded; retry in a moment",
                code="api_timeout",
            ) from None
        except httpx.HTTPError as exc:
            raise CliError(
                f"cannot reach the CSMS API at {self.target.url}: {exc}",
                "is `csms serve` running there? set the address with --url or CSMS_API_URL",
                code="api_unreachable",
            ) from None
        if resp.status_code >= 400:
            raise self._error(resp)
        if raw:
            return resp
        if resp.status_code == 204 or not resp.content:
            return None
        try:
            return resp.json()
        except ValueError:
            raise CliError(
                f"{self.target.url} answered {path} with something that is not JSON",
                "is --url really the CSMS API (port of [api] in the config, default 8080)?",
                code="bad_response",
            ) from None

    def _error(self, resp: httpx.Response) -> CliError:
        try:
            body = resp.json()
            err = body["error"]
            code, message, details = str(err["code"]), str(err["message"]), err.get("details") or {}
        except (ValueError, KeyError, TypeError):
            code, message, details = "http_error", f"HTTP {resp.status_code} from {resp.url}", {}
            if resp.status_code == 404:
                return CliError(
                    message,
                    "is --url really the CSMS API (port of [api] in the config, default 8080)?",
                    status=404,
                    code="not_found",
                )
        return CliError(
            message,
            hint_for(resp.status_code, code, details, self.target),
            status=resp.status_code,
            code=code,
            details=details,
        )

    def get(self, path: str, **params: Any) -> Any:
        return self.request("GET", path, params=params)

    def post(self, path: str, json: Any = None, **params: Any) -> Any:
        return self.request("POST", path, json=json, params=params, timeout=COMMAND_TIMEOUT)

    def put(self, path: str, json: Any = None) -> Any:
        return self.request("PUT", path, json=json)

    def delete(self, path: str) -> Any:
        return self.request("DELETE", path)

    def command(self, station_id: str, action: str, body: dict[str, Any], timeout: float | None = None) -> Any:
        return self.post(f"/api/v1/stations/{_seg(station_id)}/commands/{action}", body, timeout=timeout)


def _seg(value: str) -> str:
    from urllib.parse import quote

    return quote(value, safe="")


seg = _seg
