"""Utilities with Faust's module paths (``faust.utils.json``)."""
