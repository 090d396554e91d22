"""K - Smart charging and Q - V2X: charging needs and limits reported by stations.

Filled in by the smart-charging layer (issue 4); until then these messages are handled as
stored facts only.
"""

from __future__ import annotations

from typing import Any

HANDLERS: dict[str, Any] = {}
