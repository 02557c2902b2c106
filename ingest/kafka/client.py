"""Settings.ingest.kafka -> kafka-python client options, in one place so every client the daemon opens
(consumer, dead-letter and state producers, admin) authenticates the same way."""

from __future__ import annotations

import logging
import os
import time
from typing import Any

from temporal_siem.kernel.config import KafkaConfig

log = logging.getLogger("ingest.kafka.client")


class KafkaConfigError(ValueError):
    """The Kafka section cannot work as written (missing file, SASL without credentials...)."""


def connection_options(cfg: KafkaConfig) -> dict[str, Any]:
    """Bootstrap, client id and security options shared by consumers, producers and admin clients."""
    options: dict[str, Any] = {
        "bootstrap_servers": list(cfg.bootstrap_servers),
        "client_id": cfg.client_id,
        "security_protocol": cfg.security_protocol,
        # kafka-python backs off up to 30 s between reconnects; after a broker restart that is 30 s of lag.
        "reconnect_backoff_max_ms": 5000,
    }
    if cfg.security_protocol in ("SSL", "SASL_SSL"):
        options.update(_tls_options(cfg))
    elif any((cfg.ssl_cafile, cfg.ssl_certfile, cfg.ssl_keyfile)):
        raise KafkaConfigError(f"ssl_* files are set but security_protocol is {cfg.security_protocol}; use SSL or SASL_SSL")
    if cfg.security_protocol in ("SASL_PLAINTEXT", "SASL_SSL"):
        options.update(_sasl_options(cfg))
    elif cfg.sasl_mechanism:
        raise KafkaConfigError(f"sasl_mechanism is set but security_protocol is {cfg.security_protocol}; use SASL_PLAINTEXT or SASL_SSL")
    return options


def _tls_options(cfg: KafkaConfig) -> dict[str, Any]:
    options: dict[str, Any] = {"ssl_check_hostname": cfg.ssl_check_hostname}
    for key in ("ssl_cafile", "ssl_certfile", "ssl_keyfile"):
        path = getattr(cfg, key)
        if path is None:
            continue
        if not os.path.isfile(path):
            raise KafkaConfigError(f"ingest.kafka.{key}: no such file: {path}")
        options[key] = path
    if bool(cfg.ssl_certfile) != bool(cfg.ssl_keyfile) and not _pem_has_key(cfg.ssl_certfile):
        raise KafkaConfigError("mutual TLS needs both ssl_certfile and ssl_keyfile (or a certfile holding the key too)")
    if cfg.ssl_password is not None:
        options["ssl_password"] = cfg.ssl_password.get_secret_value()
    return options


def _pem_has_key(path: str | None) -> bool:
    if not path:
        return False
    with open(path, "rb") as handle:
        return b"PRIVATE KEY-----" in handle.read()


def _sasl_options(cfg: KafkaConfig) -> dict[str, Any]:
    if not cfg.sasl_mechanism:
        raise KafkaConfigError(f"security_protocol {cfg.security_protocol} needs sasl_mechanism (PLAIN, SCRAM-SHA-256, SCRAM-SHA-512)")
    if not cfg.sasl_username or cfg.sasl_password is None:
        raise KafkaConfigError(f"sasl_mechanism {cfg.sasl_mechanism} needs sasl_username and sasl_password")
    return {
        "sasl_mechanism": cfg.sasl_mechanism,
        "sasl_plain_username": cfg.sasl_username,
        "sasl_plain_password": cfg.sasl_password.get_secret_value(),
    }


def librdkafka_options(cfg: KafkaConfig) -> dict[str, Any]:
    """The same settings in librdkafka's names (``client: confluent-kafka``), validated the same way."""
    checked = connection_options(cfg)
    options: dict[str, Any] = {
        "reconnect.backoff.max.ms": 5000,
        "bootstrap.servers": ",".join(cfg.bootstrap_servers),
        "client.id": cfg.client_id,
        "security.protocol": cfg.security_protocol.lower(),
    }
    renames = {"ssl_cafile": "ssl.ca.location", "ssl_certfile": "ssl.certificate.location", "ssl_keyfile": "ssl.key.location",
               "ssl_password": "ssl.key.password", "sasl_mechanism": "sasl.mechanism", "sasl_plain_username": "sasl.username",
               "sasl_plain_password": "sasl.password"}
    for ours, theirs in renames.items():
        if ours in checked:
            options[theirs] = checked[ours]
    if "ssl_check_hostname" in checked:
        options["ssl.endpoint.identification.algorithm"] = "https" if checked["ssl_check_hostname"] else "none"
    return options


class KafkaAuthenticationError(KafkaConfigError):
    """The brokers refused the configured SASL credentials: retrying the same ones cannot help."""


def authentication_error(cfg: KafkaConfig, timeout: float = 5.0) -> str | None:
    """The brokers' reason if they refuse the SASL credentials, else None (accepted, or unreachable: the
    daemon's broker wait handles that).

    kafka-python cannot tell: the broker answers a failed SASL exchange and closes the connection, and the
    client reports only "socket disconnected" and retries until its bootstrap times out, which looks like a
    broker outage. librdkafka (confluent-kafka, already a dependency) reads the broker's answer, so one
    short-lived admin client asks instead."""
    if cfg.security_protocol not in ("SASL_PLAINTEXT", "SASL_SSL"):
        return None
    from confluent_kafka import KafkaError, KafkaException
    from confluent_kafka.admin import AdminClient

    errors: list[Any] = []
    quiet = logging.getLogger("ingest.kafka.client.probe")  # librdkafka logs every failed attempt; the answer is enough
    quiet.propagate = False
    quiet.addHandler(logging.NullHandler())
    options: dict[str, Any] = {**librdkafka_options(cfg), "error_cb": errors.append, "logger": quiet}
    admin = AdminClient(options)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            admin.list_topics(timeout=min(1.0, max(0.1, deadline - time.monotonic())))
            return None
        except KafkaException:
            pass
        admin.poll(0)
        for error in errors:
            if error.code() == KafkaError._AUTHENTICATION:
                return str(error.str())
    return None


def ensure_topic(connection: dict[str, Any], name: str, *, partitions: int = -1, configs: dict[str, str] | None = None) -> bool:
    """Create a topic the daemon writes to if it is missing (partitions and replication: the broker's
    defaults unless given), so a cluster without topic auto-creation works. True if it was created; a
    refusal (no permission to create) is logged, not fatal: the topic may exist or be created by its owner."""
    from kafka import KafkaAdminClient
    from kafka.admin import NewTopic
    from kafka.errors import KafkaError, TopicAlreadyExistsError

    admin = KafkaAdminClient(**connection)
    try:
        admin.create_topics([NewTopic(name, partitions, -1, topic_configs=configs or {})])
        log.info("created topic %s", name)
        return True
    except TopicAlreadyExistsError:
        return False
    except KafkaError as exc:
        log.warning("could not create topic %s (%s: %s); assuming it exists or is auto-created", name, type(exc).__name__, exc)
        return False
    finally:
        admin.close()
