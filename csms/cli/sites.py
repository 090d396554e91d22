"""``csms site ...``: site load balancing over the HTTP API (``/api/v1/sites``).

- ``list``: every site: limit, metered power, building load, what is allocated
- ``show ID``: one site and each charger's cap, power and allocation
- ``set-limit ID --import-kw 80 [--export-kw 50] [--strategy fair|priority]``: change the limits
  (the site re-balances at once, decreases first; the change is stored)
"""

from __future__ import annotations

from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table

from .remote import JsonOpt, TokenOpt, UrlOpt, api
from .render import out, print_json

site_app = typer.Typer(no_args_is_help=True, help="Site load balancing: grid connection limits and allocation.")
SiteArg = Annotated[str, typer.Argument(help="site id from [[sites]] in the CSMS config", show_default=False)]


def _num(v: Any, unit: str = "kW") -> str:
    return "-" if v is None else f"{v:.1f} {unit}"


@site_app.command("list")
def list_sites(url: UrlOpt = None, token: TokenOpt = None, as_json: JsonOpt = False) -> None:
    """Every site with its limit and metered power."""
    with api(url, token, as_json) as client:
        sites = client.get("/api/v1/sites")
    if as_json:
        print_json(sites)
        return
    if not sites:
        out.print("no sites (add [[sites]] to the CSMS configuration)")
        return
    table = Table("site", "import limit", "site power", "building", "chargers", "allocated", "strategy", "stations",
                  box=None, pad_edge=False)  # fmt: skip
    for s in sites:
        over = s["site_kw"] > s["import_limit_kw"]
        power = f"[red]{_num(s['site_kw'])}[/]" if over else _num(s["site_kw"])
        table.add_row(escape(s["id"]), _num(s["import_limit_kw"]), power, _num(s["building_kw"]),
                      _num(s["chargers_kw"]), _num(s["allocated_kw"]), s["strategy"], str(s["stations"]))  # fmt: skip
    out.print(table)


@site_app.command("show")
def show(site_id: SiteArg, url: UrlOpt = None, token: TokenOpt = None, as_json: JsonOpt = False) -> None:
    """One site: limit vs. metered power and each charger's allocation."""
    with api(url, token, as_json) as client:
        s = client.get(f"/api/v1/sites/{site_id}")
    if as_json:
        print_json(s)
        return
    out.print(
        f"[bold]{escape(s['id'])}[/]: limit {_num(s['import_limit_kw'])} import"
        + (f", {_num(s['export_limit_kw'])} export" if s["export_limit_kw"] is not None else "")
        + f"; site {_num(s['site_kw'])} = building {_num(s['building_kw'])} ({escape(s['building_source'])})"
        + f" + chargers {_num(s['chargers_kw'])}; allocated {_num(s['allocated_kw'])}; strategy {s['strategy']}"
    )
    for note in s.get("notes") or []:
        out.print(f"[yellow]note:[/] {escape(note)}")
    table = Table("station", "online", "cap", "evse", "power", "allocated", "SoC", "prio", box=None, pad_edge=False)
    for st in s["stations"]:
        for i, e in enumerate(st["evses"]):
            first = i == 0
            table.add_row(
                escape(st["station_id"]) if first else "",
                ("yes" if st["online"] else "[red]no[/]") if first else "",
                _num(st["cap_kw"]) if first else "",
                str(e["evse_id"]),
                _num(e["power_kw"]),
                _num(e["allocated_kw"]),
                "-" if e["soc"] is None else f"{e['soc']:.0f} %",
                str(st["priority"]) if first else "",
            )
    out.print(table)


@site_app.command("set-limit")
def set_limit(
    site_id: SiteArg,
    import_kw: Annotated[float | None, typer.Option("--import-kw", min=0.1, help="import limit, kW")] = None,
    export_kw: Annotated[float | None, typer.Option("--export-kw", min=0, help="export limit, kW")] = None,
    strategy: Annotated[str | None, typer.Option(help="fair or priority")] = None,
    url: UrlOpt = None,
    token: TokenOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Change a site's limits (stored; the site re-balances at once, decreases first)."""
    if import_kw is None and export_kw is None and strategy is None:
        raise typer.BadParameter("give --import-kw, --export-kw or --strategy")
    if strategy is not None and strategy not in ("fair", "priority"):
        raise typer.BadParameter(f"--strategy: expected fair or priority, got {strategy!r}")
    body = {"import_limit_kw": import_kw, "export_limit_kw": export_kw, "strategy": strategy}
    with api(url, token, as_json) as client:
        s = client.put(f"/api/v1/sites/{site_id}/limits", json={k: v for k, v in body.items() if v is not None})
    if as_json:
        print_json(s)
        return
    out.print(f"{escape(s['id'])}: import limit {_num(s['import_limit_kw'])}, strategy {s['strategy']}")
