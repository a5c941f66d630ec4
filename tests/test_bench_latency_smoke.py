"""The latency benchmark: its figures, and ``make bench`` printing them with throughput's."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bench.paced import percentiles


def test_percentiles_are_nearest_rank_in_milliseconds() -> None:
    values = [i / 1000 for i in range(1, 101)]  # 1 ms .. 100 ms
    assert percentiles(values) == {"n": 100, "p50": 50.0, "p99": 99.0, "max": 100.0}
    assert percentiles([]) == {}


def test_the_recorder_measures_only_the_measured_phase_and_ends_at_n(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from bench.pipelines._common import LatencyRecorder

    monkeypatch.setenv("BENCH_EVENTS", "3")
    monkeypatch.setenv("BENCH_RESULT", str(tmp_path / "r.json"))
    monkeypatch.setenv("BENCH_READY", str(tmp_path / "ready"))
    monkeypatch.setenv("BENCH_SECONDS", "60")
    monkeypatch.setenv("BENCH_GRACE", "60")
    recorder = LatencyRecorder()
    assert not recorder.see(0.0, "prime")
    assert (tmp_path / "ready").exists()
    assert not recorder.see(0.0, "warmup")
    assert not recorder.see(1e18, "measure")  # a send time in the future: negative
    assert recorder.see(0.0, "measure")
    result = json.loads((tmp_path / "r.json").read_text())
    assert result["status"] == "ok" and result["seen"] == 3
    assert len(result["latencies"]) == len(result["received"]) == 2
    assert result["latencies"][0] < 0 < result["latencies"][1]
    assert result["max_rss_mb"] > 1


@pytest.mark.kafka
def test_make_bench_prints_throughput_and_latency_tables(
        kafka_bootstrap: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    """``bench.run`` (``make bench``), tiny: a throughput run and latency runs on Kafka,
    both tables printed, the latency figures written for fluvial's two pipelines."""
    from bench.run import main

    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", kafka_bootstrap)
    monkeypatch.setenv("COLUMNS", "200")
    results, latencies = tmp_path / "results.json", tmp_path / "latency.json"
    code = main(["--systems", "fluvial", "--transports", "kafka", "--only", "plain,table",
                 "--events", "2000", "--timeout", "120", "--results", str(results),
                 "--latency-results", str(latencies), "--latency-rates", "500",
                 "--latency-seconds", "2", "--latency-warmup", "1"])
    out = capsys.readouterr().out
    assert code == 0, out
    assert "events/s (first to N-th event" in out
    assert "end-to-end latency at a steady rate" in out
    runs = {r["pipeline"]: r for r in json.loads(latencies.read_text())["runs"]}
    assert set(runs) == {"plain", "table"}
    for run in runs.values():
        assert run["system"] == "fluvial" and run["rate"] == 500
        assert run["status"] == "ok", run
        assert run["seen"] == run["events"] == 1500
        assert 0 < run["measured"] <= 1000 + 5  # the phase flips on the producer's tick
        assert 0 < run["p50_ms"] <= run["p99_ms"] <= run["max_ms"]
        assert run["max_rss_mb"] > 10
        assert f"{run['p99_ms']:.1f}" in out
