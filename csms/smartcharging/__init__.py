"""Pure smart-charging logic (K block, V2X Q block) shared by the CSMS and the station simulators.

* :mod:`csms.smartcharging.model`: typed ChargingProfile / ChargingSchedule / ChargingSchedulePeriod
  with lossless ``from_wire`` / ``to_wire``.
* :mod:`csms.smartcharging.k01`: the SetChargingProfile acceptance rules (K01).
* :mod:`csms.smartcharging.composite`: composite schedules (K08) and the instantaneous power envelope.
* :mod:`csms.smartcharging.builder`: PowerIntent -> SetChargingProfileRequest, profile id allocation.
* :mod:`csms.smartcharging.schema`: validation against the official OCA JSON schemas.

No sockets, no database, no asyncio.
"""
