"""HTTP errors a view raises (``raise self.NotFound('no such order')``).

Each has a status :attr:`~WebError.code` and a human-readable
:attr:`~WebError.detail`; the response is JSON: ``{"error": detail, **extra}``.
"""

from __future__ import annotations

from http import HTTPStatus
from typing import Any

from ..exceptions import FluvialError

__all__ = [
    "AuthenticationFailed",
    "MethodNotAllowed",
    "NotAcceptable",
    "NotAuthenticated",
    "NotFound",
    "ParseError",
    "PayloadTooLarge",
    "PermissionDenied",
    "ServerError",
    "ServiceUnavailable",
    "Throttled",
    "UnsupportedMediaType",
    "ValidationError",
    "WebError",
]


class WebError(FluvialError):
    """An HTTP error: a status :attr:`code`, a :attr:`detail` and extra JSON fields."""

    code: int = HTTPStatus.INTERNAL_SERVER_ERROR
    detail: str = "Internal server error."

    def __init__(self, detail: str | None = None, *, code: int | None = None,
                 **extra_context: Any) -> None:
        if detail:
            self.detail = detail
        if code:
            self.code = code
        self.extra_context = extra_context
        super().__init__(self.detail)


class ServerError(WebError):
    """Internal server error (500)."""


class ValidationError(WebError):
    """Invalid input in the request (400)."""

    code = HTTPStatus.BAD_REQUEST
    detail = "Invalid input."


class ParseError(WebError):
    """Malformed request, e.g. a body that is not JSON (400)."""

    code = HTTPStatus.BAD_REQUEST
    detail = "Malformed request."


class AuthenticationFailed(WebError):
    """Incorrect authentication credentials (401)."""

    code = HTTPStatus.UNAUTHORIZED
    detail = "Incorrect authentication credentials."


class NotAuthenticated(WebError):
    """No authentication credentials were provided (401)."""

    code = HTTPStatus.UNAUTHORIZED
    detail = "Authentication credentials were not provided."


class PermissionDenied(WebError):
    """No permission to perform the action (403)."""

    code = HTTPStatus.FORBIDDEN
    detail = "You do not have permission to perform this action."


class NotFound(WebError):
    """Resource not found (404)."""

    code = HTTPStatus.NOT_FOUND
    detail = "Not found."


class MethodNotAllowed(WebError):
    """The view does not serve this HTTP method (405)."""

    code = HTTPStatus.METHOD_NOT_ALLOWED
    detail = "Method not allowed."


class NotAcceptable(WebError):
    """The request's ``Accept`` header cannot be satisfied (406)."""

    code = HTTPStatus.NOT_ACCEPTABLE
    detail = "Could not satisfy the request Accept header."


class PayloadTooLarge(WebError):
    """The request body is larger than ``web_max_request_size`` (413)."""

    code = HTTPStatus.REQUEST_ENTITY_TOO_LARGE
    detail = "Request body too large."


class UnsupportedMediaType(WebError):
    """The request's media type is not supported (415)."""

    code = HTTPStatus.UNSUPPORTED_MEDIA_TYPE
    detail = "Unsupported media type in request."


class Throttled(WebError):
    """Too many requests (429)."""

    code = HTTPStatus.TOO_MANY_REQUESTS
    detail = "Request was throttled."


class ServiceUnavailable(WebError):
    """Temporarily unavailable, e.g. a key's owner is unknown during a rebalance (503)."""

    code = HTTPStatus.SERVICE_UNAVAILABLE
    detail = "Service unavailable. Try again later."
