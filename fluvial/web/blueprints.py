"""Blueprints: groups of views declared once and registered on apps with a prefix.

.. code-block:: python

    blueprint = web.Blueprint('users')

    @blueprint.route('/{user_id}/', name='detail')
    class UserDetail(web.View):
        async def get(self, request, user_id):
            return self.json(users[user_id])

    blueprint.register(app, url_prefix='/users/')
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

from .views import View

if TYPE_CHECKING:
    from ..app import App

__all__ = ["Blueprint"]


class _FutureRoute(NamedTuple):
    uri: str
    name: str
    handler: Any
    base: type[View]


class _FutureStatic(NamedTuple):
    uri: str
    file_or_directory: Path
    name: str


class Blueprint:
    """A reusable set of views, served once :meth:`register` ed on an app."""

    view_name_separator = ":"

    def __init__(self, name: str, *, url_prefix: str | None = None) -> None:
        self.name = name
        self.url_prefix = url_prefix
        self.routes: list[_FutureRoute] = []
        self.static_routes: list[_FutureStatic] = []

    def route(self, uri: str, *, name: str | None = None, cors_options: Any = None,
              base: type[View] = View) -> Callable[[Any], Any]:
        """Decorator: a view class or function view served at ``uri``."""
        def decorate(handler: Any) -> Any:
            self.routes.append(_FutureRoute(uri, name or handler.__name__, handler, base))
            return handler
        return decorate

    def static(self, uri: str, file_or_directory: str | Path, *,
               name: str | None = None) -> None:
        """Serve the files of a directory at ``uri``."""
        self.static_routes.append(_FutureStatic(uri, Path(file_or_directory),
                                                f"{self.name}.{name or 'static'}"))

    def register(self, app: App, *, url_prefix: str | None = None) -> None:
        """Add the blueprint's views to ``app`` under ``url_prefix``."""
        prefix = url_prefix or self.url_prefix or ""
        for route in self.routes:
            app.page(_with_prefix(route.uri, prefix), base=route.base,
                     name=self.view_name_separator.join([self.name, route.name]))(route.handler)
        for static in self.static_routes:
            app.web.add_static(_with_prefix(static.uri, prefix), static.file_or_directory,
                               name=static.name)

    def __repr__(self) -> str:
        return f"<Blueprint: {self.name}>"


def _with_prefix(uri: str, prefix: str) -> str:
    if not prefix:
        return uri
    return prefix.rstrip("/") + "/" + uri.lstrip("/")
