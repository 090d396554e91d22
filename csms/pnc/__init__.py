"""ISO 15118 Plug & Charge services the CSMS talks to over HTTP: the contract-certificate provider
(:mod:`.provider`) and OCSP responders (:mod:`.ocsp`). The pure certificate and OCSP logic is in
:mod:`csms.security.pnc`; the OCPP handlers are in :mod:`csms.blocks.pnc`."""

from __future__ import annotations

import functools
import ssl

import httpx


@functools.cache
def tls_context() -> ssl.SSLContext:
    """One TLS client context for the provider and OCSP clients: building one per request (what a
    fresh ``httpx.AsyncClient`` does) loads the CA bundle each time, tens of ms."""
    return httpx.create_ssl_context()
