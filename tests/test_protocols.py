"""The narrow interfaces the handlers are typed against are what the running objects offer.

The blocks see the CSMS only through :mod:`csms.blocks.context`, the services through
``ControlHost``, the session and the handshake through their own protocols, and the simulator's
parts see the station through :class:`simulators.model.Firmware`. A member added to a protocol
but missing from the real object (or renamed there) fails here, with a live CSMS and a live
simulated station connected to it.
"""

from __future__ import annotations

import typing

from csms.blocks.context import Central, ChargingService, Session
from csms.central import CentralSystem
from csms.clock import Clock
from csms.server.connection import Admission
from csms.server.session import SessionHost, StationSession
from csms.services.charging_control import ControlHost
from simulators import Station, StationConfig
from simulators.model import Firmware
from tests.api.support import wait_for
from tests.support import PASSWORD


def members(protocol: type) -> set[str]:
    """The attributes and methods a protocol declares (its own and those of its protocol bases)."""
    names: set[str] = set()
    for klass in protocol.__mro__:
        if klass in (object, typing.Protocol, typing.Generic) or not getattr(klass, "_is_protocol", False):
            continue
        names |= set(getattr(klass, "__annotations__", {}))
        names |= {n for n in vars(klass) if not n.startswith("_abc") and not n.startswith("__")}
    return names - {"_is_protocol", "_is_runtime_protocol"}


def missing(obj: object, protocol: type) -> set[str]:
    return {name for name in members(protocol) if not hasattr(obj, name)}


async def test_the_running_objects_offer_every_member_of_their_protocols(central: CentralSystem) -> None:
    await central.register_station("PROTO-1", PASSWORD)
    cfg = StationConfig(id="PROTO-1", ocpp=["2.1"], password=PASSWORD)
    st = Station(cfg, Clock(speed=60), f"ws://127.0.0.1:{central.port}/ocpp")
    await st.start()
    try:
        await st.wait_online()
        session = await wait_for(lambda: central.sessions.get("PROTO-1"))
        assert isinstance(session, StationSession)
        for obj, protocol in (
            (central, Central),
            (central, ControlHost),
            (central, SessionHost),
            (central, Admission),
            (central.charging, ChargingService),
            (session, Session),
            (st, Firmware),
        ):
            assert missing(obj, protocol) == set(), (type(obj).__name__, protocol.__name__)
            assert isinstance(obj, protocol), (type(obj).__name__, protocol.__name__)
        # the check can fail: a session is not the CSMS, the CSMS is not a station
        assert missing(session, Central) and not isinstance(session, Central)
        assert missing(central, Firmware) and not isinstance(central, Firmware)
    finally:
        await st.stop()
