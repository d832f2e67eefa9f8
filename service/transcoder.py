"""The library's JSON transcoder, encoding with orjson: same stored format, a third the time.

Encoding events was the largest single cost of a command (a booking's decision record holds
two datetimes per candidate). The bytes are what `JSONTranscoder` writes (compact JSON,
custom types as `{"_type_": name, "_data_": value}`), so stored events stay readable by the
library alone, and decoding is the library's own.

orjson writes UUIDs natively, as plain strings that would decode as `str`. The library puts
UUIDs only at the top level of a state (a snapshot's `_id`), so those are tagged first; the
domain keeps every other id as a string. A UUID nested deeper would come back as a string:
`tests/unit/test_transcoder.py` holds the domain's events to that.
"""

from __future__ import annotations

import functools
from datetime import datetime
from typing import Any
from uuid import UUID

import orjson
from eventsourcing.persistence import JSONTranscoder

_OPTIONS = orjson.OPT_PASSTHROUGH_DATETIME | orjson.OPT_NON_STR_KEYS


class OrjsonTranscoder(JSONTranscoder):
    """`JSONTranscoder` whose encoder is orjson (falls back to the library's on anything odd)."""

    def encode(self, obj: Any) -> bytes:
        if isinstance(obj, dict):
            obj = {
                key: self._encode_obj(value) if type(value) is UUID else value
                for key, value in obj.items()
            }
        try:
            return orjson.dumps(obj, default=self._encode_custom, option=_OPTIONS)
        except (orjson.JSONEncodeError, TypeError):
            return super().encode(obj)

    def _encode_custom(self, obj: Any) -> Any:
        if type(obj) is datetime:
            return _tagged_datetime(self.types[datetime].name, obj, obj.tzinfo, obj.fold)
        return self._encode_obj(obj)


@functools.lru_cache(maxsize=65_536)
def _tagged_datetime(name: str, value: datetime, tzinfo: Any, fold: int) -> dict[str, str]:
    """What the library's transcoding makes of a datetime, kept: a booking's decision record
    repeats each candidate's join and last-assignment times, booking after booking.

    Equal datetimes in other time zones (or folds) print differently, so those are part of
    the key; the dict is only read (by orjson).
    """
    return {"_type_": name, "_data_": value.isoformat()}
