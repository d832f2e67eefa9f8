"""Events encrypted at rest: the eventsourcing library's AES-GCM cipher, and the check at start
that the store and the configured key agree.

The key is the library's own (`AESCipher.create_key(32)`: 16, 24 or 32 random bytes in
base64), from ROTATIONS_CIPHER_KEY or else the file ROTATIONS_CIPHER_KEY_FILE names (read at
start, stripped). With a key, the library's `Mapper` encrypts each event's and snapshot's state
after transcoding (`eventsourcing.cryptography.AESCipher`, on the `cryptography` package);
everything stored through `app.mapper` is encrypted, the read model's view rows included.

The check: the first and the last stored events (two one-row reads) are decoded with the
configured mapper. A store written with another key, or in clear while a key is set, or
encrypted while none is, fails at start with one line instead of at the first read of an
old event. An empty store takes whatever the first writer uses.
"""

from __future__ import annotations

import binascii
from base64 import b64decode
from pathlib import Path
from typing import TYPE_CHECKING

from eventsourcing.persistence import MapperDeserialisationError

from service.store import CIPHER_KEYS, CIPHER_TOPICS

if TYPE_CHECKING:
    from service.application import RotationsApplication
    from service.settings import Settings

AES_CIPHER_TOPIC = "eventsourcing.cryptography:AESCipher"
"""The library's AES-GCM cipher on `cryptography` (its default topic needs pycryptodome)."""

SET_KEY = "ROTATIONS_CIPHER_KEY or ROTATIONS_CIPHER_KEY_FILE"


class CipherMismatch(RuntimeError):
    """The key configured and the store disagree, or the key cannot be used: one line."""


def configured_key(settings: Settings) -> str | None:
    """ROTATIONS_CIPHER_KEY, else the contents of ROTATIONS_CIPHER_KEY_FILE; None: no key."""
    if settings.cipher_key and settings.cipher_key.strip():
        return settings.cipher_key.strip()
    if not settings.cipher_key_file:
        return None
    try:
        key = Path(settings.cipher_key_file).read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError) as error:
        reason = error.strerror if isinstance(error, OSError) and error.strerror else error
        raise CipherMismatch(
            f"cannot read the cipher key file {settings.cipher_key_file!r} "
            f"(ROTATIONS_CIPHER_KEY_FILE): {reason}"
        ) from error
    if not key:
        raise CipherMismatch(
            f"the cipher key file {settings.cipher_key_file!r} (ROTATIONS_CIPHER_KEY_FILE) is empty"
        )
    return key


def cipher_environment(settings: Settings) -> dict[str, str]:
    """The library's cipher settings for the configured key (overriding whatever the process
    environment holds under the library's names); with no key, the cipher explicitly off."""
    key = configured_key(settings)
    if key is None:
        return {name: "" for name in (*CIPHER_KEYS, *CIPHER_TOPICS)}
    try:
        size = len(b64decode(key, validate=True))
    except (binascii.Error, ValueError):
        size = -1
    if size not in (16, 24, 32):
        raise CipherMismatch(
            f"the cipher key ({SET_KEY}) is not a base64 AES key of 16, 24 or 32 bytes; make one "
            'with: python -c "from eventsourcing.cryptography import AESCipher; '
            'print(AESCipher.create_key(32))"'
        )
    return {
        **{name: key for name in CIPHER_KEYS},
        **{name: AES_CIPHER_TOPIC for name in CIPHER_TOPICS},
    }


def check_store_cipher(app: RotationsApplication, store: str) -> None:
    """Decode the first and the last stored events; `CipherMismatch` when they cannot be."""
    last = app.recorder.max_notification_id()
    if not last:
        return
    first = app.recorder.select_notifications(start=1, limit=1)
    newest = app.recorder.select_notifications(start=last, limit=1)
    for notification in (*first, *newest):
        try:
            app.mapper.to_domain_event(notification)
        except MapperDeserialisationError:
            raise CipherMismatch(_mismatch(app, store, notification.state)) from None


def _mismatch(app: RotationsApplication, store: str, state: bytes) -> str:
    if app.mapper.cipher is None:
        return f"the event store {store} holds encrypted events: set {SET_KEY} to its key"
    if _is_clear(app, state):
        return (
            f"the event store {store} holds events written in clear, but a cipher key is set "
            f"({SET_KEY}): unset it for this store (an existing store is not encrypted "
            "after the fact)"
        )
    return f"the cipher key ({SET_KEY}) does not decrypt the events of {store}: a different key?"


def _is_clear(app: RotationsApplication, state: bytes) -> bool:
    try:
        app.mapper.transcoder.decode(state)
    except Exception:
        return False
    return True
