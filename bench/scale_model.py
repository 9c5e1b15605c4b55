"""bench/scale.py's capacity model: the CPU each operation cost here, by component, and
what it implies in machines per tier for an on-sale of a given size.

Costs are core microseconds per operation (CPU seconds from /proc over the measured window,
over the operations in it), by component:

- join: one POST /queue/{id}/join through the gateway (surge's join phase);
- push: one fan's websocket held for a second while admission runs and statuses are pushed
  (surge's hold phase, over sockets x seconds);
- reserve: one POST /booking/reserve answered (201 or 409; reserve bench);
- confirm: one confirm with its card payment (bench/confirm_cpu.py: the booking worker, and
  the machine's PostgreSQL and RabbitMQ over the same window);
- search: one GET /search through the gateway (bench/search.py).

Join, push and reserve were measured on both setups: the model takes the cluster's (the
production shape: replication and quorum writes included) and falls back to the single
node's. Demand per tier is the sum of each operation's rate times its cost there, in cores;
a tier's machines are that over the cores a machine gives at the target utilisation.
"""

from __future__ import annotations

import argparse
import math
from dataclasses import dataclass, fields
from typing import Any, TypeVar

T = TypeVar("T")

OPS = ("join", "push", "reserve", "confirm", "search")
# Which tier runs each component the benches measure.
TIERS = {
    "nginx": "gateway (nginx)",
    "waitingroom": "waitingroom (queue + front doors)",
    "redis": "Redis",
    "booking_worker": "booking workers",
    "postgres": "PostgreSQL primary",
    "rabbitmq": "RabbitMQ",
    "catalog_api": "catalog_api",
    "typesense": "Typesense",
}
# The fewest a tier runs with, whatever its load: a quorum, or a primary and its standby.
HA_MINIMUM = {"redis": 3, "rabbitmq": 3, "typesense": 3, "postgres": 2}
NOT_SERVED = ("load", "hello")  # the load generators and the hello-world baseline


def _per(cpu: dict[str, float], count: float) -> dict[str, float]:
    if count <= 0:
        return {}
    return {
        k.split(":")[0]: v * 1e6 / count
        for k, v in cpu.items()
        if not k.startswith(NOT_SERVED) and k.split(":")[0] in TIERS
    }


def side_costs(side: dict[str, Any]) -> dict[str, dict[str, float]]:
    """join, push and reserve costs of one setup's surge and reserve figures."""
    out: dict[str, dict[str, float]] = {}
    surge, reserve = side.get("surge"), side.get("reserve")
    if surge:
        out["join"] = _per(surge["phase_cpu"]["join"], surge["join"][3])
        held = surge["sockets"] * surge["hold_seconds"]
        out["push"] = _per(surge["phase_cpu"]["hold"], held)
    if reserve:
        out["reserve"] = _per(reserve["cpu"], reserve["answers"][3])
    return out


def costs(
    single: dict[str, Any], cluster: dict[str, Any], extra: dict[str, Any]
) -> dict[str, dict[str, dict[str, float]]]:
    """{op: {"single": {component: us}, "cluster": {...}}}, from what each bench wrote."""
    by_side = {"single": side_costs(single), "cluster": side_costs(cluster)}
    out: dict[str, dict[str, dict[str, float]]] = {op: {} for op in OPS}
    for side, ops in by_side.items():
        for op, per in ops.items():
            out[op][side] = per
    if confirm := extra.get("confirm"):
        out["confirm"]["single"] = _per(confirm["cpu"], confirm["confirms"])
    if search := extra.get("search"):
        out["search"]["single"] = _per(search["cpu"], search["searches"])
    return out


def add_fields(cls: type, parser: argparse.ArgumentParser) -> None:
    """A --flag for each field of the dataclass ``cls``, its default the field's."""
    for f in fields(cls):
        flag = "--" + f.name.replace("_", "-")
        parser.add_argument(flag, type=type(f.default), default=f.default)


def from_args(cls: type[T], args: argparse.Namespace) -> T:
    """The dataclass ``cls`` from the flags add_fields gave the parser."""
    return cls(**{f.name: getattr(args, f.name) for f in fields(cls)})  # type: ignore[arg-type]


@dataclass(frozen=True)
class Load:
    """The on-sale the model sizes for."""

    target_fans: int = 1_000_000  # joining in join_seconds, all holding a socket at the peak
    join_seconds: float = 60
    target_seats: int = 50_000
    sale_minutes: float = 5
    seats_per_hold: float = 2.5  # the benches' fans ask 1-4 seats
    answers_per_hold: float = 2.0  # reserves answered per hold (409s included)
    searches_per_fan: float = 1.0  # in the joining minute

    def rates(self) -> dict[str, float]:
        """Operations per second (push: sockets held, each a socket-second per second)."""
        holds = self.target_seats / self.seats_per_hold / (self.sale_minutes * 60)
        return {
            "join": self.target_fans / self.join_seconds,
            "push": float(self.target_fans),
            "reserve": holds * self.answers_per_hold,
            "confirm": holds,
            "search": self.target_fans * self.searches_per_fan / self.join_seconds,
        }


@dataclass(frozen=True)
class Machine:
    machine_cores: int = 16
    utilisation: float = 0.6  # the share of each core a tier is planned to use at the peak
    machine_gib: float = 64
    sockets_per_process: int = 15_000  # this machine's 20,000 open files, with room left


def chosen(per_side: dict[str, dict[str, float]]) -> tuple[str, dict[str, float]]:
    for side in ("cluster", "single"):
        if per_side.get(side):
            return side, per_side[side]
    return "-", {}


def demand(
    measured: dict[str, dict[str, dict[str, float]]], load: Load
) -> dict[str, dict[str, float]]:
    """{component: {op: cores}} at the load's peak rates."""
    rates = load.rates()
    out: dict[str, dict[str, float]] = {}
    for op in OPS:
        _, per = chosen(measured[op])
        for component, us in per.items():
            out.setdefault(component, {})[op] = us * rates[op] / 1e6
    return out


def print_model(
    measured: dict[str, dict[str, dict[str, float]]],
    load: Load,
    machine: Machine,
    bytes_per_socket: float | None = None,
) -> None:
    print()
    print("CPU per operation, core microseconds by component (single | cluster):")
    for op in OPS:
        cells = []
        for side in ("single", "cluster"):
            per = measured[op].get(side)
            text = ", ".join(f"{k} {v:,.0f}" for k, v in per.items()) if per else "-"
            total = f" = {sum(per.values()):,.0f}" if per else ""
            cells.append(text + total)
        unit = "per socket-second" if op == "push" else "each"
        print(f"  {op:<8} {cells[0]} | {cells[1]}  ({unit})")
    rates = load.rates()
    print()
    print(
        f"capacity model: {load.target_fans:,} fans joining in {load.join_seconds:.0f} s, "
        f"{load.target_seats:,} seats sold in {load.sale_minutes:.0f} min; machines of "
        f"{machine.machine_cores} cores at {machine.utilisation:.0%}"
    )
    print("  rates: " + ", ".join(f"{op} {r:,.0f}/s" for op, r in rates.items()))
    print("  (push: sockets held at the peak)")
    per_machine = machine.machine_cores * machine.utilisation
    cores = demand(measured, load)
    for component, ops in sorted(cores.items(), key=lambda kv: -sum(kv[1].values())):
        busy = sum(ops.values())
        split = ", ".join(f"{op} {c:,.1f}" for op, c in ops.items() if c >= 0.05)
        floor = HA_MINIMUM.get(component, 1)
        if component == "redis":
            # One Redis process runs on one core: shards, not machines.
            needed = math.ceil(busy / machine.utilisation)
            note = f"{max(needed, floor)} single-core primaries, each with a replica"
        else:
            needed = math.ceil(busy / per_machine)
            note = f"{max(needed, floor)} machines"
        if needed < floor:
            note += f" (the load needs {needed}; {floor} for a quorum or a standby)"
        print(f"  {TIERS[component]:<34}{busy:>8,.1f} cores  -> {note}  ({split})")
    for line in one_event_bounds(measured, load, machine):
        print("  " + line)
    if bytes_per_socket:
        gib = load.target_fans * bytes_per_socket / 2**30
        processes = math.ceil(load.target_fans / machine.sockets_per_process)
        print(
            f"  sockets: {gib:,.1f} GiB of waitingroom memory at {bytes_per_socket / 1024:.1f} KB "
            f"each ({gib / machine.machine_gib:.2f} of one {machine.machine_gib:.0f} GiB "
            f"machine); {processes} waitingroom processes at "
            f"{machine.sockets_per_process:,} sockets each"
        )


def one_event_bounds(
    measured: dict[str, dict[str, dict[str, float]]], load: Load, machine: Machine
) -> list[str]:
    """One event's queue lives in one slot, on one Redis primary (one core), however many
    primaries the cluster has: what that primary's Redis cost per join and per socket held
    allows one event, against the load."""
    lines = []
    rates = load.rates()
    for op, what, unit in (("join", "joins/s", "a join"), ("push", "sockets", "a socket-second")):
        _, per = chosen(measured[op])
        us = per.get("redis", 0.0)
        if us:
            most = machine.utilisation * 1e6 / us
            lines.append(
                f"one event on one Redis primary: at {us:,.0f} us {unit}, about {most:,.0f} "
                f"{what} at {machine.utilisation:.0%} of its core ({rates[op]:,.0f} wanted)"
            )
    return lines
