"""Broker credentials (Faust's ``broker_credentials``), turned into librdkafka settings.

Faust's signatures work as they are::

    ctx = ssl.create_default_context(cafile='ca.pem')
    App('app', broker='kafka://broker:9094',
        broker_credentials=SASLCredentials(username='u', password='p',
                                           mechanism='SCRAM-SHA-256', ssl_context=ctx))
    App('app', broker_credentials=SSLCredentials(ctx))
    App('app', broker_credentials=OAuthCredentials(oauth_cb=token_provider))

librdkafka does its own TLS (OpenSSL in C) and cannot use a Python
``ssl.SSLContext``: a context is read into librdkafka settings as far as
Python lets one read it. Its CA certificates (loaded with ``cafile=``,
``cadata=`` or ``load_verify_locations``) become ``ssl.ca.pem``, a context
with none loaded uses the system's CA store, and ``verify_mode`` /
``check_hostname`` are kept. A client certificate loaded with
``load_cert_chain`` cannot be read back from a context: for mutual TLS pass
the PEM files too, ``SSLCredentials(ctx, certfile='client.pem',
keyfile='client.key')`` (or ``SSLCredentials(cafile=..., certfile=...,
keyfile=...)`` without a context).

A plain mapping of librdkafka settings (``{'security.protocol': 'SSL', ...}``)
is accepted too and passed through as it is.

Secrets never appear in a ``repr`` or an error message: see :func:`redact`.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import inspect
import json
import logging
import re
import ssl
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields
from typing import Any

from .exceptions import ImproperlyConfigured

__all__ = [
    "Credentials",
    "GSSAPICredentials",
    "OAuthCredentials",
    "SASLCredentials",
    "SSLCredentials",
    "credentials_config",
    "redact",
    "reject_url_credentials",
]

logger = logging.getLogger(__name__)

SASL_MECHANISMS = ("PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512", "GSSAPI", "OAUTHBEARER")
MASK = "***"

#: librdkafka setting names whose values are secrets.
_SECRET_KEY = re.compile(r"password|secret|token|\.pem$|jaas|oauthbearer\.config", re.I)

#: librdkafka settings without a dot in their name (callbacks).
_CALLBACK_KEYS = frozenset({"oauth_cb", "error_cb", "throttle_cb", "stats_cb", "logger"})

#: Seconds a token from a provider without an expiry (not a JWT with ``exp``) is used.
DEFAULT_TOKEN_LIFETIME_S = 300.0


def redact(value: Any) -> Any:
    """``value`` with its secrets masked, for a repr, an error or a log line."""
    if isinstance(value, Credentials):
        return _MaskedRepr(repr(value))
    if isinstance(value, ssl.SSLContext):
        return _MaskedRepr(f"<ssl.SSLContext verify_mode={value.verify_mode.name}>")
    if isinstance(value, Mapping):
        return {k: (MASK if isinstance(k, str) and _SECRET_KEY.search(k) else redact(v))
                for k, v in value.items()}
    if isinstance(value, str) and "://" in value and "@" in value:
        return _mask_url(value)
    return value


class _MaskedRepr(str):
    """A string that shows as itself in a repr (no quotes added)."""

    def __repr__(self) -> str:
        return str(self)


def _mask_url(url: str) -> str:
    """``url`` with everything from a user name's ``:`` to the last ``@`` masked
    (a password may hold any character, ``;`` included: more is hidden, never less)."""
    return re.sub(r"^((?:[^@]*?://)?[^:;,/@\s]*):.*@", rf"\1:{MASK}@", url, flags=re.S)


def reject_url_credentials(url: str) -> None:
    """Refuse ``kafka://user:password@host``: the URL is logged and shown in banners.

    Rejected rather than moved into ``broker_credentials`` silently: the URL
    cannot say the mechanism (PLAIN or SCRAM) nor whether TLS is wanted.
    """
    if "@" not in url:
        return
    before, _, hosts = url.rpartition("@")
    user = before.rpartition("://")[2].partition(":")[0]
    user = re.split(r"[;,]", user)[-1].strip()
    raise ImproperlyConfigured(
        f"The broker URL (hosts {hosts!r}) carries credentials: they would be shown in logs "
        "and banners. Give the URL without them and pass "
        f"broker_credentials=SASLCredentials(username={user!r}, password=..., "
        "mechanism='PLAIN' or 'SCRAM-SHA-256'/'SCRAM-SHA-512', ssl_context=... for TLS)."
    )


class Credentials:
    """Something that knows its librdkafka settings."""

    _secrets: tuple[str, ...] = ()

    def config(self) -> dict[str, Any]:
        raise NotImplementedError

    def __repr__(self) -> str:
        shown = []
        for f in fields(self):  # type: ignore[arg-type]
            value = getattr(self, f.name)
            if value is None:
                continue
            text = MASK if f.name in self._secrets else repr(redact(value))
            shown.append(f"{f.name}={text}")
        return f"{type(self).__name__}({', '.join(shown)})"


@dataclass(repr=False)
class SSLCredentials(Credentials):
    """TLS to the broker (Faust's ``SSLCredentials(context)``, or PEM files).

    ``context`` is read as the module's docstring says; ``cafile``/``capath``/
    ``cadata`` are Faust's (``ssl.create_default_context``'s) CA arguments;
    ``certfile``/``keyfile``/``password`` give a client certificate for mutual TLS.
    """

    context: ssl.SSLContext | None = None
    purpose: Any = None
    cafile: str | None = None
    capath: str | None = None
    cadata: str | bytes | None = None
    certfile: str | None = None
    keyfile: str | None = None
    password: str | None = None
    check_hostname: bool = True

    _secrets = ("password",)

    def config(self) -> dict[str, Any]:
        config: dict[str, Any] = {"security.protocol": "SSL"}
        if self.context is not None and not isinstance(self.context, ssl.SSLContext):
            raise ImproperlyConfigured(
                f"SSLCredentials(context=...) takes an ssl.SSLContext, not "
                f"{type(self.context).__name__}")
        if self.cafile or self.capath:
            config["ssl.ca.location"] = self.cafile or self.capath
        elif self.cadata is not None:
            config["ssl.ca.pem"] = _pem(self.cadata)
        elif self.context is not None:
            config.update(_context_ca(self.context))
        for key, value in (("ssl.certificate.location", self.certfile),
                           ("ssl.key.location", self.keyfile),
                           ("ssl.key.password", self.password)):
            if value is not None:
                config[key] = value
        check_hostname = self.check_hostname
        if self.context is not None:
            check_hostname = check_hostname and self.context.check_hostname
            if self.context.verify_mode == ssl.CERT_NONE:
                config["enable.ssl.certificate.verification"] = False
        if not check_hostname:
            config["ssl.endpoint.identification.algorithm"] = "none"
        return config


def _pem(cadata: str | bytes) -> str:
    if isinstance(cadata, bytes):  # DER, as ssl.create_default_context(cadata=bytes) takes
        return ssl.DER_cert_to_PEM_cert(cadata)
    return cadata


def _context_ca(context: ssl.SSLContext) -> dict[str, Any]:
    """The CA certificates loaded into ``context``, for librdkafka."""
    if context.verify_mode == ssl.CERT_NONE:
        return {}
    certs = context.get_ca_certs(binary_form=True)
    if certs:
        return {"ssl.ca.pem": "".join(ssl.DER_cert_to_PEM_cert(c) for c in certs)}
    # Nothing loaded but the default verify paths (create_default_context()):
    # librdkafka looks for the system's CA store itself.
    return {"ssl.ca.location": "probe"}


def _tls(ssl_context: Any, tls: SSLCredentials | None, owner: str) -> SSLCredentials | None:
    if ssl_context is None:
        return tls
    if tls is not None:
        raise ImproperlyConfigured(f"{owner}: give ssl_context= or ssl=, not both")
    if isinstance(ssl_context, SSLCredentials):
        return ssl_context
    if isinstance(ssl_context, ssl.SSLContext):
        return SSLCredentials(ssl_context)
    raise ImproperlyConfigured(
        f"{owner}(ssl_context=...) takes an ssl.SSLContext or SSLCredentials, not "
        f"{type(ssl_context).__name__}")


def _mechanism(value: Any, default: str) -> str:
    if value is None:
        return default
    return str(getattr(value, "value", value)).upper()  # Faust's SASLMechanism enum too


@dataclass(repr=False, kw_only=True)
class SASLCredentials(Credentials):
    """SASL with a user name and password (PLAIN or SCRAM), over TLS when
    ``ssl_context`` (an ``ssl.SSLContext``, as in Faust) or ``ssl`` (SSLCredentials) is given."""

    username: str | None = None
    password: str | None = None
    mechanism: Any = None
    ssl_context: Any = None
    ssl: SSLCredentials | None = None

    _secrets = ("password",)

    def config(self) -> dict[str, Any]:
        mechanism = _mechanism(self.mechanism, "PLAIN")
        if mechanism not in ("PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"):
            raise ImproperlyConfigured(
                f"SASLCredentials mechanism {mechanism!r}: use PLAIN, SCRAM-SHA-256 or "
                "SCRAM-SHA-512 (GSSAPICredentials / OAuthCredentials for the others)"
            )
        if not self.username or self.password is None:
            raise ImproperlyConfigured("SASLCredentials needs username= and password=")
        tls = _tls(self.ssl_context, self.ssl, "SASLCredentials")
        return _sasl(mechanism, tls, {"sasl.username": self.username,
                                      "sasl.password": self.password})


@dataclass(repr=False, kw_only=True)
class GSSAPICredentials(Credentials):
    """Kerberos (librdkafka needs its GSSAPI plugin, i.e. a build with libsasl2).

    ``kerberos_domain_name`` is Faust's (aiokafka's) host-name override; librdkafka
    always uses each broker's host name, so it is checked for type only.
    """

    kerberos_service_name: str = "kafka"
    kerberos_domain_name: str | None = None
    ssl_context: Any = None
    mechanism: Any = None
    principal: str | None = None
    keytab: str | None = None
    ssl: SSLCredentials | None = None

    def config(self) -> dict[str, Any]:
        mechanism = _mechanism(self.mechanism, "GSSAPI")
        if mechanism != "GSSAPI":
            raise ImproperlyConfigured(f"GSSAPICredentials mechanism {mechanism!r}: only GSSAPI")
        if self.kerberos_domain_name is not None:
            logger.info("GSSAPICredentials(kerberos_domain_name=%r): librdkafka uses each "
                        "broker's host name in the service principal", self.kerberos_domain_name)
        extra: dict[str, Any] = {"sasl.kerberos.service.name": self.kerberos_service_name}
        if self.principal:
            extra["sasl.kerberos.principal"] = self.principal
        if self.keytab:
            extra["sasl.kerberos.keytab"] = self.keytab
        return _sasl("GSSAPI", _tls(self.ssl_context, self.ssl, "GSSAPICredentials"), extra)


@dataclass(repr=False, kw_only=True)
class OAuthCredentials(Credentials):
    """OAUTHBEARER.

    ``oauth_cb`` is either confluent-kafka's callback, ``oauth_cb(config_str)
    -> (token, expiry_epoch_seconds)``, or Faust's (aiokafka's) token provider,
    an object whose ``token()`` (sync or async) returns the token string; its
    expiry is read from the token's ``exp`` claim when it is a JWT, else it is
    renewed after ``token_lifetime`` seconds. Without ``oauth_cb``, librdkafka
    fetches tokens itself (OIDC client credentials) from ``token_endpoint_url``
    with ``client_id``/``client_secret``.
    """

    oauth_cb: Any = None
    ssl_context: Any = None
    token_endpoint_url: str | None = None
    client_id: str | None = None
    client_secret: str | None = None
    scope: str | None = None
    token_lifetime: float = DEFAULT_TOKEN_LIFETIME_S
    ssl: SSLCredentials | None = None

    _secrets = ("client_secret",)

    def config(self) -> dict[str, Any]:
        tls = _tls(self.ssl_context, self.ssl, "OAuthCredentials")
        if self.oauth_cb is not None:
            return _sasl("OAUTHBEARER", tls, {"oauth_cb": _token_callback(
                self.oauth_cb, self.token_lifetime)})
        if not (self.token_endpoint_url and self.client_id and self.client_secret):
            raise ImproperlyConfigured(
                "OAuthCredentials needs oauth_cb= (a token callback or provider), or "
                "token_endpoint_url=, client_id= and client_secret= for librdkafka's OIDC")
        extra: dict[str, Any] = {
            "sasl.oauthbearer.method": "oidc",
            "sasl.oauthbearer.token.endpoint.url": self.token_endpoint_url,
            "sasl.oauthbearer.client.id": self.client_id,
            "sasl.oauthbearer.client.secret": self.client_secret,
        }
        if self.scope:
            extra["sasl.oauthbearer.scope"] = self.scope
        return _sasl("OAUTHBEARER", tls, extra)


def _token_callback(provider: Any, lifetime_s: float) -> Callable[[str], tuple[str, float]]:
    """confluent-kafka's ``oauth_cb`` for a callback or an aiokafka-style token provider."""
    token_method = getattr(provider, "token", None)
    if token_method is None:
        if not callable(provider):
            raise ImproperlyConfigured(
                "OAuthCredentials(oauth_cb=...) takes a function (config_str) -> (token, "
                f"expiry) or an object with a token() method, not {type(provider).__name__}")
        return provider  # type: ignore[no-any-return]

    def oauth_cb(_config: str) -> tuple[str, float]:
        token = _call_maybe_async(token_method)
        if not isinstance(token, str):
            raise ImproperlyConfigured(
                f"{type(provider).__name__}.token() returned {type(token).__name__}, not a str")
        return token, _jwt_expiry(token) or time.time() + lifetime_s

    return oauth_cb


def _call_maybe_async(fun: Callable[[], Any]) -> Any:
    """Call ``fun``; an awaitable result is run to completion on a thread of its own
    (librdkafka calls ``oauth_cb`` from whichever thread polls, maybe the event loop's)."""
    result = fun()
    if not inspect.isawaitable(result):
        return result
    outcome: dict[str, Any] = {}

    def run() -> None:
        async def wait() -> Any:
            return await result

        try:
            outcome["value"] = asyncio.run(wait())
        except BaseException as exc:
            outcome["error"] = exc

    thread = threading.Thread(target=run, name="fluvial-oauth-token", daemon=True)
    thread.start()
    thread.join()
    if "error" in outcome:
        raise outcome["error"]
    return outcome["value"]


def _jwt_expiry(token: str) -> float | None:
    parts = token.split(".")
    if len(parts) != 3:
        return None
    try:
        payload = json.loads(base64.urlsafe_b64decode(parts[1] + "=" * (-len(parts[1]) % 4)))
    except (ValueError, binascii.Error):
        return None
    exp = payload.get("exp") if isinstance(payload, dict) else None
    return float(exp) if isinstance(exp, (int, float)) else None


def _sasl(mechanism: str, tls: SSLCredentials | None,
          extra: dict[str, Any]) -> dict[str, Any]:
    config = tls.config() if tls is not None else {}
    config["security.protocol"] = "SASL_SSL" if tls is not None else "SASL_PLAINTEXT"
    config["sasl.mechanism"] = mechanism
    config.update(extra)
    return config


def credentials_config(credentials: Any) -> dict[str, Any]:
    """librdkafka settings for ``broker_credentials``.

    Takes a Credentials object above, an ``ssl.SSLContext`` (Faust accepts one
    as ``broker_credentials``), or a mapping of librdkafka settings.
    """
    if credentials is None:
        return {}
    if isinstance(credentials, Credentials):
        return credentials.config()
    if isinstance(credentials, ssl.SSLContext):
        return SSLCredentials(credentials).config()
    if isinstance(credentials, Mapping):
        config = {str(k): v for k, v in credentials.items()}
        odd = sorted(k for k in config if "." not in k and k not in _CALLBACK_KEYS)
        if odd:
            raise ImproperlyConfigured(
                f"broker_credentials: {', '.join(map(repr, odd))} are not librdkafka setting "
                "names (values not shown). Use SASLCredentials(username=..., password=...), "
                "or librdkafka's names ('sasl.username', 'sasl.password', "
                "'security.protocol', ...)")
        return config
    raise ImproperlyConfigured(
        "broker_credentials must be SASLCredentials, SSLCredentials, GSSAPICredentials, "
        "OAuthCredentials, an ssl.SSLContext or a mapping of librdkafka settings, not a "
        f"{type(credentials).__name__} (its value is not shown: it may be a secret)"
    )
