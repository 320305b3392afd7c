"""Show runs and share links: who may call the show, impossible transitions, the show clock, a DBA
driving a run from psql; share links that are unguessable, hashed, expiring, revocable and
rate-limited, with their read-only feed."""

from __future__ import annotations

import asyncio
import hashlib
import threading
import time
import uuid
from typing import Any

import httpx
import psycopg
import pytest

from api.app import create_app
from api.settings import Settings
from tests.callmaster_live_support import follow, live_stage
from tests.conftest import live_server
from tests.factories import Bearer, assert_problem, one


@pytest.fixture
def settings_overrides() -> dict[str, Any]:
    return {"live_check_interval": 0.3, "live_linger": 0.5, "share_link_rate_limit": 1000}


@pytest.fixture
def stage(dba: psycopg.Connection[Any]) -> dict[str, Any]:
    return live_stage(dba)


async def command(
    client: httpx.AsyncClient, auth: dict[str, str], script: str, name: str, **body: Any
) -> httpx.Response:
    return await client.post(
        f"/api/scripts/{script}/live/commands", json={"command": name, **body}, headers=auth
    )


def run_row(dba: psycopg.Connection[Any], script: str) -> tuple[Any, ...]:
    row = dba.execute(
        "SELECT status, go_count, hold_count, current_element_id::text, standby_element_id::text"
        " FROM callmaster.show_runs WHERE script_id = %s ORDER BY created_at DESC LIMIT 1",
        (script,),
    ).fetchone()
    assert row is not None
    return tuple(row)


async def test_who_may_call_the_show(
    client: httpx.AsyncClient, dba: psycopg.Connection[Any], bearer: Bearer, stage: dict[str, Any]
) -> None:
    script, cues = stage["script"], stage["cues"]
    before = one(dba, "SELECT position FROM callmaster.live_feed_heads WHERE script_id = %s", (script,))
    problem = assert_problem(await command(client, bearer("lx_op"), script, "go"), 403)
    assert problem["code"] == "42501"
    assert_problem(await command(client, bearer("stranger_s"), script, "go"), 404)
    assert (await command(client, {}, script, "go")).status_code == 401
    assert one(dba, "SELECT count(*) FROM callmaster.show_runs") == 0
    assert (
        one(dba, "SELECT position FROM callmaster.live_feed_heads WHERE script_id = %s", (script,)) == before
    )

    r = await command(client, bearer("caller_c"), script, "standby")  # show_role "Stage Manager"
    assert r.status_code == 200, r.text
    assert r.json()["run"]["status"] == "standby" and r.json()["run"]["standby_element_id"] == cues[0]
    r = await command(client, bearer("user_a"), script, "go")
    assert r.status_code == 200, r.text
    assert run_row(dba, script) == ("running", 1, 0, cues[0], None)


async def test_transitions_and_the_show_clock(
    client: httpx.AsyncClient, dba: psycopg.Connection[Any], bearer: Bearer, stage: dict[str, Any]
) -> None:
    auth, script, cues = bearer("user_a"), stage["script"], stage["cues"]
    for name in ("hold", "resume", "stop"):  # no run yet
        assert assert_problem(await command(client, auth, script, name), 409)["code"] == "55000"
    r = await command(client, auth, script, "go", element_id=cues[2])
    assert r.json()["run"]["current_element_id"] == cues[2] and r.json()["run"]["next_element_id"] == cues[3]
    assert_problem(await command(client, auth, script, "resume"), 409)  # not holding
    r = await command(client, auth, script, "hold")
    assert r.json()["run"]["status"] == "holding"
    assert_problem(await command(client, auth, script, "hold"), 409)
    assert_problem(await command(client, auth, script, "go"), 409)  # resume first
    r = await command(client, auth, script, "standby")  # a standby during a hold is fine
    assert r.json()["run"]["standby_element_id"] == cues[3]
    await asyncio.sleep(0.3)
    r = await command(client, auth, script, "resume")
    run = r.json()["run"]
    assert run["status"] == "running" and run["held_ms"] >= 250 and run["hold_count"] == 1
    r = await command(client, auth, script, "go")  # the cue in standby
    assert r.json()["run"]["current_element_id"] == cues[3] and r.json()["run"]["next_element_id"] is None
    assert_problem(await command(client, auth, script, "go"), 409)  # no cue left
    r = await command(client, auth, script, "stop")
    stopped = r.json()["run"]
    assert stopped["status"] == "stopped" and stopped["clock_ms"] >= 0 and stopped["go_count"] == 2
    assert_problem(await command(client, auth, script, "stop"), 409)
    r = await command(client, auth, script, "go")  # a new performance
    assert r.json()["run"]["id"] != stopped["id"] and r.json()["run"]["current_element_id"] == cues[0]
    assert one(dba, "SELECT count(*) FROM callmaster.show_runs WHERE script_id = %s", (script,)) == 2


async def test_bad_commands(
    client: httpx.AsyncClient, dba: psycopg.Connection[Any], bearer: Bearer, stage: dict[str, Any]
) -> None:
    auth, script = bearer("user_a"), stage["script"]
    note = one(
        dba,
        "INSERT INTO callmaster.script_elements (script_id, element_type) VALUES (%s, 'note') RETURNING id::text",
        (script,),
    )
    other = one(
        dba,
        "INSERT INTO callmaster.script_elements (script_id, element_type) VALUES (%s, 'cue') RETURNING id::text",
        (stage["other_script"],),
    )
    assert assert_problem(await command(client, auth, script, "go", element_id=note), 422)["code"] == "22023"
    assert_problem(await command(client, auth, script, "standby", element_id=other), 422)
    assert_problem(await command(client, auth, script, "hold", element_id=stage["cues"][0]), 422)
    assert_problem(await command(client, auth, script, "blackout"), (400, 422))
    assert_problem(await command(client, auth, script, "go", element_id="nope"), (400, 422))
    r = await client.post(
        f"/api/scripts/{script}/live/commands", json={"command": "go", "x": 1}, headers=auth
    )
    assert_problem(r, (400, 422))
    assert one(dba, "SELECT count(*) FROM callmaster.show_runs") == 0


def test_a_dba_drives_a_run_from_psql(dba: psycopg.Connection[Any], stage: dict[str, Any]) -> None:
    script, cues = stage["script"], stage["cues"]
    state = one(dba, "SELECT callmaster.live_go(%s)", (script,))
    assert state["run"]["current_element_id"] == cues[0]
    one(dba, "SELECT callmaster.live_hold(%s)", (script,))
    with pytest.raises(psycopg.errors.ObjectNotInPrerequisiteState):
        dba.execute("SELECT callmaster.live_go(%s)", (script,))
    one(dba, "SELECT callmaster.live_resume(%s)", (script,))
    assert one(dba, "SELECT callmaster.live_open(%s, 0)", (script,))["events"][-1]["command"] == "resume"
    assert run_row(dba, script)[:3] == ("running", 1, 1)


def test_deleting_the_current_cue_keeps_the_run_in_its_place(
    dba: psycopg.Connection[Any], stage: dict[str, Any]
) -> None:
    """The current cue deleted mid-show (a cut in rehearsal): the run stands after the cue before it, so
    the next GO is the cue after the deleted one, not the first cue of the script."""
    script, cues = stage["script"], stage["cues"]
    for _ in range(3):
        one(dba, "SELECT callmaster.live_go(%s)", (script,))
    one(dba, "SELECT callmaster.live_standby(%s, %s)", (script, cues[3]))
    assert run_row(dba, script)[3:] == (cues[2], cues[3])
    dba.execute("DELETE FROM callmaster.script_elements WHERE id = %s", (cues[2],))
    state = one(dba, "SELECT callmaster.live_state(%s)", (script,))["run"]
    assert (state["current_element_id"], state["standby_element_id"], state["next_element_id"]) == (
        cues[1], cues[3], cues[3]
    )
    dba.execute("DELETE FROM callmaster.script_elements WHERE id = %s", (cues[3],))  # the standby goes
    assert run_row(dba, script)[3:] == (cues[1], None)
    dba.execute("DELETE FROM callmaster.script_elements WHERE id = ANY (%s::uuid[])", (cues[:2],))
    assert run_row(dba, script)[:4] == ("running", 3, 0, None)  # no cue before: the top of the script
    one(dba, "SELECT callmaster.live_stop(%s)", (script,))
    q5 = str(one(dba, "INSERT INTO callmaster.script_elements (script_id, element_type, cue_id, sequence)"
                      " VALUES (%s, 'cue', 'Q5', 50) RETURNING id", (script,)))  # fmt: skip
    one(dba, "SELECT callmaster.live_go(%s, %s)", (script, q5))
    one(dba, "SELECT callmaster.live_stop(%s)", (script,))
    dba.execute("DELETE FROM callmaster.script_elements WHERE id = %s", (q5,))  # a stopped run forgets it
    assert run_row(dba, script)[:4] == ("stopped", 1, 0, None)


def test_a_command_racing_the_delete_of_its_cue_does_not_deadlock(
    db_url: str, dba: psycopg.Connection[Any], stage: dict[str, Any]
) -> None:
    """A command locks the script's feed head, then the run; an element delete used to lock the run (the
    foreign key's SET NULL) before the head: deleting the current cue while a GO was under way deadlocked."""
    script, cues = stage["script"], stage["cues"]
    one(dba, "SELECT callmaster.live_go(%s)", (script,))
    errors: list[BaseException] = []
    with psycopg.connect(db_url) as command, psycopg.connect(db_url, autocommit=True) as editor:
        command.execute("SELECT callmaster.live_caller_script(%s)", (script,))  # a GO's first step: the head

        def delete() -> None:
            try:
                editor.execute("DELETE FROM callmaster.script_elements WHERE id = %s", (cues[0],))
            except BaseException as exc:  # noqa: BLE001 - reported by the main thread
                errors.append(exc)

        deleting = threading.Thread(target=delete)
        deleting.start()
        time.sleep(0.3)  # the delete waits for the head
        command.execute("SELECT * FROM callmaster.live_open_run(%s)", (script,))  # its next step: the run
        command.commit()
        deleting.join(timeout=30)
    assert errors == []
    assert run_row(dba, script)[3] is None
    assert one(dba, "SELECT count(*) FROM callmaster.script_elements WHERE id = %s", (cues[0],)) == 0


RAW_RUN_WRITES = (
    (
        "INSERT INTO callmaster.show_runs (script_id, owner_id, status)"
        " SELECT %(script)s, owner_id, 'standby' FROM callmaster.scripts WHERE id = %(script)s"
    ),
    "UPDATE callmaster.show_runs SET status = 'stopped', stopped_at = now() WHERE script_id = %(script)s",
    "UPDATE callmaster.show_runs SET current_element_id = %(cue)s WHERE script_id = %(script)s",
    "DELETE FROM callmaster.show_runs WHERE script_id = %(script)s",
)


HEAD = "SELECT position FROM callmaster.live_feed_heads WHERE script_id = %s"


def test_raw_sql_cannot_change_a_run_behind_the_feed(
    dba: psycopg.Connection[Any], stage: dict[str, Any]
) -> None:
    """Runs change only through the commands, which append the change to the feed: a DBA's raw INSERT,
    UPDATE or DELETE of an open run (which the crew's devices would never hear of) is refused with 42501.
    Cascades still work, and the run's invariants hold as constraints even for a write that gets past."""
    script, cues = stage["script"], stage["cues"]
    one(dba, "SELECT callmaster.live_go(%s)", (script,))
    before = (run_row(dba, script), one(dba, HEAD, (script,)))
    for statement in RAW_RUN_WRITES:
        with pytest.raises(psycopg.errors.InsufficientPrivilege) as refused:
            dba.execute(statement, {"script": script, "cue": cues[2]})
        assert "live_go" in (refused.value.diag.message_hint or "")
    assert (run_row(dba, script), one(dba, HEAD, (script,))) == before

    with dba.transaction():  # a DBA who forces the commands' own switch still cannot break the run
        dba.execute("SELECT set_config('callmaster.live_run_write', 'on', true)")
        for bad in (
            "UPDATE callmaster.show_runs SET status = 'standby' WHERE script_id = %s",
            "UPDATE callmaster.show_runs SET go_count = 0 WHERE script_id = %s",
            "UPDATE callmaster.show_runs SET status = 'holding', hold_started_at = now(), hold_count = 0"
            " WHERE script_id = %s",
            "UPDATE callmaster.show_runs SET started_at = NULL WHERE script_id = %s",
        ):
            with pytest.raises(psycopg.errors.CheckViolation), dba.transaction():
                dba.execute(bad, (script,))

    one(dba, "SELECT callmaster.live_stop(%s)", (script,))
    dba.execute("DELETE FROM callmaster.show_runs WHERE script_id = %s", (script,))  # a stopped run may go
    one(dba, "SELECT callmaster.live_standby(%s)", (script,))
    one(dba, "SELECT callmaster.live_go(%s)", (script,))
    assert run_row(dba, script)[:2] == ("running", 1)
    dba.execute("DELETE FROM callmaster.users WHERE id = %s", (stage["caller"],))  # called_by: SET NULL
    dba.execute("DELETE FROM callmaster.scripts WHERE id = %s", (script,))  # its open run goes with it
    assert one(dba, "SELECT count(*) FROM callmaster.show_runs WHERE script_id = %s", (script,)) == 0


def test_a_standby_run_has_not_started(dba: psycopg.Connection[Any], stage: dict[str, Any]) -> None:
    script = stage["script"]
    one(dba, "SELECT callmaster.live_standby(%s)", (script,))
    with dba.transaction():
        dba.execute("SELECT set_config('callmaster.live_run_write', 'on', true)")
        for bad, params in (
            ("UPDATE callmaster.show_runs SET go_count = 1 WHERE script_id = %s", (script,)),
            ("UPDATE callmaster.show_runs SET started_at = now() WHERE script_id = %s", (script,)),
            ("UPDATE callmaster.show_runs SET status = 'running' WHERE script_id = %s", (script,)),
            (
                "UPDATE callmaster.show_runs SET current_element_id = %s WHERE script_id = %s",
                (stage["cues"][0], script),
            ),
        ):
            with pytest.raises(psycopg.errors.CheckViolation), dba.transaction():
                dba.execute(bad, params)


NEXT_CUE = "SELECT callmaster.live_next_cue(%s, %s)::text"
ELEMENT_READS = (  # buffer reads of script_elements and its indexes in this transaction so far
    "SELECT sum(pg_stat_get_xact_blocks_fetched(c.oid))::int FROM pg_class AS c"
    " WHERE c.oid = 'callmaster.script_elements'::regclass"
    " OR c.oid IN (SELECT indexrelid FROM pg_index WHERE indrelid = 'callmaster.script_elements'::regclass)"
)


def test_the_next_cue_reads_the_script_once(dba: psycopg.Connection[Any], stage: dict[str, Any]) -> None:
    """live_next_cue runs three times a GO: order by (sequence, id), skip notes and inactive cues, and read
    the script once, not once per element (it did: 15 ms a call at 610 cues, most of a GO's latency)."""
    script, cues = stage["script"], stage["cues"]  # Q1..Q4 at sequence 10..40
    tie = str(one(dba, "INSERT INTO callmaster.script_elements (script_id, element_type, cue_id, sequence)"
                       " VALUES (%s, 'cue', 'Q2b', 20) RETURNING id", (script,)))  # fmt: skip
    dba.execute(
        "INSERT INTO callmaster.script_elements (script_id, element_type, sequence, is_active)"
        " VALUES (%s, 'note', 15, true), (%s, 'cue', 35, false)",
        (script, script),
    )
    after_q2 = sorted([cues[1], tie])
    assert one(dba, NEXT_CUE, (script, None)) == cues[0]
    assert one(dba, NEXT_CUE, (script, cues[0])) == after_q2[0]
    assert one(dba, NEXT_CUE, (script, after_q2[0])) == after_q2[1]
    assert one(dba, NEXT_CUE, (script, after_q2[1])) == cues[2]
    assert one(dba, NEXT_CUE, (script, cues[2])) == cues[3]  # the inactive cue at 35 is skipped
    assert one(dba, NEXT_CUE, (script, cues[3])) is None
    assert one(dba, NEXT_CUE, (script, str(uuid.uuid4()))) == cues[0]  # p_after gone: the first cue
    assert one(dba, NEXT_CUE, (stage["other_script"], cues[0])) is None  # another script's element

    dba.execute(
        "INSERT INTO callmaster.script_elements (script_id, element_type, cue_id, sequence)"
        " SELECT %s, 'cue', 'L' || g, 100 + g FROM generate_series(1, 2000) AS g",
        (script,),
    )
    with dba.transaction():
        before = one(dba, ELEMENT_READS)
        assert one(dba, NEXT_CUE, (script, cues[3])) is not None
        reads = one(dba, ELEMENT_READS) - before
    assert reads < 300, f"{reads} buffer reads for one next cue of a 2,000-cue script"


async def test_share_links(
    client: httpx.AsyncClient, dba: psycopg.Connection[Any], bearer: Bearer, stage: dict[str, Any]
) -> None:
    owner, show, script = bearer("user_a"), stage["show"], stage["script"]
    assert_problem(await client.post(f"/api/shows/{show}/share-links", json={}, headers=bearer("lx_op")), 403)
    assert_problem(
        await client.post(f"/api/shows/{show}/share-links", json={}, headers=bearer("stranger_s")), 404
    )
    assert_problem(
        await client.post(f"/api/shows/{show}/share-links", json={"expires_in_hours": 0}, headers=owner),
        (400, 422),
    )
    r = await client.post(f"/api/shows/{show}/share-links", json={"expires_in_hours": 2}, headers=owner)
    assert r.status_code == 201, r.text
    link = r.json()
    token = link["token"]
    assert link["url"].endswith(f"/api/shared/{token}") and len(token) == 46
    other = (await client.post(f"/api/shows/{show}/share-links", headers=owner)).json()
    assert other["token"] != token
    stored = dba.execute(
        "SELECT token_hash FROM callmaster.share_links WHERE id = %s", (link["id"],)
    ).fetchone()
    assert bytes(stored[0]) == hashlib.sha256(token.encode()).digest()  # only the hash is kept
    listed = (await client.get(f"/api/shows/{show}/share-links", headers=owner)).json()["items"]
    assert [x["id"] for x in listed] == [link["id"], other["id"]] and "token" not in str(listed)

    shared = (await client.get(f"/api/shared/{token}")).json()
    assert shared["show"]["id"] == show and {s["id"] for s in shared["scripts"]} == {
        script,
        stage["other_script"],
    }
    elements = (await client.get(f"/api/shared/{token}/scripts/{script}")).json()["elements"]
    assert [e["id"] for e in elements] == stage["cues"] and "created_by" not in elements[0]
    assert_problem(await client.get(f"/api/shared/{token[:-1]}x"), 404)
    assert_problem(await client.get("/api/shared/not-a-token"), 404)

    async with follow(client, f"/api/shared/{token}/scripts/{script}/live") as guest:
        assert (await guest.next()).event == "state"
        await command(client, owner, script, "go")
        event = await guest.next()
        assert (event.event, event.data["command"]) == ("command", "go")
        r = await client.get(f"/api/shared/{token}/scripts/{script}/live/presence")
        deadline = time.monotonic() + 5
        while r.json()["shared"] < 1 and time.monotonic() < deadline:
            await asyncio.sleep(0.1)
            r = await client.get(f"/api/shared/{token}/scripts/{script}/live/presence")
        assert r.json() == {"devices": 1, "owner": 0, "shared": 1, "by_department": []}
        assert (
            await client.post(f"/api/scripts/{script}/live/commands", json={"command": "hold"})
        ).status_code == 401
        r = await client.delete(f"/api/shows/{show}/share-links/{link['id']}", headers=owner)
        assert r.status_code == 204
        assert (await guest.next(timeout=5)).event == "revoked"
        await asyncio.wait_for(guest.ended.wait(), 5)
    assert_problem(await client.get(f"/api/shared/{token}"), 404)
    assert_problem(await client.get(f"/api/shared/{token}/scripts/{script}/live"), 404)
    assert (
        await client.delete(f"/api/shows/{show}/share-links/{link['id']}", headers=owner)
    ).status_code == 204
    assert_problem(await client.delete(f"/api/shows/{show}/share-links/{script}", headers=owner), 404)

    # Expired: 404, exactly like a link that never existed; a script of another show: 404.
    assert (await client.get(f"/api/shared/{other['token']}")).status_code == 200
    assert_problem(await client.get(f"/api/shared/{other['token']}/scripts/{stage['cues'][0]}/live"), 404)
    dba.execute(
        "UPDATE callmaster.share_links SET expires_at = now() - interval '1 second' WHERE id = %s",
        (other["id"],),
    )
    assert_problem(await client.get(f"/api/shared/{other['token']}"), 404)
    assert_problem(await client.get(f"/api/shared/{other['token']}/scripts/{script}"), 404)


async def clear_of_a_window_edge(margin: float = 5.0) -> None:
    """Limits count in fixed one-minute windows: start a burst in a window that lasts past it."""
    left = 60 - time.time() % 60
    if left < margin:
        await asyncio.sleep(left + 0.2)


@pytest.mark.parametrize("settings_overrides", [{"share_link_rate_limit": 5}])
async def test_share_link_lookups_are_rate_limited(client: httpx.AsyncClient) -> None:
    await clear_of_a_window_edge()
    answers = [(await client.get(f"/api/shared/sl_{'x' * 43}")).status_code for _ in range(7)]
    assert answers == [404] * 5 + [429] * 2
    r = await client.get("/api/shared/anything")
    assert r.status_code == 429 and int(r.headers["retry-after"]) >= 1


@pytest.mark.parametrize("settings_overrides", [{"share_link_rate_limit": 6}])
async def test_the_share_link_limit_holds_across_api_processes(
    client: httpx.AsyncClient, settings: Settings, dba: psycopg.Connection[Any]
) -> None:
    # (Each process counting alone, as before, let 6 through each: 12 for two.)
    await clear_of_a_window_edge()
    async with live_server(create_app(settings)) as second:
        answers = [(await c.get(f"/api/shared/sl_{'y' * 43}")).status_code for c in (client, second) * 4]
        assert answers == [404] * 6 + [429] * 2
        assert_problem(await second.get(f"/api/shared/sl_{'y' * 43}/scripts/{uuid.uuid4()}"), 429)
    # One row for the client and window, holding the hits that were let through.
    assert dba.execute("SELECT key, hits FROM keel.rate_limits").fetchall() == [("share_link:127.0.0.1", 6)]


async def test_a_dba_lookup_counts_even_when_the_link_is_unknown(dba: psycopg.Connection[Any]) -> None:
    await clear_of_a_window_edge()
    lookup = "SELECT callmaster.shared_lookup('198.51.100.7', 2, %s, %s)"
    first = dba.execute(lookup, ("show", "sl_unknown")).fetchone()[0]
    assert first == {"not_found": "share link not found"}
    assert dba.execute(lookup, ("show", "sl_unknown")).fetchone()[0] == first
    third = dba.execute(lookup, ("show", "sl_unknown")).fetchone()[0]
    assert set(third) == {"retry_after"} and 1 <= third["retry_after"] <= 60
    assert dba.execute("SELECT hits FROM keel.rate_limits WHERE key = 'share_link:198.51.100.7'").fetchone() == (2,)
    with pytest.raises(psycopg.errors.InvalidParameterValue):
        dba.execute(lookup, ("everything", "sl_unknown"))
