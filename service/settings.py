"""Configuration from the environment (pydantic-settings)."""

from __future__ import annotations

from typing import Literal

from platformdirs import user_data_path
from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

APP_NAME = "rotations"


def default_store_url() -> str:
    """A SQLite file in the user's data folder (`$XDG_DATA_HOME/rotations` on Linux), the same
    from every working directory: a relative default made a new, empty store per folder."""
    return f"sqlite:///{user_data_path(APP_NAME, appauthor=False) / 'rotations.sqlite'}"


class Settings(BaseSettings):
    """Everything the service reads from its environment, with embedded-friendly defaults."""

    model_config = SettingsConfigDict(env_prefix="", extra="ignore", populate_by_name=True)

    kafka_bootstrap_servers: str = Field("127.0.0.1:9092", alias="KAFKA_BOOTSTRAP_SERVERS")
    topic_prefix: str = Field("rotations.", alias="ROTATIONS_TOPIC_PREFIX")
    store: str = Field(default_factory=default_store_url, alias="ROTATIONS_STORE")
    group_id: str = Field("rotations-service", alias="ROTATIONS_GROUP_ID")
    partitions: int = Field(6, alias="ROTATIONS_PARTITIONS", ge=1)
    # Tansu holds a waiting fetch for the full wait even when data arrives, so request
    # latency is about this value; Apache Kafka answers as soon as data is there.
    fetch_max_wait_ms: int = Field(10, alias="ROTATIONS_FETCH_MAX_WAIT_MS", ge=0)
    projection_poll_seconds: float = Field(0.2, alias="ROTATIONS_PROJECTION_POLL_SECONDS")
    conflict_retries: int = Field(5, alias="ROTATIONS_CONFLICT_RETRIES", ge=0)
    directory: Literal["required", "open"] = Field("required", alias="ROTATIONS_DIRECTORY")
    suggest_workers: int = Field(16, alias="ROTATIONS_SUGGEST_WORKERS", ge=1)
    max_batch: int = Field(500, alias="ROTATIONS_MAX_BATCH", ge=1)
    linger_ms: int = Field(0, alias="ROTATIONS_LINGER_MS", ge=0)
    reply_timeout_seconds: float = Field(10.0, alias="ROTATIONS_REPLY_TIMEOUT_SECONDS")
    max_attempts: int = Field(5, alias="ROTATIONS_MAX_ATTEMPTS", ge=1)
    dead_letter_max_original_bytes: int = Field(
        512_000, alias="ROTATIONS_DEAD_LETTER_MAX_ORIGINAL_BYTES", ge=0
    )
    max_message_bytes: int = Field(1_000_000, alias="ROTATIONS_MAX_MESSAGE_BYTES")
    # Health, metrics and the AsyncAPI document over HTTP; 0 turns the HTTP server off.
    http_port: int = Field(8080, alias="ROTATIONS_HTTP_PORT", ge=0, le=65535)
    # This machine only by default; a container sets 0.0.0.0 so its published port answers.
    http_host: str = Field("127.0.0.1", alias="ROTATIONS_HTTP_HOST", min_length=1)
    # The fairness gauge's label set: at most this many rotations, the most recently
    # answered (`service.http.FairnessGauge`); 0 turns the gauge off.
    fairness_gauge_rotations: int = Field(100, alias="ROTATIONS_FAIRNESS_GAUGE_ROTATIONS", ge=0)

    # -- Kafka security: the names other Kafka tools use (every client of the project) ----
    kafka_security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = Field(
        "PLAINTEXT", alias="KAFKA_SECURITY_PROTOCOL"
    )
    kafka_sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512", "OAUTHBEARER"] = Field(
        "PLAIN", alias="KAFKA_SASL_MECHANISM"
    )
    kafka_sasl_username: str | None = Field(None, alias="KAFKA_SASL_USERNAME")
    kafka_sasl_password: str | None = Field(None, alias="KAFKA_SASL_PASSWORD", repr=False)
    # A secret mounted by an orchestrator: read when KAFKA_SASL_PASSWORD is not set.
    kafka_sasl_password_file: str | None = Field(None, alias="KAFKA_SASL_PASSWORD_FILE")
    kafka_ssl_cafile: str | None = Field(None, alias="KAFKA_SSL_CAFILE")
    kafka_ssl_certfile: str | None = Field(None, alias="KAFKA_SSL_CERTFILE")
    kafka_ssl_keyfile: str | None = Field(None, alias="KAFKA_SSL_KEYFILE")

    # -- signed actors: the actor of a command is the `sub` of its bearer token ----------
    actor_tokens: Literal["off", "required"] = Field("off", alias="ROTATIONS_ACTOR_TOKENS")
    actor_keys: str | None = Field(None, alias="ROTATIONS_ACTOR_KEYS")  # a PEM or JWKS file
    actor_issuer: str | None = Field(None, alias="ROTATIONS_ACTOR_ISSUER")
    actor_audience: str | None = Field(None, alias="ROTATIONS_ACTOR_AUDIENCE")
    # At most five minutes: a larger leeway would all but turn expiry off.
    actor_clock_skew_seconds: float = Field(
        30.0, alias="ROTATIONS_ACTOR_CLOCK_SKEW_SECONDS", ge=0, le=300, allow_inf_nan=False
    )

    # -- events encrypted at rest (the eventsourcing library's AES-GCM cipher) -----------
    cipher_key: str | None = Field(None, alias="ROTATIONS_CIPHER_KEY", repr=False)
    cipher_key_file: str | None = Field(None, alias="ROTATIONS_CIPHER_KEY_FILE")

    # -- tracing (OpenTelemetry over OTLP/HTTP): off unless an endpoint is set -----------
    otel_endpoint: str | None = Field(None, alias="OTEL_EXPORTER_OTLP_ENDPOINT")
    otel_service_name: str = Field("rotations", alias="OTEL_SERVICE_NAME")

    def topic(self, name: str) -> str:
        return f"{self.topic_prefix}{name}"

    @property
    def commands_topic(self) -> str:
        return self.topic("commands")

    @property
    def suggest_topic(self) -> str:
        return self.topic("suggest-host")

    @property
    def events_topic(self) -> str:
        return self.topic("events")

    @property
    def directory_topic(self) -> str:
        return self.topic("directory")

    @property
    def dead_letter_topic(self) -> str:
        return self.topic("dead-letter")

    def all_topics(self) -> list[str]:
        return [
            self.commands_topic,
            self.suggest_topic,
            self.events_topic,
            self.directory_topic,
            self.dead_letter_topic,
        ]
