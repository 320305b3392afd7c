"""GET /api/scripts/{id}/live: state first, then committed events in commit order with ids;
Last-Event-ID replays exactly the missed ones (or `reset`); a GO accepted by one API process reaches a
subscriber of another; a subscriber whose access ends is disconnected within seconds."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from dataclasses import replace
from typing import Any

import httpx
import psycopg
import pytest

from api.app import create_app
from api.settings import Settings
from tests.callmaster_live_support import add_notes, flood, follow, live_stage, slow_reader
from tests.conftest import live_server
from tests.reliability_support import proxy_target, through
from tests.factories import Bearer, assert_problem, one
from tests.tcp_proxy import TcpProxy


@pytest.fixture
def settings_overrides() -> dict[str, Any]:
    return {"live_check_interval": 0.3, "live_linger": 0.5, "live_sse_keepalive": 1.0}


@pytest.fixture
def stage(dba: psycopg.Connection[Any]) -> dict[str, Any]:
    return live_stage(dba)


async def go(client: httpx.AsyncClient, auth: dict[str, str], script: str, **body: Any) -> dict[str, Any]:
    r = await client.post(
        f"/api/scripts/{script}/live/commands", json={"command": "go", **body}, headers=auth
    )
    assert r.status_code == 200, r.text
    return r.json()


async def test_state_then_events_in_commit_order_then_resume(
    client: httpx.AsyncClient, dba: psycopg.Connection[Any], bearer: Bearer, stage: dict[str, Any]
) -> None:
    owner, operator = bearer("user_a"), bearer("lx_op")
    script, cues = stage["script"], stage["cues"]
    url = f"/api/scripts/{script}/live"
    start = int(
        dba.execute(
            "SELECT position FROM callmaster.live_feed_heads WHERE script_id = %s", (script,)
        ).fetchone()[0]
    )

    async with follow(client, url, operator) as crew:
        state = await crew.next()
        assert state.event == "state" and state.id == str(start)
        assert state.data["script"] == {
            "id": script, "show_id": stage["show"], "name": "Main", "status": "draft", "version": start
        }  # fmt: skip
        assert state.data["run"] is None

        await go(client, owner, script)
        r = await client.patch(f"/api/elements/{cues[1]}", json={"description": "sunset"}, headers=owner)
        assert r.status_code == 200, r.text
        dba.execute("UPDATE callmaster.script_elements SET cue_notes = 'psql' WHERE id = %s", (cues[2],))
        first = await crew.take(3)
        assert [(e.event, e.id) for e in first] == [
            ("command", str(start + 1)), ("element.updated", str(start + 2)), ("element.updated", str(start + 3))
        ]  # fmt: skip
        assert first[0].data["command"] == "go" and first[0].data["element_id"] == cues[0]
        assert (
            first[0].data["run"]["status"] == "running"
            and first[0].data["run"]["current_element_id"] == cues[0]
        )
        assert first[0].data["run"]["next_element_id"] == cues[1]
        assert first[1].data["element_id"] == cues[1] and "description" in first[1].data["fields"]
        assert first[2].data["element_id"] == cues[2] and "cue_notes" in first[2].data["fields"]
        with pytest.raises(TimeoutError):
            await crew.next(timeout=0.5)  # nothing else happened: nothing else arrives

    # While nobody listens: three more events, then reconnect after the second event seen.
    await go(client, owner, script)
    await client.post(f"/api/scripts/{script}/live/commands", json={"command": "hold"}, headers=owner)
    dba.execute("DELETE FROM callmaster.script_elements WHERE id = %s", (cues[3],))
    async with follow(client, url, operator, last_event_id=str(start + 2)) as crew:
        events = await crew.take(5)
        assert events[0].event == "state" and events[0].id == str(start + 2)
        assert (
            events[0].data["run"]["status"] == "holding" and events[0].data["script"]["version"] == start + 6
        )
        assert [(e.event, e.id) for e in events[1:]] == [
            ("element.updated", str(start + 3)),
            ("command", str(start + 4)),
            ("command", str(start + 5)),
            ("element.deleted", str(start + 6)),
        ]
        assert [e.data.get("command") for e in events[1:]] == [None, "go", "hold", None]
        with pytest.raises(TimeoutError):
            await crew.next(timeout=0.5)  # exactly the missed ones, nothing twice

    # A Last-Event-ID from before what the log holds (pruned), or not one of ours: `reset`, then live.
    dba.execute("SELECT callmaster.prune_live_events('0 seconds')")
    for n, stale in enumerate((str(start + 1), "not-a-position")):
        async with follow(client, url, operator, last_event_id=stale) as crew:
            state, reset = await crew.take(2)
            assert (state.event, reset.event, reset.id) == ("state", "reset", str(start + 6 + 2 * n))
            await client.post(
                f"/api/scripts/{script}/live/commands", json={"command": "resume"}, headers=owner
            )
            resumed = await crew.next()
            assert (resumed.event, resumed.data["command"]) == ("command", "resume")
            await client.post(f"/api/scripts/{script}/live/commands", json={"command": "hold"}, headers=owner)
            assert (await crew.next()).data["command"] == "hold"


async def test_strangers_and_bad_requests(
    client: httpx.AsyncClient, bearer: Bearer, stage: dict[str, Any]
) -> None:
    script = stage["script"]
    assert_problem(await client.get(f"/api/scripts/{script}/live", headers=bearer("stranger_s")), 404)
    assert_problem(await client.get(f"/api/scripts/{stage['show']}/live", headers=bearer("user_a")), 404)
    assert (await client.get(f"/api/scripts/{script}/live")).status_code == 401


async def test_a_go_on_one_process_reaches_a_subscriber_of_another(
    client: httpx.AsyncClient, settings: Settings, bearer: Bearer, stage: dict[str, Any]
) -> None:
    script = stage["script"]
    other = create_app(settings)  # its own pool and relay: a second API process
    async with (
        live_server(other) as second,
        follow(second, f"/api/scripts/{script}/live", bearer("lx_op")) as crew,
    ):
        assert (await crew.next()).event == "state"
        for cue in stage["cues"][:3]:
            started = time.monotonic()
            await go(client, bearer("caller_c"), script, element_id=cue)
            event = await crew.next(timeout=5)
            assert (event.event, event.data["command"], event.data["element_id"]) == ("command", "go", cue)
            assert time.monotonic() - started < 5
            await asyncio.sleep(0.7)  # past the linger: the next GO has to wake a sleeping relay


async def test_revoked_subscribers_are_disconnected(
    client: httpx.AsyncClient, dba: psycopg.Connection[Any], bearer: Bearer, stage: dict[str, Any]
) -> None:
    script = stage["script"]
    async with follow(client, f"/api/scripts/{script}/live", bearer("lx_op")) as crew:
        assert (await crew.next()).event == "state"
        r = await client.get(f"/api/scripts/{script}/live/presence", headers=bearer("user_a"))
        deadline = time.monotonic() + 5
        while r.json()["devices"] < 1 and time.monotonic() < deadline:
            await asyncio.sleep(0.1)
            r = await client.get(f"/api/scripts/{script}/live/presence", headers=bearer("user_a"))
        assert r.json() == {
            "devices": 1, "owner": 0, "shared": 0,
            "by_department": [{"department_id": stage["lighting"], "name": "Lighting", "devices": 1}],
        }  # fmt: skip
        started = time.monotonic()
        dba.execute(
            "UPDATE callmaster.crew_assignments SET is_active = false WHERE user_id = %s",
            (stage["operator"],),
        )
        revoked = await crew.next(timeout=5)
        assert revoked.event == "revoked"
        await asyncio.wait_for(crew.ended.wait(), 5)
        assert time.monotonic() - started < 3
    assert_problem(await client.get(f"/api/scripts/{script}/live", headers=bearer("lx_op")), 404)


@pytest.mark.parametrize("settings_overrides", [{"live_sse_keepalive": 300.0, "live_check_interval": 0.3}])
async def test_a_stalled_reader_holds_up_nobody_and_then_gets_everything_in_order(
    client: httpx.AsyncClient, dba: psycopg.Connection[Any], bearer: Bearer, stage: dict[str, Any]
) -> None:
    """The relay writes to up-to-date subscribers' connections itself; a client whose socket is full is
    left to its own stream (the others go on), whose write waits for it, and that subscriber then
    catches up, gapless, from the relay's recent events or the database."""
    script = stage["script"]
    url = f"/api/scripts/{script}/live"
    start = add_notes(dba, script)
    reader, writer = await slow_reader(client, url, bearer("lx_op"))
    seen: list[int] = []

    async def read_until(done: Callable[[bytes], bool]) -> None:
        while line := await reader.readline():
            if line.startswith(b"id: "):
                seen.append(int(line[4:]))
            if done(line):
                return

    try:
        await asyncio.wait_for(read_until(lambda line: line == b"event: state\r\n"), 10)
        async with follow(client, url, bearer("lx_op")) as crew:
            assert (await crew.next()).event == "state"
            head = flood(dba, script)  # while the raw reader reads nothing
            while (await crew.next(timeout=60)).id != str(head):
                pass
            # Its socket is full: the relay leaves it to its own stream, the GO reaches the other at once.
            started = time.monotonic()
            await go(client, bearer("caller_c"), script)
            event = await crew.next(timeout=5)
            assert (event.event, event.id) == ("command", str(head + 1))
            assert time.monotonic() - started < 5
            head += 1
            # The stalled reader now reads: every event once, in order, up to the GO.
            await asyncio.wait_for(read_until(lambda _: bool(seen) and seen[-1] == head), 60)
            assert seen == list(range(start, head + 1))
    finally:
        writer.close()


@pytest.mark.parametrize(
    "settings_overrides",
    [{"live_sse_keepalive": 300.0, "live_check_interval": 0.3, "live_stall_timeout": 0.5}],
)
async def test_a_reader_that_stops_reading_is_disconnected_and_resumes(
    client: httpx.AsyncClient, dba: psycopg.Connection[Any], bearer: Bearer, stage: dict[str, Any]
) -> None:
    """A client that leaves its socket full for KEEL_LIVE_STALL_TIMEOUT is disconnected (the server holds
    nothing more for it, however long it stays silent) and resumes from the last event it read."""
    script = stage["script"]
    url = f"/api/scripts/{script}/live"
    start = add_notes(dba, script)
    reader, writer = await slow_reader(client, url, bearer("lx_op"))
    seen: list[int] = []
    try:
        while (line := await asyncio.wait_for(reader.readline(), 10)) != b"event: state\r\n":
            pass
        head = flood(dba, script)  # while the client reads nothing
        await asyncio.sleep(1.5)  # silent for longer than the stall timeout
        with contextlib.suppress(ConnectionError):
            while line := await asyncio.wait_for(reader.readline(), 10):  # then the connection ends
                if line.startswith(b"id: "):
                    seen.append(int(line[4:]))
    finally:
        writer.close()
    assert seen == list(range(start + 1, start + 1 + len(seen)))  # what it got came in order
    assert seen[-1] < head
    async with follow(client, url, bearer("lx_op"), last_event_id=str(seen[-1])) as crew:
        ids = [int((await crew.next(timeout=30)).id or 0) for _ in range(head - seen[-1] + 1)]
    assert ids == [seen[-1], *range(seen[-1] + 1, head + 1)]  # the state, then exactly the rest


async def test_an_idle_stream_gets_keep_alive_comments(
    client: httpx.AsyncClient, bearer: Bearer, stage: dict[str, Any]
) -> None:
    url = f"/api/scripts/{stage['script']}/live"
    async with client.stream("GET", url, headers=bearer("lx_op")) as response:
        lines = response.aiter_lines()
        while await asyncio.wait_for(anext(lines), 5) != "event: state":
            pass
        started = time.monotonic()
        while (line := await asyncio.wait_for(anext(lines), 5)) != ": keep-alive":
            assert line.startswith(("data: ", "id: ")) or not line  # the rest of the state event
        assert 0.5 < time.monotonic() - started < 3  # live_sse_keepalive 1 s
        assert await asyncio.wait_for(anext(lines), 5) == ""  # a comment alone: no event for the client


async def test_a_resume_longer_than_one_replay_gets_every_missed_event(
    client: httpx.AsyncClient, dba: psycopg.Connection[Any], bearer: Bearer, stage: dict[str, Any]
) -> None:
    """live_open replays at most 10,000 events; a subscriber that missed more gets the rest from the
    stream (not a jump to the head), every event once and in order."""
    script = stage["script"]
    start = int(one(dba, "SELECT position FROM callmaster.live_feed_heads WHERE script_id = %s", (script,)))
    missed = 10_050
    # The log of 10,050 one-event statements (show commands), written as the feed functions write it.
    dba.execute(
        "WITH h AS (UPDATE callmaster.live_feed_heads SET position = position + %(n)s"
        "           WHERE script_id = %(script)s RETURNING position - %(n)s AS base)"
        " INSERT INTO callmaster.live_events (script_id, first_position, position, event, command, run)"
        " SELECT %(script)s, h.base + g, h.base + g, 'command', 'hold', '{}'"
        " FROM h, generate_series(1, %(n)s) AS g",
        {"n": missed, "script": script},
    )
    url = f"/api/scripts/{script}/live"
    async with follow(client, url, bearer("lx_op"), last_event_id=str(start)) as crew:
        assert (await crew.next()).event == "state"
        ids = [int((await crew.next()).id or 0) for _ in range(missed)]
        assert ids == list(range(start + 1, start + missed + 1))
        await go(client, bearer("caller_c"), script)
        event = await crew.next()
        assert (event.event, event.id) == ("command", str(start + missed + 1))  # then live, no gap


async def test_a_relay_that_fell_behind_the_pruning_resets_its_followers(
    settings: Settings, dba: psycopg.Connection[Any], bearer: Bearer, stage: dict[str, Any]
) -> None:
    """A relay cut off from the database while another process prunes the log must not stitch what it
    held before the gap to what it reads after it: its followers get `reset`, never a silent jump."""
    script = stage["script"]
    direct = settings.direct_url  # the relay's server (never a pooler: its session sets a role)
    assert direct is not None
    proxy = TcpProxy(proxy_target(direct)).start()
    cut_off = replace(settings, database_direct_url=through(direct, proxy))
    try:
        async with (
            live_server(create_app(cut_off)) as http,
            follow(http, f"/api/scripts/{script}/live", bearer("lx_op")) as crew,
        ):
            assert (await crew.next()).event == "state"
            await go(http, bearer("caller_c"), script)
            await go(http, bearer("caller_c"), script)  # the relay now holds events before the gap
            before = [int((await crew.next()).id or 0) for _ in range(2)]
            proxy.stall()
            for n in range(3):  # written, then pruned while the relay cannot read
                dba.execute(
                    "UPDATE callmaster.script_elements SET description = %s WHERE id = %s",
                    (f"take {n}", stage["cues"][3]),
                )
            dba.execute("SELECT callmaster.prune_live_events('0 seconds')")
            await go(http, bearer("caller_c"), script)
            proxy.resume()
            event = await crew.next(timeout=15)
            assert event.event == "reset", (before, event)
    finally:
        proxy.resume()
        proxy.stop()
