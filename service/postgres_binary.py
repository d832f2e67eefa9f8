"""Send stored events to PostgreSQL in binary, not as text.

eventsourcing inserts a transaction's events as one array of a composite type. Bound with
`%s`, psycopg dumps that array as text, escaping every field of every event with a regular
expression in Python: a tenth of a command's time. The same statement bound with `%b`
makes psycopg use the binary dumper that `register_composite` registers for the type.
"""

from __future__ import annotations

from typing import Any

from eventsourcing.postgres import PostgresAggregateRecorder
from psycopg.sql import SQL, Composable, Composed

TEXT_ARRAY = "unnest(%s::"
BINARY_ARRAY = "unnest(%b::"


def send_events_in_binary(recorder: Any) -> None:
    """Rebind the recorder's own insert statement with `%b` (if it has the form we know)."""
    if isinstance(recorder, PostgresAggregateRecorder):
        recorder.insert_events_statement = Composed([_binary(recorder.insert_events_statement)])


def _binary(statement: Composable) -> Composable:
    if isinstance(statement, Composed):
        return Composed([_binary(part) for part in statement])
    if isinstance(statement, SQL) and TEXT_ARRAY in statement.as_string():
        return SQL(statement.as_string().replace(TEXT_ARRAY, BINARY_ARRAY))
    return statement
