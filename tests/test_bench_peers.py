"""The benchmark's peers (``python -m bench --peers``) at a tiny size.

Each peer's real consumer (``celery worker`` with its prefork pool, ``rq
worker-pool``) runs the three scenarios on the test Redis: a chain of 5, a
fan-out of 10 into one fan-in, a flood of 20. Every job must run exactly once
and the fan-in must read every result, so the peer code cannot rot silently
between the (hand-run) benchmarks; afterwards no key of the run is left. The
table's verdicts are checked on made-up figures. No timing is asserted here:
speed is measured by ``python -m bench``.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from bench import peers
from bench.__main__ import main
from bench.storage import REDIS_URL, Storage
from bench.systems import Measurement

from .conftest import require_service

pytestmark = pytest.mark.redis

for _module in peers.REQUIRED:
    pytest.importorskip(_module, reason=f"{_module} is not installed (pip install -e '.[dev,bench]')")


@pytest.fixture(params=["celery", "rq"])
def peer(request: pytest.FixtureRequest, tmp_path: Path) -> peers.System:
    require_service("redis", REDIS_URL, 6379)
    systems = {system.key: system for system in peers.systems(Storage("redis", tmp_path), tmp_path)}
    for key, other in systems.items():
        if key != request.param:
            other.stop()
    return systems[request.param]


def test_each_peer_scenario_runs_every_job_once_and_leaves_no_key(peer: peers.System) -> None:
    try:
        peer.start()
        chain = peer.chain(5, timeout=60.0)
        fan_out = peer.fan_out(10, timeout=60.0)
        flood = peer.throughput(20, timeout=60.0)
        peer.ensure_idle()
    finally:
        peer.stop()
    assert chain.extra["executions"] == 5
    assert flood.extra["executions"] == 20
    assert fan_out.extra["executions"] == 11  # 10 parts and the fan-in
    assert fan_out.extra["fanin_runs"] == 1
    assert fan_out.extra["fanin_result"] == 10  # it read all ten results of 1
    import redis

    client = redis.Redis.from_url(REDIS_URL)
    try:
        assert list(client.scan_iter(match=f"*{peer.tag}*")) == []
    finally:
        client.close()


def _runs(chain_ms: float, fan_s: float, rate: float, fanin_runs: int = 1) -> dict[str, list[Measurement]]:
    return {
        "chain": [Measurement(chain_ms * 200 / 1000, 200, extra={"executions": 200})],
        "fan_out": [
            Measurement(
                fan_s,
                1002,
                extra={"fanin_runs": fanin_runs, "fanin_result": 1000, "fan_width": 1000, "executions": 1002},
            )
        ],
        "throughput": [Measurement(1000 / rate, 1000, extra={"executions": 1000})],
    }


def test_table_gives_ratios_to_raw_huey_and_says_where_baton_is_behind() -> None:
    results = {
        "raw": _runs(1.0, 1.0, 1000),
        "baton": _runs(1.5, 2.0, 600),
        "celery": _runs(3.0, 3.0, 300),
        "rq": _runs(5.0, 1.5, 200),
    }
    result = peers.table(results, "redis+pg")
    chain_row, fan_row, throughput_row, fan_in_row = result.rows
    assert chain_row[2:] == ["1.00", "1.50 (1.50x)", "3.00 (3.00x)", "5.00 (5.00x)", "yes", "PASS"]
    assert fan_row[-2:] == ["no", "FAIL"]  # RQ's 1.5 s beats flask_baton's 2.0 s
    assert throughput_row[2:] == ["1000", "600 (0.60x)", "300 (0.30x)", "200 (0.20x)", "yes", "PASS"]
    assert fan_in_row[-1] == "PASS"
    assert result.behind == ["fan-out -> fan-in total"]
    assert result.failures == []


def test_table_fails_a_fan_in_that_ran_twice() -> None:
    results = {key: _runs(1.0, 1.0, 1000) for key in ("raw", "baton", "rq")}
    results["celery"] = _runs(1.0, 1.0, 1000, fanin_runs=2)
    result = peers.table(results, "redis+pg")
    assert result.rows[-1][2:] == ["-", "1", "2", "1", "-", "FAIL"]


def test_peers_refuse_sqlite_storage(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["--peers", "--storage", "sqlite"])
    assert exited.value.code == 2
    assert "--peers runs Celery and RQ on Redis" in capsys.readouterr().err


def test_peers_without_the_bench_extra_exit_saying_what_to_install(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setitem(peers.REQUIRED, "bench_peer_not_installed", "bench-peer-not-installed")
    with pytest.raises(SystemExit) as exited:
        main(["--peers", "--storage", "redis"])
    assert exited.value.code == 2
    err = capsys.readouterr().err
    assert "--peers needs bench-peer-not-installed (not installed here)" in err
    assert "pip install -e '.[dev,bench]'" in err
