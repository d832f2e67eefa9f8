"""Teams, eligibility and permissions from the user directory, through Kafka (required mode)."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio

from service.client import RotationsClient
from tests.integration.helpers import command
from tests.integration.service_process import ServiceProcess

pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="session")]

MANAGER = ["manage_rotations"]


@pytest.fixture(scope="session")
def directory_service(
    bootstrap_servers: str, store_url: str, data_dir: Path
) -> Iterator[ServiceProcess]:
    process = ServiceProcess(bootstrap_servers, store_url, data_dir, directory="required")
    process.start()
    yield process
    process.stop()
    process.check_shutdown_log()


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def dclient(directory_service: ServiceProcess) -> AsyncIterator[RotationsClient]:
    async with RotationsClient(directory_service.settings, timeout=30) as rotations:
        await directory_service.wait_ready(rotations)
        yield rotations


async def user(
    client: RotationsClient,
    user_id: str,
    *,
    seat: bool = True,
    calendar: bool = True,
    sync: bool = True,
    permissions: list[str] | None = None,
) -> dict[str, Any]:
    return await client.directory(
        {
            "type": "UserUpdated",
            "message_id": uuid.uuid4().hex,
            "user_id": user_id,
            "name": user_id.title(),
            "seat": seat,
            "calendar_connected": calendar,
            "calendar_sync": sync,
            "permissions": permissions or [],
        }
    )


async def team(client: RotationsClient, team_id: str, members: list[str]) -> dict[str, Any]:
    return await client.directory(
        {
            "type": "TeamUpdated",
            "message_id": uuid.uuid4().hex,
            "team_id": team_id,
            "name": team_id,
            "members": members,
        }
    )


async def act(
    client: RotationsClient, actor: str, kind: str, rotation: str, **fields: Any
) -> dict[str, Any]:
    return await client.command({**command(kind, rotation, **fields), "actor": actor})


async def booking(
    client: RotationsClient, actor: str, rotation: str, host: str | None = None
) -> dict[str, Any]:
    fields: dict[str, Any] = {"meeting_id": uuid.uuid4().hex, "record": {"type": "deal", "id": "1"}}
    if host:
        fields["host_id"] = host
    return await act(client, actor, "BookMeeting", rotation, **fields)


async def test_permissions(dclient: RotationsClient, uid: str) -> None:
    boss, rep, seatless = f"boss-{uid}", f"rep-{uid}", f"seatless-{uid}"
    await user(dclient, boss, permissions=MANAGER)
    await user(dclient, rep)
    await user(dclient, seatless, seat=False, permissions=["schedule_for_others"])
    rotation = f"perm-{uid}"

    stranger = await act(dclient, f"nobody-{uid}", "CreateRotation", rotation, name="S")
    assert stranger["error"]["code"] == "forbidden"
    denied = await act(dclient, rep, "CreateRotation", rotation, name="S", members=[rep])
    assert denied["error"]["code"] == "forbidden"
    assert "manage_rotations" in denied["error"]["message"]
    created = await act(dclient, boss, "CreateRotation", rotation, name="S", members=[rep, boss])
    assert created["status"] == "accepted"

    assert (await booking(dclient, rep, rotation, host=rep))["status"] == "accepted"
    for_other = await booking(dclient, rep, rotation, host=boss)
    assert for_other["error"]["code"] == "forbidden"
    no_seat = await booking(dclient, seatless, rotation, host=boss)
    assert no_seat["error"]["code"] == "forbidden"
    await user(dclient, rep, permissions=["schedule_for_others"])
    assert (await booking(dclient, rep, rotation, host=boss))["host_id"] == boss
    assert (await booking(dclient, rep, rotation))["status"] == "accepted"  # auto-assign


async def test_eligibility_and_as_of(dclient: RotationsClient, uid: str) -> None:
    boss, kari, ola, liv = (f"{n}-{uid}" for n in ("boss", "kari", "ola", "liv"))
    await user(dclient, boss, permissions=[*MANAGER, "schedule_for_others"])
    await user(dclient, kari)
    await user(dclient, ola)
    await user(dclient, liv, calendar=False)
    rotation = f"elig-{uid}"
    await act(dclient, boss, "CreateRotation", rotation, name="S", members=[kari, ola])
    refused = await act(dclient, boss, "AddMember", rotation, user_id=liv)
    assert refused["error"]["code"] == "ineligible_member"
    unknown = await act(dclient, boss, "AddMember", rotation, user_id=f"ghost-{uid}")
    assert unknown["error"]["code"] == "ineligible_member"

    before = await dclient.suggest(rotation)
    assert before["host_id"] == kari
    moment = datetime.now(UTC).isoformat()
    await user(dclient, kari, calendar=False)  # kari disconnects her calendar

    after = await dclient.suggest(rotation)
    assert after["host_id"] == ola
    kari_now = next(c for c in after["candidates"] if c["user_id"] == kari)
    assert (kari_now["eligible"], kari_now["why"]) == (False, "no_calendar")
    for _ in range(3):
        assert (await booking(dclient, boss, rotation))["host_id"] == ola
    override = await booking(dclient, boss, rotation, host=kari)
    assert override["error"]["code"] == "ineligible_member"

    then = await dclient.suggest(rotation, as_of=moment)
    assert then["host_id"] == kari
    assert all(c["eligible"] for c in then["candidates"])
    await dclient.directory(
        {"type": "UserDeactivated", "message_id": uuid.uuid4().hex, "user_id": ola}
    )
    gone = await dclient.suggest(rotation)
    assert gone["host_id"] is None
    assert {c["why"] for c in gone["candidates"]} == {"no_calendar", "deactivated"}


async def test_team_membership_flows_into_rotations(dclient: RotationsClient, uid: str) -> None:
    boss, a, b, c = (f"{n}-{uid}" for n in ("boss", "a", "b", "c"))
    for name in (a, b, c):
        await user(dclient, name)
    await user(dclient, boss, permissions=MANAGER)
    sales, emea = f"sales-{uid}", f"emea-{uid}"
    await team(dclient, sales, [a, b])
    await team(dclient, emea, [b])
    rotation = f"teams-{uid}"
    created = await act(dclient, boss, "CreateRotation", rotation, name="T", teams=[sales])
    assert created["status"] == "accepted"
    assert {x["user_id"] for x in (await dclient.suggest(rotation))["candidates"]} == {a, b}
    assert (await act(dclient, boss, "AddTeam", rotation, team_id=emea))["status"] == "accepted"
    await booking(dclient, boss, rotation)
    await booking(dclient, boss, rotation)

    joined = await team(dclient, sales, [a, b, c])  # c joins sales: joins the rotation, reset
    assert "TeamMembersChanged" in [e["type"] for e in joined["events"]]
    counts = {x["user_id"]: x["meetings"] for x in (await dclient.suggest(rotation))["candidates"]}
    assert counts == {a: 0, b: 0, c: 0}

    await team(dclient, sales, [c])  # a leaves; b stays through emea
    members = {x["user_id"] for x in (await dclient.suggest(rotation))["candidates"]}
    assert members == {b, c}
    removed = await act(dclient, boss, "RemoveTeam", rotation, team_id=emea)
    assert removed["status"] == "accepted"
    assert {x["user_id"] for x in (await dclient.suggest(rotation))["candidates"]} == {c}


async def test_team_change_racing_with_bookings(dclient: RotationsClient, uid: str) -> None:
    boss = f"boss-{uid}"
    people = [f"p{i}-{uid}" for i in range(6)]
    for name in [boss, *people]:
        await user(dclient, name, permissions=MANAGER if name == boss else None)
    squad = f"squad-{uid}"
    await team(dclient, squad, people[:3])
    rotation = f"race-{uid}"
    await act(dclient, boss, "CreateRotation", rotation, name="R", teams=[squad])

    bookings = [
        await dclient.send_raw(
            dclient.settings.commands_topic,
            json.dumps(
                {
                    **command(
                        "BookMeeting",
                        rotation,
                        meeting_id=f"m{i}",
                        record={"type": "deal", "id": "1"},
                    ),
                    "actor": boss,
                }
            ).encode(),
            key=rotation,
        )
        for i in range(40)
    ]
    changes = [team(dclient, squad, people[: 3 + i]) for i in range(1, 4)]
    results = await asyncio.gather(*changes)
    replies = [json.loads(r) for r in await asyncio.wait_for(asyncio.gather(*bookings), 60)]
    assert all(r["status"] == "accepted" for r in results)
    assert all(r["status"] == "accepted" for r in replies)
    answer = await dclient.suggest(rotation)
    assert {x["user_id"] for x in answer["candidates"]} == set(people)
    assert all(r["host_id"] in people for r in replies)


async def test_directory_facts_are_idempotent(dclient: RotationsClient, uid: str) -> None:
    fact = {
        "type": "UserUpdated",
        "message_id": f"msg-{uid}",
        "user_id": f"u-{uid}",
        "name": "U",
        "seat": True,
        "calendar_connected": True,
        "calendar_sync": True,
        "permissions": [],
    }
    first = await dclient.directory(fact)
    again = await dclient.directory(fact)
    assert first["status"] == "accepted"
    assert again == first
    bad = await dclient.directory({"type": "UserUpdated", "message_id": "m"})
    assert bad["error"]["code"] == "invalid_message"


async def test_a_rejected_create_stores_nothing_and_the_corrected_one_is_new(
    dclient: RotationsClient, uid: str
) -> None:
    """A CreateRotation naming one known and one unknown team: rejected, and nothing of it
    (rotation, team link) is stored, so the corrected command creates the rotation."""
    boss, kari = f"boss-{uid}", f"kari-{uid}"
    await user(dclient, boss, permissions=MANAGER)
    await user(dclient, kari)
    await team(dclient, f"known-{uid}", [kari])
    rotation = f"rejected-{uid}"

    teams = [f"known-{uid}", f"unknown-{uid}"]
    rejected = await act(dclient, boss, "CreateRotation", rotation, name="R", teams=teams)
    assert rejected["error"]["code"] == "unknown_member"
    assert (await dclient.suggest(rotation))["error"]["code"] == "unknown_rotation"

    corrected = await act(
        dclient, boss, "CreateRotation", rotation, name="R", teams=[f"known-{uid}"]
    )
    assert corrected["status"] == "accepted", corrected
    assert [e["type"] for e in corrected["events"]] == ["Created", "TeamAdded"]
    assert (await dclient.suggest(rotation))["host_id"] == kari
    # The team link exists once, for the accepted create: a team change reaches it.
    await user(dclient, f"liv-{uid}")
    await team(dclient, f"known-{uid}", [kari, f"liv-{uid}"])
    members = {c["user_id"] for c in (await dclient.suggest(rotation))["candidates"]}
    assert members == {kari, f"liv-{uid}"}
