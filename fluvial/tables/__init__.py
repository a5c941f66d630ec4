"""Tables: sharded dictionaries backed by a changelog topic."""

from .manager import TableManager
from .table import GlobalTable, Table

__all__ = ["GlobalTable", "Table", "TableManager"]
