"""Helpers for testing fluvial applications and fluvial itself (e.g. a real Kafka broker)."""
