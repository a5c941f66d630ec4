"""Tables: sharded dictionaries backed by a changelog topic."""

from .changes import TableChange
from .manager import TableManager
from .sets import ChangeloggedSet, SetGlobalTable, SetTable
from .table import GlobalTable, Table

__all__ = [
    "ChangeloggedSet",
    "GlobalTable",
    "SetGlobalTable",
    "SetTable",
    "Table",
    "TableChange",
    "TableManager",
]
