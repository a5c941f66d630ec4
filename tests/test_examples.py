"""The README's programs are the files in examples/, and they run (on a virtual clock)."""

from __future__ import annotations

import importlib.util
import re
import uuid
from pathlib import Path
from types import ModuleType

import pytest

from fluvial.testing.driver import TestDriver

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"


def load(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(f"example_{name}_{uuid.uuid4().hex[:6]}",
                                                  EXAMPLES / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_readme_programs_are_the_example_files() -> None:
    readme = (ROOT / "README.md").read_text()
    blocks = re.findall(r"```python\n(.*?)```", readme, flags=re.S)
    programs = [b for b in blocks if b.startswith("import fluvial as faust") and "app = " in b]
    examples = {p.read_text() for p in EXAMPLES.glob("*.py")}
    assert len(programs) >= 3
    for program in programs:
        assert program in examples, f"README program not in examples/:\n{program[:200]}"


async def test_hello(capsys: pytest.CaptureFixture[str]) -> None:
    module = load("hello")
    async with TestDriver(module.app) as driver:
        await driver.advance(3.5)
    assert capsys.readouterr().out.count("Hello from Faust to you") == 3


async def test_orders(capsys: pytest.CaptureFixture[str]) -> None:
    module = load("orders")
    async with TestDriver(module.app) as driver:
        await driver.advance(2.05)
        counts = dict(module.order_count_by_account.items())
    assert sum(counts.values()) > 0
    assert set(counts) <= set(module.ACCOUNTS)
    assert "orders counted:" in capsys.readouterr().out


async def test_windows(capsys: pytest.CaptureFixture[str]) -> None:
    module = load("windows")
    async with TestDriver(module.app) as driver:
        start = driver.clock.time() // 60 * 60
        for page, at in [("home", 1), ("home", 5), ("docs", 30), ("home", 61)]:
            await driver.send("page-views", key=page, value=module.PageView(page=page),
                              timestamp=start + at)
        await driver.settle()
        # docs gets no later event: its minute closes after idle_timeout (60 s) of quiet.
        await driver.advance(61)
    out = capsys.readouterr().out
    assert f"home: 2 views in the minute from {start:.0f}" in out
    assert f"docs: 1 views in the minute from {start:.0f}" in out


async def test_joins(capsys: pytest.CaptureFixture[str]) -> None:
    module = load("joins")
    async with TestDriver(module.app) as driver:
        await driver.send("customers", key="c1", value=module.Customer(name="Ann", tier="gold"))
        await driver.settle()
        await driver.send("orders", key="c1", value=module.Order(customer_id="c1", amount=5.0))
        await driver.send("orders", key="c9", value=module.Order(customer_id="c9", amount=2.0))
        await driver.settle()
    out = capsys.readouterr().out
    assert "c1 ordered 5.0 (gold)" in out
    assert "c9 ordered 2.0 (unknown)" in out


async def test_avro_orders(schema_registry_url: str, monkeypatch: pytest.MonkeyPatch,
                           capsys: pytest.CaptureFixture[str]) -> None:
    from confluent_kafka.schema_registry import SchemaRegistryClient

    monkeypatch.setenv("FLUVIAL_SCHEMA_REGISTRY_URL", schema_registry_url)
    module = load("avro_orders")
    async with TestDriver(module.app) as driver:
        await driver.advance(2.5)
    lines = capsys.readouterr().out.splitlines()
    assert len([line for line in lines if line.startswith("alice paid 9.99 at ")]) == 2
    registry = SchemaRegistryClient({"url": schema_registry_url})
    assert registry.get_latest_version("avro-orders-value").schema.schema_type == "AVRO"
