"""The benchmark harness: its subprocess runner, its input data, and one tiny real run."""

from __future__ import annotations

import json
import sys
import textwrap
import time
import uuid
from pathlib import Path

import pytest
from confluent_kafka import Consumer

from bench import kafka
from bench.pipelines._common import ACCOUNTS, PARTITIONS, orders
from bench.report import ratios
from bench.runner import RunResult, run_pipeline

PIPELINES = Path(__file__).resolve().parent.parent / "bench" / "pipelines"


def _script(tmp_path: Path, body: str) -> list[str]:
    path = tmp_path / "pipeline.py"
    path.write_text(textwrap.dedent(body))
    return [sys.executable, str(path)]


def _run(tmp_path: Path, cmd: list[str], timeout_s: float = 30.0) -> RunResult:
    return run_pipeline(
        system="fake", pipeline="plain", transport="memory", events=1000, cmd=cmd,
        env={"PYTHONPATH": str(PIPELINES), "BENCH_RESULT": str(tmp_path / "r.json")},
        result_path=tmp_path / "r.json", log_path=tmp_path / "log.txt", timeout_s=timeout_s,
    )


def test_runner_computes_rate_from_the_reported_times(tmp_path: Path) -> None:
    cmd = _script(tmp_path, """
        import json, os, time
        first = time.time()
        payload = {"system": "fake", "pipeline": "plain", "events": 1001, "first_ts": first,
                   "last_ts": first + 2.0, "written_ts": time.time(), "accounts": 7}
        with open(os.environ["BENCH_RESULT"], "w") as f:
            json.dump(payload, f)
    """)
    result = _run(tmp_path, cmd)
    assert result.status == "ok"
    assert result.events_per_s == pytest.approx(500.0)  # 1000 gaps over 2 s
    assert result.extra == {"accounts": 7}
    assert result.startup_s is not None and result.startup_s >= 0
    assert result.shutdown_s is not None


def test_runner_reports_a_crash_with_the_log_tail(tmp_path: Path) -> None:
    cmd = _script(tmp_path, "raise SystemExit('broker unreachable: giving up')\n")
    result = _run(tmp_path, cmd)
    assert result.status == "failed"
    assert "exited with code 1" in result.error_tail
    assert "broker unreachable" in result.error_tail


def test_runner_kills_a_hung_pipeline_at_the_deadline(tmp_path: Path) -> None:
    cmd = _script(tmp_path, "import time\nprint('started', flush=True)\ntime.sleep(600)\n")
    started = time.monotonic()
    result = _run(tmp_path, cmd, timeout_s=1.5)
    assert result.status == "timeout"
    assert "no result after 2 s" in result.error_tail and "started" in result.error_tail
    assert time.monotonic() - started < 15


def test_ratios_compare_fluvial_with_each_peer_on_the_same_transport() -> None:
    runs = [
        RunResult("fluvial", "plain", "kafka", 10, "ok", events_per_s=1000.0),
        RunResult("faust", "plain", "kafka", 10, "ok", events_per_s=10.0),
        RunResult("quix", "plain", "kafka", 10, "ok", events_per_s=250.0),
        RunResult("quix", "table", "kafka", 10, "timeout"),
        RunResult("fluvial", "plain", "memory", 10, "ok", events_per_s=5000.0),
    ]
    assert ratios(runs) == {"plain/kafka": {"fluvial/faust": 100.0, "fluvial/quix": 4.0}}


def test_orders_are_deterministic_and_spread_over_about_a_thousand_accounts() -> None:
    first = list(orders(5000))
    assert first == list(orders(5000))
    assert len({key for key, _ in first}) == 5000
    accounts = {o["account_id"] for _, o in first}
    assert 900 < len(accounts) <= ACCOUNTS
    assert set(first[0][1]) == {"account_id", "product_id", "amount", "price"}


@pytest.mark.kafka
def test_produced_orders_land_on_eight_partitions_as_json(kafka_bootstrap: str) -> None:
    topic = f"bench-smoke-{uuid.uuid4().hex[:8]}"
    kafka.create_topic(kafka_bootstrap, topic)
    kafka.produce_orders(kafka_bootstrap, topic, 400)
    consumer = Consumer({"bootstrap.servers": kafka_bootstrap, "group.id": topic,
                         "auto.offset.reset": "earliest"})
    consumer.subscribe([topic])
    got = []
    deadline = time.monotonic() + 60
    try:
        while len(got) < 400 and time.monotonic() < deadline:
            for msg in consumer.consume(500, timeout=1.0):
                assert msg.error() is None
                got.append(msg)
    finally:
        consumer.close()
        kafka.delete_topic(kafka_bootstrap, topic)
    assert len(got) == 400
    assert {m.partition() for m in got} == set(range(PARTITIONS))
    expected = dict(orders(400))
    for msg in got:
        assert json.loads(msg.value()) == expected[msg.key().decode()]


def test_fluvial_pipelines_run_end_to_end_on_the_memory_transport(tmp_path: Path) -> None:
    """The real bench command, tiny: every fluvial pipeline reports, and the table counts add up
    (also under exactly-once)."""
    from bench.run import main

    results = tmp_path / "results.json"
    code = main(["--systems", "fluvial", "--transports", "memory", "--events", "3000",
                 "--timeout", "120", "--results", str(results)])
    runs = {r["pipeline"]: r for r in json.loads(results.read_text())["runs"]}
    assert code == 0, runs
    assert runs["plain"]["status"] == "ok" and runs["plain"]["events_per_s"] > 0
    table = runs["table"]
    assert table["status"] == "ok"
    assert table["extra"]["table_total"] == 3000
    assert 900 < table["extra"]["accounts"] <= ACCOUNTS
    eos = runs["table-eos"]
    assert eos["status"] == "ok"
    assert eos["extra"]["table_total"] == 3000


def test_avro_orders_are_what_confluent_kafka_reads(schema_registry_url: str) -> None:
    """The Avro bench input: the Confluent wire format, decodable with the pipeline's schema."""
    from confluent_kafka.schema_registry import SchemaRegistryClient
    from confluent_kafka.schema_registry.avro import AvroDeserializer
    from confluent_kafka.serialization import MessageField, SerializationContext

    topic = f"bench-avro-{uuid.uuid4().hex[:8]}"
    encode = kafka.avro_encoder(schema_registry_url, topic)
    deserialize = AvroDeserializer(SchemaRegistryClient({"url": schema_registry_url}))
    ctx = SerializationContext(topic, MessageField.VALUE)
    for _key, fields in orders(50):
        assert deserialize(encode(fields), ctx) == fields
