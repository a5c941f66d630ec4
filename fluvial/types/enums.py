"""Faust's enums (``faust.types.enums``)."""

from __future__ import annotations

from enum import Enum

__all__ = ["ProcessingGuarantee"]


class ProcessingGuarantee(str, Enum):
    """The ``processing_guarantee`` setting; equal to its string value, so either may be passed."""

    AT_LEAST_ONCE = "at_least_once"
    EXACTLY_ONCE = "exactly_once"
