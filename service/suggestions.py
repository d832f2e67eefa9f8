"""Answering a host suggestion: from the read model now, or from the events `as_of` then."""

from __future__ import annotations

from events.errors import RotationError
from events.ranking import Fairness, Standing, fairness
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
            answer = suggest_as_of(
                app,
                request.rotation_id,
                request.as_of,
                request.exclude,
                request.starts_at,
                request.preferred_host_id,
            )
        else:
            # Reflect every command acknowledged before this request, including those
            # another instance stored: one indexed read when nothing is new, shared by
            # the requests that arrived before it started.
            projector.refresh(requested_at)
            app.refresh_caches()  # directory users another instance recorded
            answer = projector.suggest(
                request.rotation_id,
                request.exclude,
                app.ineligible_users,
                at=app.clock(),
                starts_at=request.starts_at,
                preferred_host_id=request.preferred_host_id,
            )
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
        candidates=[candidate(s) for s in suggestion.candidates],
        position=answer.position,
        fairness=fairness_body(fairness(suggestion.candidates)),
    )


def candidate(standing: Standing) -> c.Candidate:
    return c.Candidate(
        user_id=standing.user_id,
        meetings=standing.meetings,
        last_assigned_at=standing.last_assigned_at,
        available=standing.available,
        joined_at=standing.joined_at,
        eligible=standing.eligible,
        why=standing.why,
        weight=standing.weight,
        priority=standing.priority,
        cap=None if standing.cap is None else c.Cap.model_validate(standing.cap),
        capped=standing.capped,
        credits=standing.credits,
        held=standing.held,
    )


def fairness_body(figures: Fairness) -> c.Fairness:
    """The exact figures as the wire carries them: the deviation as a JSON number (rounded
    to 6 places at this edge only; every decision compares exact fractions)."""
    return c.Fairness(
        meetings=figures.meetings,
        spread=figures.spread,
        deviation=round(float(figures.deviation), 6),
    )
