"""Global positions of stored events, looked up by aggregate id and version.

The library returns positions when it saves; a retried command needs them again later.
The lookup is a primary-key range scan on the library's own events table.
"""

from __future__ import annotations

from uuid import UUID

from eventsourcing.persistence import ApplicationRecorder
from eventsourcing.postgres import PostgresRecorder


def positions_of(
    recorder: ApplicationRecorder, originator_id: UUID, first: int, last: int
) -> list[int]:
    """Notification ids of versions first..last of one aggregate, in version order."""
    if first > last:
        return []
    table = recorder.events_table_name  # type: ignore[attr-defined]
    datastore = recorder.datastore  # type: ignore[attr-defined]
    if isinstance(recorder, PostgresRecorder):
        from psycopg.sql import SQL, Identifier

        statement = SQL(
            "SELECT notification_id FROM {0}.{1} WHERE originator_id = %s "
            "AND originator_version BETWEEN %s AND %s ORDER BY originator_version"
        ).format(Identifier(datastore.schema), Identifier(table))
        with datastore.transaction(commit=False) as cursor:
            cursor.execute(statement, (originator_id, first, last))
            return [int(row["notification_id"]) for row in cursor.fetchall()]
    with datastore.transaction(commit=False) as cursor:
        cursor.execute(
            f"SELECT rowid FROM {table} WHERE originator_id = ? "
            "AND originator_version BETWEEN ? AND ? ORDER BY originator_version",
            (originator_id.hex, first, last),
        )
        return [int(row[0]) for row in cursor.fetchall()]
