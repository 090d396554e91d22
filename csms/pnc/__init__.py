"""ISO 15118 Plug & Charge services the CSMS talks to over HTTP: the contract-certificate provider
(:mod:`.provider`) and OCSP responders (:mod:`.ocsp`). The pure certificate and OCSP logic is in
:mod:`csms.security.pnc`; the OCPP handlers are in :mod:`csms.blocks.pnc`."""
