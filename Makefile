# One set of commands for people and CI.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: demo test lint unit kafka-up kafka-down bench bench-web faults clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev,yaml]'
	touch $(STAMP)

install: $(STAMP)

## Run the example app on the embedded in-process broker.
demo: $(STAMP)
	FLUVIAL_BROKER=memory:// $(PY) examples/orders.py worker --duration 10

## Lint, type-check, unit tests and Kafka integration tests (starts Kafka itself).
test: $(STAMP)
	$(PY) -m ruff check fluvial tests examples bench
	$(PY) -m mypy
	$(PY) -m pytest -q

kafka-up: $(STAMP)
	$(PY) -m fluvial.testing.kafka_server start

kafka-down: $(STAMP)
	$(PY) -m fluvial.testing.kafka_server stop

## Throughput against faust-streaming and quixstreams on the same broker, then end-to-end
## latency at 10k and 50k events/s against quixstreams (bench.latency).
bench: $(STAMP)
	$(PY) -m bench.run

## Event latency with and without web traffic, and table_route request latency (Kafka, ~90 s).
bench-web: $(STAMP)
	$(PY) -m bench.web

## Full-size fault runs: 1,000,000 events, three brokers, three workers, every fault.
faults: $(STAMP)
	$(PY) -m tests.fault.harness --events 1000000 --static

clean:
	rm -rf $(VENV) .kafka .schema-registry .pytest_cache .mypy_cache
