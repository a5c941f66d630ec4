"""Class-based views (``web.View``) and the function views ``@app.page`` wraps.

A view answers the HTTP methods it defines (``get``, ``post``, ``put``,
``patch``, ``delete``), each called as ``method(request, **match_info)``.
A :class:`~fluvial.web.exceptions.WebError` it raises becomes a JSON error
response with its status; any other exception is logged with its traceback
and answered with a 500, and the worker runs on.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping
from functools import wraps
from typing import TYPE_CHECKING, Any, ClassVar, no_type_check

from starlette.types import Receive, Scope, Send

from . import exceptions
from .base import Request, Response, Web
from .exceptions import WebError

if TYPE_CHECKING:
    from ..app import App

__all__ = ["View", "gives_model", "takes_model"]

logger = logging.getLogger(__name__)

_bytes = bytes  # ``View.bytes`` shadows the builtin in the class body

#: The methods a view may define, in Faust's order.
METHODS = ("head", "get", "post", "put", "patch", "delete", "options", "search")


class View:
    """An HTTP endpoint: subclass it and define ``get``/``post``/... methods."""

    ServerError: ClassVar[type[WebError]] = exceptions.ServerError
    ValidationError: ClassVar[type[WebError]] = exceptions.ValidationError
    ParseError: ClassVar[type[WebError]] = exceptions.ParseError
    NotAuthenticated: ClassVar[type[WebError]] = exceptions.NotAuthenticated
    PermissionDenied: ClassVar[type[WebError]] = exceptions.PermissionDenied
    NotFound: ClassVar[type[WebError]] = exceptions.NotFound
    ServiceUnavailable: ClassVar[type[WebError]] = exceptions.ServiceUnavailable

    view_name: str = ""
    view_path: str = ""

    @classmethod
    def from_handler(cls, fun: Callable[..., Awaitable[Any]]) -> type[View]:
        """A view whose ``get`` is ``fun(view, request, **match_info)`` (``@app.page``)."""
        if not callable(fun):
            raise TypeError(f"View handler must be callable, not {fun!r}")
        return type(fun.__name__, (cls,), {
            "get": fun, "__doc__": fun.__doc__, "__module__": fun.__module__,
        })

    def __init__(self, app: App, web: Web) -> None:
        self.app = app
        self.web = web
        self.methods: Mapping[str, Callable[..., Awaitable[Any]]] = {
            name: getattr(self, name) for name in METHODS
        }
        self.__post_init__()

    def __post_init__(self) -> None:
        """Override to initialise a view."""

    def get_methods(self) -> set[str]:
        """The HTTP methods this view defines (HEAD comes with GET)."""
        methods = set()
        for name in METHODS:
            if getattr(type(self), name) is not getattr(View, name):
                methods.add(name.upper())
        if "GET" in methods:
            methods.add("HEAD")
        return methods

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        request = self.web.request(scope, receive)
        response = await self.dispatch(request)
        await response(scope, receive, send)

    async def dispatch(self, request: Request) -> Response:
        """Call the method's handler; turn errors into JSON responses."""
        handler = self.methods[request.method.lower()]
        try:
            response = await handler(request, **request.match_info)
        except WebError as exc:
            return await self.on_request_error(request, exc)
        except Exception:
            logger.exception("View %s (%s %s) raised", self.view_name or type(self).__name__,
                             request.method, request.url.path)
            return self.error(500, "Internal server error.")
        if not isinstance(response, Response):
            logger.error("View %s (%s %s) returned %s, not a response: return "
                         "self.json(...), web.json(...), ...", self.view_name or
                         type(self).__name__, request.method, request.url.path,
                         type(response).__name__)
            return self.error(500, "Internal server error.")
        return response

    async def on_request_error(self, request: Request, exc: WebError) -> Response:
        headers = None
        if "retry_after" in exc.extra_context:
            headers = {"Retry-After": str(exc.extra_context["retry_after"])}
        return self.error(int(exc.code), exc.detail, headers=headers, **exc.extra_context)

    # -- handlers (defaults) --------------------------------------------------------------

    @no_type_check  # subclasses take the route's parameters
    async def head(self, request: Request, **kwargs: Any) -> Response:
        return await self.get(request, **kwargs)

    @no_type_check  # subclasses take the route's parameters
    async def get(self, request: Request, **kwargs: Any) -> Response:
        raise exceptions.MethodNotAllowed("Method GET not allowed.")

    @no_type_check  # subclasses take the route's parameters
    async def post(self, request: Request, **kwargs: Any) -> Response:
        raise exceptions.MethodNotAllowed("Method POST not allowed.")

    @no_type_check  # subclasses take the route's parameters
    async def put(self, request: Request, **kwargs: Any) -> Response:
        raise exceptions.MethodNotAllowed("Method PUT not allowed.")

    @no_type_check  # subclasses take the route's parameters
    async def patch(self, request: Request, **kwargs: Any) -> Response:
        raise exceptions.MethodNotAllowed("Method PATCH not allowed.")

    @no_type_check  # subclasses take the route's parameters
    async def delete(self, request: Request, **kwargs: Any) -> Response:
        raise exceptions.MethodNotAllowed("Method DELETE not allowed.")

    @no_type_check  # subclasses take the route's parameters
    async def options(self, request: Request, **kwargs: Any) -> Response:
        raise exceptions.MethodNotAllowed("Method OPTIONS not allowed.")

    @no_type_check  # subclasses take the route's parameters
    async def search(self, request: Request, **kwargs: Any) -> Response:
        raise exceptions.MethodNotAllowed("Method SEARCH not allowed.")

    # -- responses ------------------------------------------------------------------------

    def json(self, value: Any, *, content_type: str | None = None, status: int = 200,
             reason: str | None = None, headers: Mapping[str, str] | None = None) -> Response:
        return self.web.json(value, content_type=content_type, status=status, headers=headers)

    def text(self, value: str, *, content_type: str | None = None, status: int = 200,
             reason: str | None = None, headers: Mapping[str, str] | None = None) -> Response:
        return self.web.text(value, content_type=content_type, status=status, headers=headers)

    def html(self, value: str, *, content_type: str | None = None, status: int = 200,
             reason: str | None = None, headers: Mapping[str, str] | None = None) -> Response:
        return self.web.html(value, content_type=content_type, status=status, headers=headers)

    def bytes(self, value: _bytes, *, content_type: str | None = None, status: int = 200,
              reason: str | None = None,
              headers: Mapping[str, str] | None = None) -> Response:
        return self.web.bytes(value, content_type=content_type, status=status,
                              headers=headers)

    def error(self, status: int, reason: str, headers: Mapping[str, str] | None = None,
              **kwargs: Any) -> Response:
        """A JSON error response: ``{"error": reason, **kwargs}``."""
        return self.json({"error": reason, **kwargs}, status=status, headers=headers)

    def notfound(self, reason: str = "Not Found", **kwargs: Any) -> Response:
        return self.error(404, reason, **kwargs)

    async def read_request_content(self, request: Request) -> _bytes:
        return await request.body()

    def path_for(self, view_name: str, **kwargs: Any) -> str:
        return self.web.url_for(view_name, **kwargs)

    def url_for(self, view_name: str, _base_url: str | None = None, **kwargs: Any) -> str:
        base = _base_url if _base_url is not None else self.app.conf.canonical_url
        return base.rstrip("/") + "/" + self.path_for(view_name, **kwargs).lstrip("/")


Handler = Callable[..., Awaitable[Any]]


def takes_model(model: Any) -> Callable[[Handler], Handler]:
    """Decorate a view method to receive the request body decoded as ``model``."""
    def decorate(fun: Handler) -> Handler:
        @wraps(fun)
        async def inner(view: View, request: Request, *args: Any, **kwargs: Any) -> Any:
            data = await request.body()
            try:
                obj = model.loads(data, serializer="json")
            except Exception as exc:
                raise exceptions.ValidationError(
                    f"Request body is not a valid {model.__name__}: {exc}") from exc
            return await fun(view, request, obj, *args, **kwargs)
        return inner
    return decorate


def gives_model(model: Any) -> Callable[[Handler], Handler]:
    """Decorate a view method whose return value is sent as JSON."""
    def decorate(fun: Handler) -> Handler:
        @wraps(fun)
        async def inner(view: View, request: Request, *args: Any, **kwargs: Any) -> Response:
            return view.json(await fun(view, request, *args, **kwargs))
        return inner
    return decorate
