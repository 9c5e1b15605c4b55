"""What a health check may say about an engine beyond "reachable", shared by the web
platform (``/healthz``) and the modules that probe an engine (ticketing.redis_connect)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class EngineState:
    """The shape the engine runs in (``single``, ``cluster``, ``sentinel``, ...), its
    nodes, and how many of them are healthy."""

    mode: str
    nodes: int
    healthy: int

    def component(self) -> dict[str, Any]:
        status = "ok" if self.healthy else "down: no healthy node"
        return {"status": status, "mode": self.mode, "nodes": self.nodes, "healthy": self.healthy}
