"""The restart policy of ``dronetrack run`` and its check of the ports it needs."""

from __future__ import annotations

import socket

import pytest

from dronetrack.settings import Settings
from dronetrack.supervisor import PortTaken, Restarts, check_ports


def test_quick_failures_double_the_delay_and_then_give_up() -> None:
    policy = Restarts(base_s=1.0, max_s=5.0, quick_s=30.0, give_up_after=5)
    assert [policy.failed(2.0) for _ in range(5)] == [1.0, 2.0, 4.0, 5.0, None]


def test_a_service_that_ran_long_starts_over_at_the_base_delay() -> None:
    policy = Restarts(base_s=1.0, max_s=30.0, quick_s=30.0, give_up_after=3)
    assert policy.failed(1.0) == 1.0
    assert policy.failed(1.0) == 2.0
    assert policy.failed(600.0) == 1.0  # ran ten minutes: not a crash loop
    assert policy.failed(1.0) == 1.0
    assert policy.failed(1.0) == 2.0
    assert policy.failed(1.0) is None


def test_a_taken_port_is_named_with_the_setting_that_moves_it() -> None:
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        settings = Settings(
            kafka_bootstrap_servers="127.0.0.1:1",
            ingest_port=0,
            dashboard_port=port,
            streams_web_port=0,
            run_web_port=0,
        )
        with pytest.raises(PortTaken) as taken:
            check_ports(settings)
    assert str(taken.value) == (
        f"port {port} (dashboard) is in use: stop what holds it, or choose another port "
        "with DRONETRACK_DASHBOARD_PORT=PORT (0: any free port)"
    )
