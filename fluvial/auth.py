"""Broker credentials (Faust's ``broker_credentials``), turned into librdkafka settings.

    App('app', broker='kafka://broker:9093',
        broker_credentials=SASLCredentials(username='u', password='p', mechanism='SCRAM-SHA-256'))

A plain mapping of librdkafka settings (``{'security.protocol': 'SSL', ...}``)
is accepted too and passed through as it is.
"""

from __future__ import annotations

import ssl
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from .exceptions import ImproperlyConfigured

__all__ = [
    "Credentials",
    "GSSAPICredentials",
    "OAuthCredentials",
    "SASLCredentials",
    "SSLCredentials",
    "credentials_config",
]

SASL_MECHANISMS = ("PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512", "GSSAPI", "OAUTHBEARER")


class Credentials:
    """Something that knows its librdkafka settings."""

    def config(self) -> dict[str, Any]:
        raise NotImplementedError


@dataclass
class SSLCredentials(Credentials):
    """TLS to the broker; files in PEM (``context`` is accepted for Faust compatibility:
    librdkafka cannot use a Python SSLContext, so pass the files instead)."""

    context: ssl.SSLContext | None = None
    cafile: str | None = None
    certfile: str | None = None
    keyfile: str | None = None
    password: str | None = None
    check_hostname: bool = True

    def config(self) -> dict[str, Any]:
        if self.context is not None and not (self.cafile or self.certfile):
            raise ImproperlyConfigured(
                "SSLCredentials(context=...) cannot be handed to librdkafka: "
                "give cafile=/certfile=/keyfile= instead"
            )
        config: dict[str, Any] = {"security.protocol": "SSL"}
        for key, value in (("ssl.ca.location", self.cafile),
                           ("ssl.certificate.location", self.certfile),
                           ("ssl.key.location", self.keyfile),
                           ("ssl.key.password", self.password)):
            if value is not None:
                config[key] = value
        if not self.check_hostname:
            config["ssl.endpoint.identification.algorithm"] = "none"
        return config


@dataclass
class SASLCredentials(Credentials):
    """SASL with a user name and password (PLAIN or SCRAM), over TLS if ``ssl`` is given."""

    username: str
    password: str
    mechanism: str = "PLAIN"
    ssl: SSLCredentials | None = None

    def config(self) -> dict[str, Any]:
        mechanism = self.mechanism.upper()
        if mechanism not in ("PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"):
            raise ImproperlyConfigured(
                f"SASLCredentials mechanism {self.mechanism!r}: use PLAIN, SCRAM-SHA-256 or "
                "SCRAM-SHA-512 (GSSAPICredentials / OAuthCredentials for the others)"
            )
        return _sasl(mechanism, self.ssl, {"sasl.username": self.username,
                                           "sasl.password": self.password})


@dataclass
class GSSAPICredentials(Credentials):
    """Kerberos."""

    kerberos_service_name: str = "kafka"
    principal: str | None = None
    keytab: str | None = None
    ssl: SSLCredentials | None = None

    def config(self) -> dict[str, Any]:
        extra: dict[str, Any] = {"sasl.kerberos.service.name": self.kerberos_service_name}
        if self.principal:
            extra["sasl.kerberos.principal"] = self.principal
        if self.keytab:
            extra["sasl.kerberos.keytab"] = self.keytab
        return _sasl("GSSAPI", self.ssl, extra)


@dataclass
class OAuthCredentials(Credentials):
    """OAUTHBEARER with librdkafka's OIDC client-credentials flow."""

    token_endpoint_url: str
    client_id: str
    client_secret: str
    scope: str | None = None
    ssl: SSLCredentials | None = None

    def config(self) -> dict[str, Any]:
        extra: dict[str, Any] = {
            "sasl.oauthbearer.method": "oidc",
            "sasl.oauthbearer.token.endpoint.url": self.token_endpoint_url,
            "sasl.oauthbearer.client.id": self.client_id,
            "sasl.oauthbearer.client.secret": self.client_secret,
        }
        if self.scope:
            extra["sasl.oauthbearer.scope"] = self.scope
        return _sasl("OAUTHBEARER", self.ssl, extra)


def _sasl(mechanism: str, tls: SSLCredentials | None,
          extra: dict[str, Any]) -> dict[str, Any]:
    config = tls.config() if tls is not None else {}
    config["security.protocol"] = "SASL_SSL" if tls is not None else "SASL_PLAINTEXT"
    config["sasl.mechanism"] = mechanism
    config.update(extra)
    return config


def credentials_config(credentials: Any) -> dict[str, Any]:
    """librdkafka settings for ``broker_credentials`` (an object above, or a mapping)."""
    if credentials is None:
        return {}
    if isinstance(credentials, Credentials):
        return credentials.config()
    if isinstance(credentials, Mapping):
        return {str(k): v for k, v in credentials.items()}
    raise ImproperlyConfigured(
        f"broker_credentials must be SASLCredentials, SSLCredentials, GSSAPICredentials, "
        f"OAuthCredentials or a mapping of librdkafka settings, not {credentials!r}"
    )
