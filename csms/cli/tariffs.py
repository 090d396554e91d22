"""``csms tariff set | show | cost | default | list | clear | change``: central cost calculation,
CostUpdated, and OCPP 2.1's SetDefaultTariff / GetTariffs / ClearTariffs / ChangeTransactionTariff (I)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape

from .client import seg
from .options import JsonOpt, StationArg, TokenOpt, UrlOpt, api, json_file, send_command
from .render import out, print_json

# ============================================================================ tariffs
tariff = typer.Typer(no_args_is_help=True, help="Tariffs and cost: central tariff, CostUpdated, 2.1 tariffs.")
FileArg = Annotated[Path, typer.Argument(help="OCPP 2.1 TariffType as JSON (- for stdin)")]


@tariff.command("set")
def tariff_set(
    station_id: StationArg,
    currency: Annotated[str, typer.Option(help="ISO 4217, e.g. EUR")] = "EUR",
    price_kwh: Annotated[float, typer.Option(min=0, help="price per kWh")] = 0.30,
    fixed_fee: Annotated[float, typer.Option(min=0)] = 0.0,
    interval: Annotated[float, typer.Option(min=1, help="seconds between CostUpdated while charging")] = 60.0,
    url: UrlOpt = None,
    token: TokenOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Central cost calculation for a station: running totalCost and CostUpdated (I01/I02)."""
    body = {"currency": currency, "price_kwh": price_kwh, "fixed_fee": fixed_fee, "cost_update_interval_s": interval}
    with api(url, token, as_json) as client:
        data = client.put(f"/api/v1/stations/{seg(station_id)}/tariff", body)
    if as_json:
        print_json(data)
        return
    out.print(f"{escape(station_id)}: {data['price_kwh']:g} {data['currency']}/kWh + {data['fixed_fee']:g} fixed")


@tariff.command("show")
def tariff_show(station_id: StationArg, url: UrlOpt = None, token: TokenOpt = None, as_json: JsonOpt = False) -> None:
    """The station's central tariff."""
    with api(url, token, as_json) as client:
        data = client.get(f"/api/v1/stations/{seg(station_id)}/tariff")
    if as_json:
        print_json(data)
        return
    out.print(f"{escape(station_id)}: {data['price_kwh']:g} {data['currency']}/kWh + {data['fixed_fee']:g} fixed")


@tariff.command("cost")
def tariff_cost(
    station_id: StationArg,
    transaction_id: Annotated[str, typer.Argument()],
    total: Annotated[float, typer.Argument(min=0, help="total cost so far")],
    url: UrlOpt = None,
    token: TokenOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Show a running total cost on the station now (CostUpdated)."""
    body = {"transaction_id": transaction_id, "total_cost": total}
    send_command(url, token, as_json, station_id, "CostUpdated", body)


@tariff.command("default")
def tariff_default(
    station_id: StationArg,
    file: FileArg,
    evse: Annotated[int, typer.Option(min=0, help="0: every EVSE")] = 0,
    url: UrlOpt = None,
    token: TokenOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Install a default tariff (SetDefaultTariff, OCPP 2.1)."""
    body = {"evse_id": evse, "tariff": json_file(file, "tariff")}
    send_command(url, token, as_json, station_id, "SetDefaultTariff", body)


@tariff.command("list")
def tariff_list(
    station_id: StationArg,
    evse: Annotated[int, typer.Option(min=0)] = 0,
    url: UrlOpt = None,
    token: TokenOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """The tariffs installed on the station (GetTariffs, OCPP 2.1)."""
    send_command(url, token, as_json, station_id, "GetTariffs", {"evse_id": evse})


@tariff.command("clear")
def tariff_clear(
    station_id: StationArg,
    ids: Annotated[list[str] | None, typer.Option("--id", help="tariff id, repeatable")] = None,
    evse: Annotated[int | None, typer.Option(min=0)] = None,
    url: UrlOpt = None,
    token: TokenOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Remove default tariffs (ClearTariffs, OCPP 2.1)."""
    send_command(url, token, as_json, station_id, "ClearTariffs", {"tariff_ids": ids, "evse_id": evse})


@tariff.command("change")
def tariff_change(
    station_id: StationArg,
    transaction_id: Annotated[str, typer.Argument()],
    file: FileArg,
    url: UrlOpt = None,
    token: TokenOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Change the tariff of a running transaction (ChangeTransactionTariff, OCPP 2.1)."""
    body = {"transaction_id": transaction_id, "tariff": json_file(file, "tariff")}
    send_command(url, token, as_json, station_id, "ChangeTransactionTariff", body)
