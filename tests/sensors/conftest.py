"""Sensor tests run on memory:// and on real Kafka, like the app tests."""

from tests.app.conftest import broker_url, eventually, unique
from tests.web.conftest import free_port, served, web_app

__all__ = ["broker_url", "eventually", "free_port", "served", "unique", "web_app"]
