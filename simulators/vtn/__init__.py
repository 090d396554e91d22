"""A small OpenADR 3.0.1 VTN for tests and the demo (see :mod:`simulators.vtn.app`)."""

from .app import VtnServer, VtnState, create_app

__all__ = ["VtnServer", "VtnState", "create_app"]
