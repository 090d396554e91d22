"""``python -m simulators.vtn``: the OpenADR 3 VTN simulator on its own."""

from __future__ import annotations

import argparse
import asyncio

from .app import VtnServer, VtnState


def main() -> None:
    p = argparse.ArgumentParser(prog="python -m simulators.vtn", description=__doc__)
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8081)
    p.add_argument(
        "--client",
        action="append",
        default=[],
        metavar="ID:SECRET:ROLE",
        help="an OAuth2 client (role ven or bl); repeat. Default ven-1:ven-secret:ven and bl:bl-secret:bl",
    )
    args = p.parse_args()
    state = VtnState()
    for spec in args.client or ["ven-1:ven-secret:ven", "bl:bl-secret:bl"]:
        cid, secret, role = spec.split(":")
        state.add_client(cid, secret, "bl" if role == "bl" else "ven")

    async def run() -> None:
        server = VtnServer(state, host=args.host, port=args.port)
        await server.start()
        print(f"OpenADR 3 VTN simulator on {server.url}")
        try:
            await asyncio.Event().wait()
        finally:
            await server.stop()

    asyncio.run(run())


if __name__ == "__main__":
    main()
