"""bench/scale_model.py: the CPU per operation from the benches' figures, and the cores and
machines per tier it implies."""

from __future__ import annotations

from bench.scale_model import Load, Machine, costs, demand, one_event_bounds

SURGE = {
    "join": [1000.0, 5.0, 20.0, 10_000],
    "sockets": 10_000,
    "hold_seconds": 30,
    "phase_cpu": {
        "join": {"waitingroom": 1.0, "redis": 2.0, "nginx": 3.0, "load": 9.0, "hello": 9.0},
        "hold": {"waitingroom": 3.0, "redis": 0.6, "nginx": 0.3, "load": 9.0},
    },
}
RESERVE = {
    "answers": [500.0, 10.0, 90.0, 4_000],
    "cpu": {"booking_worker": 2.0, "postgres": 1.0, "load: wrk + driver (incl. setup)": 5.0},
}


def test_costs_are_cpu_over_operations_without_the_load_generators():
    measured = costs({"surge": SURGE, "reserve": RESERVE}, {}, {})
    assert measured["join"]["single"] == {"waitingroom": 100.0, "redis": 200.0, "nginx": 300.0}
    # 3 s over 10,000 sockets held 30 s: 10 us a socket-second.
    assert measured["push"]["single"]["waitingroom"] == 10.0
    assert measured["reserve"]["single"] == {"booking_worker": 500.0, "postgres": 250.0}
    assert "cluster" not in measured["join"]


def test_the_cluster_figures_are_the_models_when_both_ran():
    cluster_surge = {**SURGE, "join": [1000.0, 5.0, 20.0, 5_000]}  # twice the cost a join
    measured = costs({"surge": SURGE}, {"surge": cluster_surge}, {})
    cores = demand(measured, Load(target_fans=600_000, join_seconds=60))
    # 10,000 joins/s at 400 us of Redis a join (the cluster's), not 200 (the single's).
    assert cores["redis"]["join"] == 4.0


def test_one_event_is_bounded_by_one_redis_primary():
    measured = costs({"surge": SURGE}, {}, {})
    lines = one_event_bounds(measured, Load(), Machine(utilisation=0.5))
    assert lines[0].startswith("one event on one Redis primary: at 200 us a join, about 2,500")
    assert "about 250,000 sockets" in lines[1]  # 0.5 s of a core over 2 us a socket-second
