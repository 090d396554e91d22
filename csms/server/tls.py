"""TLS for security profiles 2 and 3 (OCPP 2.0.1 Part 2, A00).

- Profile 2: server certificate, TLS 1.2+; the station authenticates with HTTP Basic.
- Profile 3: as profile 2, and the station must present a client certificate signed by
  ``security.tls_client_ca_file``; its subject commonName must equal the station id
  (checked in the handshake, :mod:`csms.server.connection`).
"""

from __future__ import annotations

import ssl
from datetime import UTC, datetime
from typing import Any

from csms.config import ConfigError, SecuritySettings, tls_problems
from csms.security.certificates import SigningCa


def server_context(security: SecuritySettings) -> ssl.SSLContext | None:
    """The listening socket's SSL context for ``security.profile`` (None for profile 1)."""
    if security.profile == 1:
        return None
    problems = tls_problems(security)
    if problems:
        raise ConfigError("\n".join(problems))
    assert security.tls_cert_file is not None and security.tls_key_file is not None
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    try:
        ctx.load_cert_chain(security.tls_cert_file, security.tls_key_file)
    except (OSError, ssl.SSLError) as exc:
        raise ConfigError(
            f"security.tls_cert_file / tls_key_file: cannot load {security.tls_cert_file}, "
            f"{security.tls_key_file}: {exc}"
        ) from None
    if security.profile == 3:
        ctx.verify_mode = ssl.CERT_REQUIRED
        try:
            ctx.load_verify_locations(cafile=security.tls_client_ca_file)
        except (OSError, ssl.SSLError) as exc:
            ca_file = security.tls_client_ca_file
            raise ConfigError(f"security.tls_client_ca_file: cannot load {ca_file}: {exc}") from None
    return ctx


def signing_ca(security: SecuritySettings) -> SigningCa | None:
    """The CA that signs stations' SignCertificate CSRs (A02/A03), or None when not configured."""
    cert_file, key_file = security.station_ca_cert_file, security.station_ca_key_file
    if cert_file is None and key_file is None:
        return None
    problems = tls_problems(security)
    if problems:
        raise ConfigError("\n".join(problems))
    assert cert_file is not None and key_file is not None
    try:
        return SigningCa.from_pem(cert_file.read_bytes(), key_file.read_bytes())
    except (OSError, ValueError) as exc:
        raise ConfigError(
            f"security.station_ca_cert_file / station_ca_key_file: cannot use {cert_file}, {key_file}: {exc}"
        ) from None


def subject_common_name(cert: dict[str, Any] | None) -> str | None:
    """The subject commonName of a certificate as returned by ``SSLSocket.getpeercert()``.

    None without a certificate, without a commonName, or with several (ambiguous) ones.
    """
    if not cert:
        return None
    names = [value for rdn in cert.get("subject", ()) for key, value in rdn if key == "commonName"]
    return names[0] if len(names) == 1 else None


def certificate_facts(cert: dict[str, Any] | None) -> dict[str, Any] | None:
    """Subject commonName, serial (lower-case hex) and notAfter of a ``getpeercert()`` dict."""
    if not cert or "notAfter" not in cert:
        return None
    return {
        "subject": subject_common_name(cert),
        "serialNumber": str(cert.get("serialNumber", "")).lower().lstrip("0") or "0",
        "notAfter": datetime.fromtimestamp(ssl.cert_time_to_seconds(cert["notAfter"]), UTC),
    }
