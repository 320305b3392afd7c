"""The script change feed (sql/callmaster/700_live_feed.sql): every write path appends its changes once,
numbered in commit order without gaps, and a reader that only ever asks "what is after my last event"
misses nothing even while concurrent writers commit out of the order they started in."""

from __future__ import annotations

import random
import threading
import time
from typing import Any

import httpx
import psycopg
import pytest
from psycopg import sql
from psycopg.types.json import Jsonb

from tests.factories import Bearer, add_script, add_show, add_user, one


@pytest.fixture
def stage(dba: psycopg.Connection[Any]) -> dict[str, str]:
    owner = add_user(dba, "user_a")
    show = add_show(dba, owner)
    return {
        "owner": owner,
        "show": show,
        "script": add_script(dba, show),
        "other": add_script(dba, show, "B"),
    }


def feed(dba: psycopg.Connection[Any], script: str, after: int = 0) -> list[tuple[Any, ...]]:
    return dba.execute(
        "SELECT id, event, element_id::text, fields, command"
        " FROM callmaster.live_events_after(ARRAY[%s]::uuid[], ARRAY[%s]::bigint[])",
        (script, after),
    ).fetchall()


def head(dba: psycopg.Connection[Any], script: str) -> int:
    return int(one(dba, "SELECT position FROM callmaster.live_feed_heads WHERE script_id = %s", (script,)))


def add_element(dba: psycopg.Connection[Any], script: str, label: str, sequence: int = 0) -> str:
    return str(
        one(
            dba,
            "INSERT INTO callmaster.script_elements (script_id, element_type, cue_id, sequence)"
            " VALUES (%s, 'cue', %s, %s) RETURNING id",
            (script, label, sequence),
        )
    )


def test_raw_sql_writes_are_logged_once_each_without_gaps(
    dba: psycopg.Connection[Any], stage: dict[str, str]
) -> None:
    script = stage["script"]
    a = add_element(dba, script, "Q1", 10)
    b = add_element(dba, script, "Q2", 20)
    dba.execute("UPDATE callmaster.script_elements SET description = 'lights up' WHERE id = %s", (a,))
    dba.execute("UPDATE callmaster.script_elements SET description = description WHERE id = %s", (b,))
    dba.execute(
        "INSERT INTO callmaster.script_element_equipment (element_id, equipment_name) VALUES (%s, 'haze')",
        (b,),
    )
    dba.execute(
        "INSERT INTO callmaster.script_element_groups (group_id, child_element_id) VALUES (%s, %s)", (a, b)
    )
    with pytest.raises(psycopg.errors.CheckViolation), dba.transaction():
        dba.execute("UPDATE callmaster.script_elements SET cue_id = 'X' WHERE id = %s", (a,))
        dba.execute("UPDATE callmaster.script_elements SET sequence = -1 WHERE id = %s", (b,))
    dba.execute("DELETE FROM callmaster.script_elements WHERE id = %s", (a,))

    assert feed(dba, script) == [
        (1, "element.created", a, None, None),
        (2, "element.created", b, None, None),
        (3, "element.updated", a, ["description", "version"], None),
        (4, "element.updated", b, ["version"], None),  # a no-op UPDATE still bumps the version
        (5, "element.updated", b, ["equipment"], None),
        (6, "element.updated", a, ["group_members"], None),
        (7, "element.deleted", a, None, None),  # the rolled-back writer gave its number back
    ]
    assert head(dba, script) == 7
    assert feed(dba, stage["other"]) == []


def test_a_row_moved_away_is_logged_where_it_left(
    dba: psycopg.Connection[Any], stage: dict[str, str]
) -> None:
    """A raw UPDATE that moves an element to another script, or a supporting row to another element: the
    script (or element) it left hears of it too, not only the one it joined."""
    script, other = stage["script"], stage["other"]
    a = add_element(dba, script, "Q1", 10)
    b = add_element(dba, script, "Q2", 20)
    dba.execute(
        "INSERT INTO callmaster.script_element_equipment (element_id, equipment_name) VALUES (%s, 'haze')",
        (a,),
    )
    dba.execute(
        "INSERT INTO callmaster.script_element_conditional_rules (element_id, condition_type, operator,"
        " condition_value) VALUES (%s, 'cast', 'equals', 'understudy')",
        (a,),
    )
    start = head(dba, script)
    for table in ("script_element_equipment", "script_element_conditional_rules"):
        move = sql.SQL("UPDATE callmaster.{} SET element_id = %s WHERE element_id = %s").format(
            sql.Identifier(table)
        )
        dba.execute(move, (b, a))
    moved = feed(dba, script, start)
    assert [(e[1], e[2], e[3]) for e in moved] == [
        ("element.updated", a, ["equipment"]), ("element.updated", b, ["equipment"]),
        ("element.updated", a, ["conditional_rules"]), ("element.updated", b, ["conditional_rules"]),
    ]  # fmt: skip
    dba.execute("UPDATE callmaster.script_elements SET script_id = %s WHERE id = %s", (other, b))
    assert [(e[1], e[2]) for e in feed(dba, script, start + 4)] == [("element.deleted", b)]
    assert [(e[1], e[2], "script_id" in e[3]) for e in feed(dba, other)] == [("element.updated", b, True)]


def test_an_edit_batch_logs_an_element_written_with_its_supporting_rows_once(
    dba: psycopg.Connection[Any], stage: dict[str, str]
) -> None:
    """Each operation of an edit batch runs in a subtransaction: an element created or changed there with
    its supporting rows is one event, as it is from the single-element calls (it was two: the rows'
    trigger took the subtransaction's element for another transaction's)."""
    script = stage["script"]
    q1 = add_element(dba, script, "Q1", 10)
    start = head(dba, script)
    operations = [
        {"op": "create", "data": {"element_type": "cue", "equipment": [{"equipment_name": "haze"}]}},
        {"op": "update", "id": q1, "data": {"description": "fog", "equipment": [{"equipment_name": "fog"}]}},
    ]
    one(dba, "SELECT callmaster.apply_script_edits(%s, %s)", (script, Jsonb(operations)))
    events = [(e[1], e[2]) for e in feed(dba, script, start)]
    created = str(
        one(dba, "SELECT id FROM callmaster.script_elements WHERE script_id = %s AND id <> %s", (script, q1))
    )
    assert events == [("element.created", created), ("element.updated", q1)]
    dba.execute("VACUUM (FREEZE) callmaster.script_elements")  # xmin 2 (frozen): not this transaction's
    dba.execute(
        "INSERT INTO callmaster.script_element_equipment (element_id, equipment_name) VALUES (%s, 'smoke')",
        (q1,),
    )
    later = feed(dba, script, start + 2)  # a later transaction's rows of the same element: logged
    assert [(e[1], e[2], e[3]) for e in later] == [("element.updated", q1, ["equipment"])]


def test_a_new_script_logs_nothing_until_it_has_committed(
    dba: psycopg.Connection[Any], stage: dict[str, str]
) -> None:
    with dba.transaction():
        script = add_script(dba, stage["show"], "Fresh")
        add_element(dba, script, "Q1")
    assert (head(dba, script), feed(dba, script)) == (0, [])  # its first `state` covers them
    add_element(dba, script, "Q2")
    assert [row[:2] for row in feed(dba, script)] == [(1, "element.created")]
    copy = one(dba, "SELECT callmaster.duplicate_script(%s, 'Copy')", (script,))
    assert (head(dba, str(copy)), feed(dba, str(copy))) == (0, [])


def test_every_element_column_is_compared(dba: psycopg.Connection[Any]) -> None:
    """The UPDATE trigger lists the columns it compares; a column added later must be added there."""
    body = one(dba, "SELECT pg_get_functiondef('callmaster.live_feed_elements()'::regprocedure)")
    columns = [
        r[0]
        for r in dba.execute(
            "SELECT attname FROM pg_attribute WHERE attrelid = 'callmaster.script_elements'::regclass"
            " AND attnum > 0 AND NOT attisdropped AND attname NOT IN ('id', 'updated_at')"
        )
    ]
    assert len(columns) > 20
    assert [c for c in columns if f"'{c}'" not in body] == []


async def test_every_api_write_path_appears_once_in_commit_order(
    client: httpx.AsyncClient, dba: psycopg.Connection[Any], bearer: Bearer, stage: dict[str, str]
) -> None:
    auth = bearer("user_a")
    script = stage["script"]
    base = f"/api/scripts/{script}"

    r = await client.post(
        f"{base}/elements",
        json={
            "element_type": "cue",
            "cue_id": "Q1",
            "time_offset_ms": 900,
            "equipment": [{"equipment_name": "fog"}],
        },
        headers=auth,
    )
    assert r.status_code == 201, r.text
    q1 = r.json()["id"]
    r = await client.post(f"{base}/elements", json={"element_type": "cue", "cue_id": "Q2"}, headers=auth)
    q2 = r.json()["id"]
    r = await client.patch(f"/api/elements/{q1}", json={"description": "blackout"}, headers=auth)
    assert r.status_code == 200, r.text
    r = await client.patch(
        f"{base}/elements",
        json=[{"id": q1, "priority": "high"}, {"id": q2, "time_offset_ms": 500}],
        headers=auth,
    )
    assert r.status_code == 200, r.text
    r = await client.post(
        f"{base}/edits",
        json={
            "operations": [
                {"op": "create", "temp_id": "n", "data": {"element_type": "note", "description": "places"}},
                {"op": "update", "id": q2, "data": {"cue_notes": "on the button"}},
            ]
        },
        headers=auth,
    )
    assert r.status_code == 200, r.text
    created = one(
        dba,
        "SELECT id::text FROM callmaster.script_elements WHERE script_id = %s AND element_type = 'note'",
        (script,),
    )
    r = await client.post(f"{base}/elements/auto-sort", headers=auth)
    assert r.status_code == 200, r.text
    dba.execute("UPDATE callmaster.script_elements SET location = 'booth' WHERE id = %s", (q2,))
    r = await client.delete(f"/api/elements/{q1}", headers=auth)
    assert r.status_code == 204, r.text

    rows = feed(dba, script)
    assert [r[0] for r in rows] == list(range(1, len(rows) + 1))
    # (event, element, the changed field that matters); version (and updated_by) change with every update
    events = [(r[1], r[2], set(r[3] or ()) - {"version", "updated_by"}) for r in rows]
    assert events[:7] == [
        ("element.created", q1, set()),  # its nested equipment is part of the same event
        ("element.created", q2, set()),
        ("element.updated", q1, {"description"}),
        ("element.updated", q1, {"priority"}),  # bulk: one event per element
        ("element.updated", q2, {"time_offset_ms"}),
        ("element.created", created, set()),  # edit batch
        ("element.updated", q2, {"cue_notes"}),
    ]
    sort = events[7:-2]  # auto-sort: the elements whose sequence changed, once each
    assert sort and {e[1] for e in sort} <= {q1, q2, created} and len({e[1] for e in sort}) == len(sort)
    assert all(e[0] == "element.updated" and e[2] == {"sequence"} for e in sort)
    assert events[-2:] == [("element.updated", q2, {"location"}), ("element.deleted", q1, set())]
    assert all("version" in (r[3] or ()) for r in rows if r[1] == "element.updated")


def test_concurrent_writers_are_read_in_commit_order_without_gaps(
    db_url: str, dba: psycopg.Connection[Any], stage: dict[str, str]
) -> None:
    """Writers hold their position to commit for a random while; a reader polling `position > last`
    as fast as it can must still collect every event exactly once, in position order."""
    script = stage["script"]
    elements = [add_element(dba, script, f"Q{n}", n) for n in range(8)]
    start = head(dba, script)
    writers, rounds = 6, 15
    stop = threading.Event()
    errors: list[BaseException] = []
    seen: list[int] = []

    def write(n: int) -> None:
        try:
            with psycopg.connect(db_url, autocommit=True) as conn:
                for i in range(rounds):
                    with conn.transaction():
                        conn.execute(
                            "UPDATE callmaster.script_elements SET description = %s WHERE id = %s",
                            (f"w{n} r{i}", elements[(n + i) % len(elements)]),
                        )
                        time.sleep(random.uniform(0, 0.01))
        except BaseException as exc:  # noqa: BLE001 - reported by the main thread
            errors.append(exc)

    def read() -> None:
        last = start
        with psycopg.connect(db_url, autocommit=True) as conn:
            while True:
                done = stop.is_set()
                rows = conn.execute(
                    "SELECT id FROM callmaster.live_events_after(ARRAY[%s]::uuid[], ARRAY[%s]::bigint[])",
                    (script, last),
                ).fetchall()
                for (position,) in rows:
                    seen.append(position)
                    last = position
                if done:
                    return

    reader = threading.Thread(target=read)
    reader.start()
    threads = [threading.Thread(target=write, args=(n,)) for n in range(writers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    stop.set()
    reader.join(timeout=30)
    assert errors == []
    assert seen == list(range(start + 1, start + writers * rounds + 1))
    descriptions = {
        r[0]
        for r in dba.execute(
            "SELECT description FROM callmaster.script_elements WHERE script_id = %s", (script,)
        )
    }
    assert len(descriptions) == len(elements)


@pytest.mark.parametrize(
    "call",
    [
        "SELECT callmaster.update_element(%(second)s, '{\"description\": \"api\"}')",
        "SELECT callmaster.delete_element(%(second)s)",
        (
            "SELECT callmaster.bulk_update_script_elements(%(script)s,"
            " jsonb_build_array(jsonb_build_object('id', %(second)s::text, 'description', 'bulk')))"
        ),
        (
            "SELECT callmaster.apply_script_edits(%(script)s, jsonb_build_array(jsonb_build_object("
            "'op', 'update', 'id', %(second)s::text, 'data', jsonb_build_object('description', 'batch'))))"
        ),
    ],
    ids=["update", "delete", "bulk", "edits"],
)
def test_element_writes_wait_for_an_open_writer_of_the_script_without_deadlock(
    db_url: str, dba: psycopg.Connection[Any], stage: dict[str, str], call: str
) -> None:
    """The feed head is locked to commit by a script's first write. The element functions (API and DBA)
    lock it right after their script lock, before any element row: a DBA transaction that wrote the
    script and then writes a row such a call holds used to deadlock with it (the call held the row and
    waited for the head at the end of its statement)."""
    script = stage["script"]
    first, second = add_element(dba, script, "Q1", 10), add_element(dba, script, "Q2", 20)
    params = {"script": script, "second": second}
    errors: list[BaseException] = []
    with psycopg.connect(db_url) as raw, psycopg.connect(db_url, autocommit=True) as api:
        raw.execute("UPDATE callmaster.script_elements SET description = 'psql' WHERE id = %s", (first,))

        def write() -> None:
            try:
                api.execute(call, params)
            except BaseException as exc:  # noqa: BLE001 - reported by the main thread
                errors.append(exc)

        writer = threading.Thread(target=write)
        writer.start()
        time.sleep(0.3)  # the call waits for the raw transaction
        raw.execute("UPDATE callmaster.script_elements SET cue_notes = 'psql' WHERE id = %s", (second,))
        raw.commit()
        writer.join(timeout=30)
    assert errors == []
    positions = [row[0] for row in feed(dba, script)]
    assert positions == list(range(1, len(positions) + 1))


def test_a_replay_holds_at_most_10000_events_however_large_its_statements(
    dba: psycopg.Connection[Any], stage: dict[str, str]
) -> None:
    """live_open's replay limit counts events, not log rows (a row holds a whole statement's events): 11
    bulk updates of 1,000 elements are 11,000 events, of which it answers the first 10,000."""
    script = stage["script"]
    start = head(dba, script)
    dba.execute(
        "INSERT INTO callmaster.script_elements (script_id, element_type, sequence)"
        " SELECT %s, 'note', g FROM generate_series(1, 1000) AS g",
        (script,),
    )
    for n in range(10):
        dba.execute("UPDATE callmaster.script_elements SET description = %s WHERE script_id = %s", (n, script))
    opened = one(dba, "SELECT callmaster.live_open(%s, %s)", (script, start))
    ids = [e["id"] for e in opened["events"]]
    assert ids == list(range(start + 1, start + 10_001))
    assert opened["state"]["script"]["version"] == start + 11_000
