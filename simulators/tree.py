"""The component tree a simulated Fermata-style station reports (OCPP 2.0.1 / 2.1 appendix names).

Station-level controllers plus, per EVSE, ``EVSE`` / ``Connector`` components and (OCPP 2.1)
``V2XChargingCtrlr``. 2.1 smart-charging capabilities are reported the standard way
(``SmartChargingCtrlr.SupportsFeature[DynamicProfiles]``, ``SupportedAdditionalPurposes``,
``V2XChargingCtrlr.SupportedOperationModes`` / ``SupportedEnergyTransferModes`` per EVSE) and, for
CSMSs that look for them by the names in ``shared/reference/ocpp.md``, also as
``SmartChargingCtrlr.SupportsDynamicProfiles`` / ``SupportedOperationModes`` /
``SupportedEnergyTransferModes`` (read-only mirrors).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from . import der, display, local_auth, monitoring, reservations, tariff
from .devicemodel import MEASURANDS, MEASURANDS_21, READ_ONLY, READ_WRITE, WRITE_ONLY, DeviceModel, Variable

if TYPE_CHECKING:
    from .model import Firmware

SUPPORTED_OPERATION_MODES = "ChargingOnly,CentralSetpoint,Idle"
ALL_OPERATION_MODES = (
    "Idle,ChargingOnly,CentralSetpoint,ExternalSetpoint,ExternalLimits,CentralFrequency,LocalFrequency,"
    "LocalLoadBalancing"
)


def build_device_model(st: Firmware) -> DeviceModel:
    cfg = st.config
    v21 = st.dm_version == "2.1"
    measurands = ",".join(MEASURANDS_21 if v21 else MEASURANDS)
    dm = DeviceModel()
    add = dm.add
    b = "boolean"

    def ro(component: str, name: str, value: str, data_type: str = "string", **kw: object) -> None:
        add(Variable(component, name, value, READ_ONLY, data_type, **kw))  # type: ignore[arg-type]

    def rw(component: str, name: str, value: str, data_type: str = "string", **kw: object) -> None:
        add(Variable(component, name, value, READ_WRITE, data_type, **kw))  # type: ignore[arg-type]

    # ChargingStation
    ro("ChargingStation", "Available", "true", b, getter=lambda: _tf(st.station_operative))
    ro("ChargingStation", "AvailabilityState", "Available", "OptionList",
       values_list="Available,Occupied,Reserved,Unavailable,Faulted", getter=st.station_availability)  # fmt: skip
    ro("ChargingStation", "Model", cfg.model)
    ro("ChargingStation", "VendorName", cfg.vendor)
    ro("ChargingStation", "SerialNumber", st.serial_number)
    ro("ChargingStation", "FirmwareVersion", cfg.firmware_version, getter=lambda: st.firmware_version)
    ro("ChargingStation", "SupplyPhases", str(cfg.ac_phases), "integer")
    ro("ChargingStation", "Power", "0", "decimal", unit="W", max_limit=cfg.charge_kw * 1000 * cfg.evse_count,
       getter=lambda: _num(sum(e.stage.power_w for e in st.evses.values())))  # fmt: skip

    # ClockCtrlr
    ro("ClockCtrlr", "DateTime", "", "dateTime", getter=st.clock.timestamp)
    rw("ClockCtrlr", "TimeSource", "Heartbeat", "SequenceList", values_list="Heartbeat,NTP,GPS,RealTimeClock")

    # DeviceDataCtrlr
    for inst in ("GetReport", "GetVariables", "SetVariables"):
        ro("DeviceDataCtrlr", "ItemsPerMessage", "20" if inst == "GetReport" else "50", "integer", instance=inst)
        ro("DeviceDataCtrlr", "BytesPerMessage", "65000", "integer", instance=inst)

    # OCPPCommCtrlr
    rw("OCPPCommCtrlr", "HeartbeatInterval", str(st.heartbeat_interval), "integer", unit="s", min_limit=1,
       on_set=st.on_heartbeat_interval)  # fmt: skip
    ro("OCPPCommCtrlr", "MessageTimeout", str(int(cfg.call_timeout_s)), "integer", unit="s", instance="Default")
    rw("OCPPCommCtrlr", "MessageAttempts", "3", "integer", instance="TransactionEvent", min_limit=1)
    rw("OCPPCommCtrlr", "MessageAttemptInterval", "10", "integer", unit="s", instance="TransactionEvent", min_limit=0)
    rw("OCPPCommCtrlr", "NetworkConfigurationPriority", "0", "SequenceList", values_list="0")
    rw("OCPPCommCtrlr", "NetworkProfileConnectionAttempts", "3", "integer", min_limit=1)
    rw("OCPPCommCtrlr", "OfflineThreshold", "300", "integer", unit="s", min_limit=0)
    rw("OCPPCommCtrlr", "ResetRetries", "2", "integer", min_limit=0)
    rw("OCPPCommCtrlr", "RetryBackOffRandomRange", "2", "integer", unit="s", min_limit=0)
    rw("OCPPCommCtrlr", "RetryBackOffRepeatTimes", "5", "integer", min_limit=0)
    rw("OCPPCommCtrlr", "RetryBackOffWaitMinimum", "3", "integer", unit="s", min_limit=0)
    rw("OCPPCommCtrlr", "UnlockOnEVSideDisconnect", "true", b)
    rw("OCPPCommCtrlr", "WebSocketPingInterval", "0", "integer", unit="s", min_limit=0)
    ro("OCPPCommCtrlr", "FileTransferProtocols", "HTTP,HTTPS,FTP", "MemberList", values_list="HTTP,HTTPS,FTP,FTPS")
    ro("OCPPCommCtrlr", "QueueAllMessages", "false", b)

    # SecurityCtrlr
    add(Variable("SecurityCtrlr", "BasicAuthPassword", st.password, WRITE_ONLY, "string",
                 min_limit=16, max_limit=40, on_set=st.on_basic_auth_password))  # fmt: skip
    ro("SecurityCtrlr", "SecurityProfile", str(cfg.security_profile), "integer")
    ro("SecurityCtrlr", "Identity", cfg.id)
    rw("SecurityCtrlr", "OrganizationName", cfg.vendor)
    ro("SecurityCtrlr", "CertificateEntries", "0", "integer")

    # AuthCtrlr / TxCtrlr
    rw("AuthCtrlr", "Enabled", "true", b)
    rw("AuthCtrlr", "AuthorizeRemoteStart", "true", b)
    rw("AuthCtrlr", "LocalAuthorizeOffline", "true", b)
    rw("AuthCtrlr", "LocalPreAuthorize", "false", b)
    rw("AuthCtrlr", "OfflineTxForUnknownIdEnabled", "true", b)
    rw("TxCtrlr", "EVConnectionTimeOut", "120", "integer", unit="s", min_limit=1)
    ro("TxCtrlr", "StopTxOnEVSideDisconnect", "true", b)
    rw("TxCtrlr", "StopTxOnInvalidId", "true", b)
    ro("TxCtrlr", "TxStartPoint", "EVConnected", "MemberList", values_list="EVConnected")
    ro("TxCtrlr", "TxStopPoint", "EVConnected", "MemberList", values_list="EVConnected")

    # SampledDataCtrlr / AlignedDataCtrlr
    rw("SampledDataCtrlr", "Enabled", "true", b)
    rw("SampledDataCtrlr", "TxStartedMeasurands", "Energy.Active.Import.Register,Energy.Active.Export.Register,SoC",
       "MemberList", values_list=measurands)  # fmt: skip
    rw("SampledDataCtrlr", "TxUpdatedMeasurands", ",".join(MEASURANDS), "MemberList", values_list=measurands)
    rw("SampledDataCtrlr", "TxUpdatedInterval", str(cfg.tx_updated_interval_s), "integer", unit="s", min_limit=0,
       on_set=st.on_meter_interval)  # fmt: skip
    rw("SampledDataCtrlr", "TxEndedMeasurands", "Energy.Active.Import.Register,Energy.Active.Export.Register,SoC",
       "MemberList", values_list=measurands)  # fmt: skip
    rw("SampledDataCtrlr", "TxEndedInterval", "0", "integer", unit="s", min_limit=0)
    ro("SampledDataCtrlr", "RegisterValuesWithoutPhases", "true", b)
    rw("AlignedDataCtrlr", "Enabled", "true", b)
    rw("AlignedDataCtrlr", "Measurands",
       "Energy.Active.Import.Register,Energy.Active.Export.Register,Power.Active.Import,Power.Active.Export,SoC",
       "MemberList", values_list=measurands)  # fmt: skip
    rw("AlignedDataCtrlr", "Interval", str(cfg.aligned_interval_s), "integer", unit="s", min_limit=0,
       on_set=st.on_meter_interval)  # fmt: skip
    rw("AlignedDataCtrlr", "TxEndedMeasurands", "Energy.Active.Import.Register,Energy.Active.Export.Register",
       "MemberList", values_list=measurands)  # fmt: skip
    rw("AlignedDataCtrlr", "TxEndedInterval", "0", "integer", unit="s", min_limit=0)
    rw("AlignedDataCtrlr", "SendDuringIdle", "true", b)

    # SmartChargingCtrlr
    sc = "SmartChargingCtrlr"
    ro(sc, "Available", "true", b)
    rw(sc, "Enabled", _tf(st.smart_charging_enabled), b, on_set=st.on_smart_charging_enabled)
    ro(sc, "RateUnit", "W,A", "MemberList", values_list="W,A")
    ro(sc, "ProfileStackLevel", str(cfg.profile_stack_levels), "integer")
    ro(sc, "PeriodsPerSchedule", str(cfg.periods_per_schedule), "integer")
    ro(sc, "Entries", "0", "integer", instance="ChargingProfiles", max_limit=cfg.max_profiles,
       getter=lambda: str(len(st.profiles)))  # fmt: skip
    rw(sc, "LimitChangeSignificance", "10.0", "decimal", unit="Percent", min_limit=0, max_limit=100)
    rw(sc, "ExternalControlSignalsEnabled", "false", b)
    rw(sc, "NotifyChargingLimitWithSchedules", "false", b)
    ro(sc, "Phases3to1", "false", b)
    ro(sc, "ACPhaseSwitchingSupported", "false", b)
    ro(sc, "CompositeScheduleDefaultLimitWatts", str(int(cfg.charge_kw * 1000)), "decimal", unit="W")
    ro(sc, "SupplyVoltage", str(cfg.ac_voltage), "decimal", unit="V")
    if v21:
        dyn = _tf(cfg.supports_dynamic_profiles)
        ro(sc, "SupportsFeature", dyn, b, instance="DynamicProfiles")
        ro(sc, "SupportsFeature", "false", b, instance="UseLocalTime")
        ro(sc, "SupportsFeature", "false", b, instance="RandomizedDelay")
        ro(sc, "SupportsFeature", "false", b, instance="LimitAtSoC")
        ro(sc, "SupportsFeature", "false", b, instance="EvseSleep")
        ro(sc, "SupportsDynamicProfiles", dyn, b)
        ro(sc, "SupportedAdditionalPurposes", "", "MemberList", values_list="PriorityCharging,LocalGeneration")
        ro(sc, "SupportedOperationModes", SUPPORTED_OPERATION_MODES, "MemberList", values_list=ALL_OPERATION_MODES)
        ro(sc, "SupportedEnergyTransferModes", "DC,DC_BPT", "MemberList", values_list="DC,DC_BPT")
        ro(sc, "ChargingProfilePersistence", "false", b, instance="TxProfile")
        ro(sc, "ChargingProfilePersistence", "true", b, instance="TxDefaultProfile")
        ro(sc, "ChargingProfilePersistence", "true", b, instance="ChargingStationMaxProfile")

    # ISO15118Ctrlr
    ro("ISO15118Ctrlr", "Available", "true", b)
    rw("ISO15118Ctrlr", "Enabled", "true", b)
    rw("ISO15118Ctrlr", "PnCEnabled", "true", b)
    ro("ISO15118Ctrlr", "ProtocolSupported", "ISO15118-20,ISO15118-2,CHAdeMO", "SequenceList")

    local_auth.add_variables(st, dm)
    reservations.add_variables(st, dm)
    display.add_variables(st, dm)
    monitoring.add_variables(st, dm)
    tariff.add_variables(st, dm)
    der.add_variables(st, dm)

    # per EVSE
    for evse_id, evse in st.evses.items():
        ro("EVSE", "Available", "true", b, evse=evse_id, getter=lambda e=evse: _tf(e.operative))
        ro("EVSE", "AvailabilityState", "Available", "OptionList", evse=evse_id,
           values_list="Available,Occupied,Reserved,Unavailable,Faulted", getter=evse.connector_status)  # fmt: skip
        ro("EVSE", "Power", "0", "decimal", evse=evse_id, unit="W", max_limit=cfg.charge_kw * 1000,
           getter=lambda e=evse: _num(e.stage.power_w))  # fmt: skip
        ro("EVSE", "SupplyPhases", str(cfg.ac_phases), "integer", evse=evse_id)
        ro("EVSE", "DCInputPhaseControl", "false", b, evse=evse_id)
        ro("Connector", "Available", "true", b, evse=evse_id, connector=1, getter=lambda e=evse: _tf(e.operative))
        ro("Connector", "AvailabilityState", "Available", "OptionList", evse=evse_id, connector=1,
           values_list="Available,Occupied,Reserved,Unavailable,Faulted", getter=evse.connector_status)  # fmt: skip
        ro("Connector", "ConnectorType", "cG105", "OptionList", evse=evse_id, connector=1)
        ro("Connector", "SupplyPhases", "0", "integer", evse=evse_id, connector=1)
        if v21:
            v2x = "V2XChargingCtrlr"
            ro(v2x, "Available", "true", b, evse=evse_id)
            rw(v2x, "Enabled", "true", b, evse=evse_id)
            ro(v2x, "SupportedEnergyTransferModes", "DC,DC_BPT", "MemberList", evse=evse_id,
               values_list="DC,DC_BPT")  # fmt: skip
            ro(v2x, "SupportedOperationModes", SUPPORTED_OPERATION_MODES, "MemberList", evse=evse_id,
               values_list=ALL_OPERATION_MODES)  # fmt: skip
    return dm


def _tf(value: bool) -> str:
    return "true" if value else "false"


def _num(value: float) -> str:
    return f"{value:.1f}"
