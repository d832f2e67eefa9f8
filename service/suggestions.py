"""Answering a host suggestion: from the read model now, or from the events `as_of` then."""

from __future__ import annotations

from events.errors import RotationError
from projections.point_in_time import suggest_as_of
from projections.rotation_view import RotationProjector
from service import contracts as c
from service.application import RotationsApplication


def answer_suggestion(
    app: RotationsApplication,
    projector: RotationProjector,
    request: c.SuggestHost,
    requested_at: float,
) -> c.SuggestionReply:
    """The suggestion as the rotation stands after every write stored before `requested_at`
    (a `time.monotonic()` value), or as it stood at `request.as_of`."""
    try:
        if request.as_of is not None:
            answer = suggest_as_of(app, request.rotation_id, request.as_of, request.exclude)
        else:
            # Reflect every command acknowledged before this request, including those
            # another instance stored: one indexed read when nothing is new, shared by
            # the requests that arrived before it started.
            projector.refresh(requested_at)
            app.refresh_caches()  # directory users another instance recorded
            answer = projector.suggest(request.rotation_id, request.exclude, app.ineligible_users)
    except RotationError as error:
        return c.SuggestionReply(
            rotation_id=request.rotation_id,
            error=c.ErrorBody(code=error.code, message=str(error)),
        )
    suggestion = answer.suggestion
    return c.SuggestionReply(
        rotation_id=request.rotation_id,
        host_id=suggestion.host_id,
        reason=suggestion.reason,
        candidates=[
            c.Candidate(
                user_id=s.user_id,
                meetings=s.meetings,
                last_assigned_at=s.last_assigned_at,
                available=s.available,
                joined_at=s.joined_at,
                eligible=s.eligible,
                why=s.why,
            )
            for s in suggestion.candidates
        ],
        position=answer.position,
    )
