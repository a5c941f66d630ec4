"""fluvial's web layer, with Faust's API (``from faust import web``).

Every worker serves HTTP (Starlette on uvicorn, in the worker's event loop):
the app's views (``@app.page``), table routes that answer from the worker
owning a key (``@app.table_route``), websockets, and built-in pages.
"""

from __future__ import annotations

from . import exceptions
from .base import Request, Response, Web, bytes_response, html, json, text
from .blueprints import Blueprint
from .views import View, gives_model, takes_model

__all__ = [
    "Blueprint",
    "Request",
    "Response",
    "View",
    "Web",
    "bytes_response",
    "exceptions",
    "gives_model",
    "html",
    "json",
    "takes_model",
    "text",
]
