"""Issue 13, finding 6: least privilege, as a catalog lint.

What the request role (`keel_api`), the worker role (`keel_worker`) and PUBLIC can execute is compared
with explicit allow-lists: a new function is reachable by nobody until someone lists it here with a
reason. keel_api's table privileges in schema `keel` are pinned too.
"""

from __future__ import annotations

from typing import Any

import psycopg
import pytest
from psycopg import sql

from tests.factories import add_script, add_show, add_user

API = "an API handler's call; runs under the request's claims, row-level security applies"
HELPER = (
    "helper of the API's functions (checks, JSON shaping); SECURITY INVOKER, so it sees what the caller sees"
)
TRIGGER = "trigger function; PostgreSQL refuses to call it other than as a trigger"
CLAIMS = "reads the request's own claims; nothing else"
IDEMPOTENCY = "owner of the caller's Idempotency-Key rows (row-level security of keel.idempotency_keys)"
DEFINER_POLICY = (
    "SECURITY DEFINER row-level security helper (definer, so policies do not recurse); answers only about "
    "the request's own user"
)
DEFINER_CHECKED = "SECURITY DEFINER; checks that the acting user may write the show (writable_*) first"
CLERK_WEBHOOK = (
    "SECURITY DEFINER; the verified Clerk webhook's call (no claims); refuses to run under request claims"
)
CONTROL_TOWER = (
    "SECURITY DEFINER read of the control-tower views; the clinic is the claim's (control_tower_clinic: "
    "42501 for another clinic or no clinic claim as keel_api)"
)
WORKER = "SECURITY DEFINER worker call (every tenant's queue); keel_worker only, never keel_api"
LIVE_RELAY = (
    "SECURITY DEFINER call of the live relay's own session (every subscribed script); keel_worker only"
)
DOORBELL = "dispatcher's wake-up announcement (a session advisory lock); touches no rows"

INVITEE = (
    "SECURITY DEFINER invitee's side of a crew invitation; only the requesting user's own invitations "
    "(invitee_user_id, which keel_api may not read)"
)
SHARE_LINK = "SECURITY DEFINER share-link read; answers only for a valid, unexpired, unrevoked token's show"
MAINTENANCE_SWITCH = (
    "transaction-local switch read by the touch triggers; ignored when the caller is keel_api"
)
CONSOLE_COUNTS = (
    "SECURITY DEFINER counts of assistant jobs; only for the caller's own clinic with the admin claim"
)

CONSOLE_REFRESH_LOG = (
    "SECURITY DEFINER read of the refresh log (one for all clinics, names none); admin role claim only"
)

KEEL_API: dict[str, str] = {
    "assistant.current_staff_id()": HELPER,
    "assistant.get_conversation(uuid,integer,integer)": API,
    "assistant.get_message(uuid)": API,
    "assistant.list_conversations(integer,integer)": API,
    "assistant.message_json(assistant.messages)": HELPER,
    "assistant.messages_notify()": TRIGGER,
    "assistant.post_chat(text,uuid,text)": API,
    "assistant.reply_progress(uuid,integer,integer)": API,
    "assistant.require_worker()": HELPER,
    "assistant.tool_appointment_stats(jsonb)": HELPER,
    "assistant.tool_appointments(jsonb)": HELPER,
    "assistant.tool_clinic()": HELPER,
    "assistant.tool_clinic_overview(jsonb)": HELPER,
    "assistant.tool_control_tower(jsonb)": HELPER,
    "assistant.tool_date_arg(jsonb,text,date)": HELPER,
    "assistant.tool_find_patient(jsonb)": HELPER,
    "assistant.tool_list_doctors(jsonb)": HELPER,
    "assistant.tool_today()": HELPER,
    "assistant.touch_updated_at()": TRIGGER,
    "callmaster.acting_user_id()": HELPER,
    "callmaster.add_guest(jsonb)": (
        "SECURITY DEFINER; acts only for the requesting user (require_user_id) on their own crew; an address "
        "held outside the crew becomes an invitation answered exactly like a new guest (issue 13, finding 15)"
    ),
    "callmaster.add_show_crew(uuid,jsonb)": API,
    "callmaster.apply_clerk_event(text,text,jsonb)": CLERK_WEBHOOK,
    "callmaster.apply_script_edits(uuid,jsonb)": API,
    "callmaster.assigned_show_ids()": DEFINER_POLICY,
    "callmaster.auto_sort_script_elements(uuid)": API,
    "callmaster.bulk_update_script_elements(uuid,jsonb)": API,
    "callmaster.bump_element_version()": TRIGGER,
    "callmaster.check_base_version(callmaster.script_elements,integer)": HELPER,
    "callmaster.check_element_refs(uuid,uuid,uuid,uuid)": HELPER,
    "callmaster.check_item_array(jsonb,text[],text)": HELPER,
    "callmaster.check_parent_cycles(uuid[])": HELPER,
    "callmaster.check_show_venue(uuid,uuid)": HELPER,
    "callmaster.check_member_refs(uuid[],uuid,text,text)": HELPER,
    "callmaster.check_element_member_owner()": TRIGGER,
    "callmaster.clerk_primary_value(jsonb,text,text,text)": HELPER,
    "callmaster.copied_id(uuid,uuid)": HELPER,
    "callmaster.create_department(jsonb)": API,
    "callmaster.create_element(uuid,jsonb)": API,
    "callmaster.create_guest_user(uuid,text,text,text,text,text)": HELPER,
    "callmaster.create_script(uuid,jsonb)": API,
    "callmaster.create_show(jsonb)": API,
    "callmaster.create_venue(jsonb)": API,
    "callmaster.crew_assignment_json(callmaster.crew_assignments)": HELPER,
    "callmaster.pending_member_summary(uuid,uuid)": (
        "SECURITY DEFINER; the summary of a pending crew member (what its manager typed, never the invitee) "
        "for the acting user's own invitations or a show they crew (issue 13, finding 15)"
    ),
    "callmaster.crew_member_json(callmaster.users,callmaster.crew_relationships)": HELPER,
    "callmaster.crew_invitation_json(callmaster.crew_invitations_sent)": HELPER,
    "callmaster.current_user_id()": DEFINER_POLICY,
    "callmaster.delete_department(uuid)": API,
    "callmaster.delete_element(uuid,integer)": API,
    "callmaster.delete_script(uuid)": DEFINER_CHECKED,
    "callmaster.delete_show(uuid)": DEFINER_CHECKED,
    "callmaster.delete_venue(uuid)": API,
    "callmaster.duplicate_script(uuid,text,uuid)": DEFINER_CHECKED,
    "callmaster.duplicate_script_json(uuid,text,uuid)": API,
    "callmaster.element_documents(uuid[])": HELPER,
    "callmaster.element_fields()": HELPER,
    "callmaster.element_json(callmaster.script_elements)": HELPER,
    "callmaster.element_nested_fields()": HELPER,
    "callmaster.fill_group_script_id()": TRIGGER,
    "callmaster.fill_owner_from_script()": TRIGGER,
    "callmaster.fill_owner_from_show()": TRIGGER,
    "callmaster.get_department(uuid)": API,
    "callmaster.get_element(uuid)": API,
    "callmaster.get_script(uuid)": API,
    "callmaster.get_show(uuid)": API,
    "callmaster.get_venue(uuid)": API,
    "callmaster.insert_element(callmaster.scripts,jsonb)": HELPER,
    "callmaster.jsonb_merge_patch(jsonb,jsonb)": HELPER,
    "callmaster.like_escape(text)": HELPER,
    "callmaster.list_crew(integer,integer)": API,
    "callmaster.list_crew_invitations(integer,integer)": INVITEE,
    "callmaster.accept_crew_invitation(uuid)": INVITEE,
    "callmaster.decline_crew_invitation(uuid)": INVITEE,
    "callmaster.list_departments(integer,integer,text)": API,
    "callmaster.list_script_elements(uuid,integer,integer)": API,
    "callmaster.list_show_crew(uuid,integer,integer)": API,
    "callmaster.list_show_scripts(uuid,integer,integer)": API,
    "callmaster.list_shows(integer,integer,text)": API,
    "callmaster.list_venues(integer,integer,text)": API,
    "callmaster.lock_element_for_write(uuid,integer)": HELPER,
    "callmaster.me()": API,
    "callmaster.move_element(callmaster.scripts,uuid,uuid)": HELPER,
    "callmaster.raise_missing_or_read_only(text,uuid,boolean)": HELPER,
    "callmaster.reject_unknown_keys(jsonb,text[],text)": HELPER,
    "callmaster.remove_crew_member(uuid)": API,
    "callmaster.remove_show_crew(uuid,uuid,uuid,uuid)": API,
    "callmaster.request_user_id()": DEFINER_POLICY,
    "callmaster.require_user_id()": API,
    "callmaster.resolve_temp_id(text,jsonb)": HELPER,
    "callmaster.resolve_temp_ids(jsonb,jsonb)": HELPER,
    "callmaster.script_json(callmaster.scripts)": HELPER,
    "callmaster.show_json(callmaster.shows)": HELPER,
    "callmaster.touch_updated_at()": TRIGGER,
    "callmaster.update_crew_member(uuid,jsonb)": API,
    "callmaster.update_department(uuid,jsonb)": API,
    "callmaster.update_element(uuid,jsonb,integer)": API,
    "callmaster.update_element_row(callmaster.script_elements,jsonb)": HELPER,
    "callmaster.update_my_preferences(jsonb)": API,
    "callmaster.update_script(uuid,jsonb)": API,
    "callmaster.update_show(uuid,jsonb)": API,
    "callmaster.update_venue(uuid,jsonb)": API,
    "callmaster.user_json(callmaster.users)": HELPER,
    "callmaster.visible_user_ids()": DEFINER_POLICY,
    "callmaster.writable_element(uuid)": DEFINER_POLICY,
    "callmaster.writable_script(uuid)": DEFINER_POLICY,
    "callmaster.writable_show(uuid)": DEFINER_POLICY,
    "callmaster.write_element_children(callmaster.script_elements,jsonb)": HELPER,
    "clinic.appointment_check_change()": TRIGGER,
    "clinic.appointment_fill_snapshots()": TRIGGER,
    "clinic.appointment_json(clinic.appointments)": HELPER,
    "clinic.appointment_overlap_error(uuid,uuid,date,time without time zone,time without time zone,uuid)": HELPER,
    "clinic.appointments_outbox_booked()": TRIGGER,
    "clinic.count_v1_ciphertexts()": (
        "SECURITY DEFINER count for /api/ready (run by the API's login, a keel_api member): one number for "
        "all clinics, names none"
    ),
    "clinic.appointments_outbox_changed()": TRIGGER,
    "clinic.assert_slot_free(uuid,uuid,date,time without time zone,time without time zone,uuid)": HELPER,
    "clinic.assign_uhid()": TRIGGER,
    "clinic.book_appointment(jsonb)": API,
    "clinic.cancel_appointment(uuid,text)": API,
    "clinic.check_assigned_doctor()": TRIGGER,
    "clinic.check_clinic_timezone()": TRIGGER,
    "clinic.control_tower_clinic(uuid)": HELPER,
    "clinic.control_tower_daily(date,date,uuid)": CONTROL_TOWER,
    "clinic.control_tower_doctors(date,date,uuid)": CONTROL_TOWER,
    "clinic.control_tower_doctors_by_day(date,date,uuid)": CONTROL_TOWER,
    "clinic.control_tower_intervention_queue(integer,integer,integer,uuid)": CONTROL_TOWER,
    "clinic.control_tower_range(date,date,date)": HELPER,
    "clinic.control_tower_refreshed_at()": HELPER,
    "clinic.control_tower_summary(uuid)": CONTROL_TOWER,
    "clinic.control_tower_views()": HELPER,
    "clinic.convert_lead(uuid,text,text,text,text,date,text,text,text,text,text,text,text,text,uuid,date)": API,
    "clinic.create_lead(jsonb,text[])": API,
    "clinic.create_lead_import_staging()": API,
    "clinic.create_patient(jsonb)": API,
    "clinic.create_staff(jsonb)": API,
    "clinic.get_appointment(uuid)": API,
    "clinic.get_lead(uuid)": API,
    "clinic.get_patient(uuid)": API,
    "clinic.get_staff(uuid)": API,
    "clinic.import_leads(jsonb,boolean,uuid)": API,
    "clinic.import_staged_leads(boolean,uuid)": API,
    "clinic.lead_json(clinic.leads)": HELPER,
    "clinic.leads_outbox_created()": TRIGGER,
    "clinic.like_pattern(text)": HELPER,
    "clinic.list_appointments(date,uuid,text,uuid,date,date,integer,integer)": API,
    "clinic.list_leads(text,text,text[],uuid,integer,integer)": API,
    "clinic.list_staff(text,boolean,text,integer,integer)": API,
    "clinic.lock_doctor_schedule(uuid)": HELPER,
    "clinic.patient_json(uuid)": API,
    "clinic.request_claims(text)": (
        "the API's context statement: checks a clinic token against the staff member's current standing"
    ),
    "clinic.search_patients(text,text,integer,integer)": API,
    "clinic.tenant_id(uuid)": HELPER,
    "clinic.touch_updated_at()": TRIGGER,
    "clinic.update_appointment(uuid,jsonb)": API,
    "clinic.update_lead(uuid,jsonb)": API,
    "clinic.update_patient(uuid,jsonb)": API,
    "clinic.update_staff(uuid,jsonb)": API,
    "keel.current_claims()": CLAIMS,
    "keel.current_clinic_id()": CLAIMS,
    "keel.current_role_claim()": CLAIMS,
    "keel.current_user_sub()": CLAIMS,
    "keel.idempotency_scope()": IDEMPOTENCY,
    "keel.advisory_lock_key(text)": (
        "the advisory-lock registry (api/locks.py): a purpose's constant key; the API's Idempotency-Key lock "
        "and the outbox and live-feed doorbells that feed triggers ring under keel_api; reads no table"
    ),
    "callmaster.get_crew_member(uuid)": API,
    "callmaster.merge_department_assignments()": TRIGGER,
    "clinic.check_lead_conversion()": TRIGGER,
    "clinic.fill_local_date()": TRIGGER,
    "clinic.local_date(uuid,timestamp with time zone)": HELPER,
    "keel.keeps_updated_at()": MAINTENANCE_SWITCH,
    "keel.operations_overview(integer)": API,
    "keel.console_retry_outbox(uuid)": API,
    "keel.console_refresh_log()": CONSOLE_REFRESH_LOG,
    "keel.console_require_admin()": HELPER,
    "keel.console_assistant_jobs(uuid)": CONSOLE_COUNTS,
    "keel.rate_limit_hit(text,integer,integer)": (
        "SECURITY DEFINER counter of keel.rate_limits (share-link lookups per client address and minute, "
        "across processes; called by callmaster.shared_lookup); touches only the key it is given"
    ),
    "callmaster.live_go(uuid,uuid)": API,
    "callmaster.live_hold(uuid)": API,
    "callmaster.live_resume(uuid)": API,
    "callmaster.live_standby(uuid,uuid)": API,
    "callmaster.live_stop(uuid)": API,
    "callmaster.live_open(uuid,bigint)": API,
    "callmaster.live_open_shared(text,uuid,bigint)": API,
    "callmaster.shared_lookup(text,integer,text,text,uuid,bigint)": API,
    "callmaster.live_presence(uuid)": API,
    "callmaster.live_presence_shared(text,uuid)": API,
    "callmaster.share_link_create(uuid,integer)": API,
    "callmaster.share_link_list(uuid)": API,
    "callmaster.share_link_revoke(uuid,uuid)": API,
    "callmaster.shared_show(text)": SHARE_LINK,
    "callmaster.shared_script(text,uuid)": SHARE_LINK,
    "callmaster.live_lock_head(uuid)": (
        "the element functions' feed-head lock (before any element row, so writers never deadlock); SECURITY "
        "DEFINER (keel_api has no privilege on the heads), locks only a head of the acting user's own script"
    ),
    "callmaster.live_feed_children()": TRIGGER,
    "callmaster.live_feed_elements()": TRIGGER,
    "callmaster.live_feed_script_created()": TRIGGER,
    "callmaster.live_feed_script_deleted()": TRIGGER,
    "callmaster.live_feed_moved()": TRIGGER,
    "callmaster.live_runs_guard()": TRIGGER,
}

KEEL_WORKER: dict[str, str] = {
    "assistant.append_reply(uuid,integer,integer,text,double precision)": WORKER,
    "assistant.claim_replies(text,integer,double precision,integer)": WORKER,
    "assistant.complete_reply(uuid,integer,text,jsonb)": WORKER,
    "assistant.fail_reply(uuid,integer,text,double precision,integer)": WORKER,
    "assistant.release_reply(uuid,integer)": WORKER,
    "keel.advisory_lock_key(text)": (
        "the advisory-lock registry (api/locks.py): the outbox and live-feed doorbells the workers' "
        "SECURITY INVOKER calls take (keel.outbox_awake is inlined under keel_worker); reads no table"
    ),
    "keel.claim_outbox(integer,interval,text)": WORKER,
    "keel.complete_outbox(uuid,uuid,integer)": WORKER,
    "keel.complete_outbox_unsent(uuid[],uuid)": WORKER,
    "keel.fail_outbox(uuid,uuid,text,integer,integer,interval,interval)": WORKER,
    "keel.outbox_asleep(interval)": DOORBELL,
    "keel.outbox_awake()": DOORBELL,
    "keel.outbox_next_due()": WORKER,
    "keel.prune_outbox(interval,integer)": WORKER,
    "keel.prune_replay_records(interval,interval)": WORKER,
    "keel.start_outbox_delivery(uuid,uuid,interval)": WORKER,
    "callmaster.live_events_after(uuid[],bigint[],integer)": LIVE_RELAY,
    "callmaster.live_heartbeat(uuid,jsonb)": LIVE_RELAY,
    "callmaster.live_relay_asleep(interval)": DOORBELL,
    "callmaster.live_relay_awake()": DOORBELL,
    "callmaster.prune_live_events(interval)": LIVE_RELAY,
}

PUBLIC: dict[str, str] = {}

KEEL_TABLES = {
    "keel.idempotency_keys": ["INSERT", "SELECT"],
    # The console's operations page: forced row-level security lets only an admin of the event's clinic
    # see it (and UPDATE three columns to retry it: sql/keel/400_console_operations.sql).
    "keel.outbox": ["SELECT"],
}

_FUNCTIONS = """
    SELECT p.oid::regprocedure::text AS fn, p.prosecdef AS definer
    FROM pg_proc AS p
    JOIN pg_namespace AS n ON n.oid = p.pronamespace
    WHERE n.nspname NOT IN ('pg_catalog', 'information_schema')
      AND n.nspname NOT LIKE 'pg\\_%%'
      -- Extensions' functions (pg_trgm, btree_gist) are theirs, not ours.
      AND NOT EXISTS (SELECT FROM pg_depend AS d
                      WHERE d.classid = 'pg_proc'::regclass AND d.objid = p.oid AND d.deptype = 'e')
      AND {condition}
    ORDER BY 1
"""


def executable_by(dba: psycopg.Connection[Any], role: str) -> list[str]:
    if role == "PUBLIC":
        condition = """EXISTS (SELECT FROM aclexplode(coalesce(p.proacl, acldefault('f', p.proowner))) AS a
                               WHERE a.grantee = 0 AND a.privilege_type = 'EXECUTE')"""
        rows = dba.execute(_FUNCTIONS.format(condition=condition)).fetchall()
    else:
        rows = dba.execute(
            _FUNCTIONS.format(condition="has_function_privilege(%(role)s, p.oid, 'EXECUTE')"), {"role": role}
        ).fetchall()
    return [fn for fn, _ in rows]


def test_finding6_what_keel_api_can_execute_is_the_allow_list(dba):
    assert sorted(executable_by(dba, "keel_api")) == sorted(KEEL_API)


def test_finding6_what_keel_worker_can_execute_is_the_allow_list(dba):
    assert sorted(executable_by(dba, "keel_worker")) == sorted(KEEL_WORKER)


def test_finding6_public_executes_nothing_of_ours(dba):
    assert sorted(executable_by(dba, "PUBLIC")) == sorted(PUBLIC)


def test_finding6_new_functions_are_not_public(dba):
    dba.execute("BEGIN")
    try:
        dba.execute("SET LOCAL ROLE keel_owner")
        dba.execute("CREATE FUNCTION keel.lint_probe() RETURNS int LANGUAGE sql AS 'SELECT 1'")
        dba.execute("CREATE FUNCTION clinic.lint_probe() RETURNS int LANGUAGE sql AS 'SELECT 1'")
        probes = dba.execute(
            "SELECT has_function_privilege('keel_worker', 'keel.lint_probe()', 'EXECUTE'),"
            " has_function_privilege('keel_api', 'keel.lint_probe()', 'EXECUTE'),"
            " has_function_privilege('keel_worker', 'clinic.lint_probe()', 'EXECUTE')"
        ).fetchone()
    finally:
        dba.execute("ROLLBACK")
    assert probes == (False, False, False)


def test_finding6_keel_api_table_privileges_in_keel(dba):
    rows = dba.execute(
        """
        SELECT c.oid::regclass::text, array_agg(p.privilege ORDER BY p.privilege)
        FROM pg_class AS c
        JOIN pg_namespace AS n ON n.oid = c.relnamespace
        CROSS JOIN unnest(ARRAY['SELECT', 'INSERT', 'UPDATE', 'DELETE', 'TRUNCATE', 'REFERENCES', 'TRIGGER'])
            AS p(privilege)
        WHERE n.nspname = 'keel' AND c.relkind IN ('r', 'p', 'v', 'm', 'f', 'S')
          AND has_table_privilege('keel_api', c.oid, p.privilege)
        GROUP BY 1
        ORDER BY 1
        """
    ).fetchall()
    assert dict(rows) == KEEL_TABLES
    forced = dba.execute(
        "SELECT relrowsecurity AND relforcerowsecurity FROM pg_class WHERE oid = 'keel.idempotency_keys'::regclass"
    ).fetchone()
    assert forced == (True,)


OUR_SCHEMAS = {"keel", "clinic", "assistant", "callmaster"}


def test_security_definer_functions_pin_a_safe_search_path(dba):
    """Every SECURITY DEFINER function of ours runs as its owner with a search_path of its own: pg_catalog
    first (no caller's object shadows a built-in), then only our schemas — no `public` or `$user` (where a
    caller could create an object the owner would then use) and pg_temp, if named at all, last. It is
    owned by keel_owner and, by the allow-lists above, reached only by the role it is meant for."""
    rows = dba.execute(
        """
        SELECT p.oid::regprocedure::text, pg_get_userbyid(p.proowner),
               (SELECT substr(c, strpos(c, '=') + 1) FROM unnest(p.proconfig) AS c
                WHERE split_part(c, '=', 1) = 'search_path')
        FROM pg_proc AS p
        JOIN pg_namespace AS n ON n.oid = p.pronamespace
        WHERE p.prosecdef AND n.nspname = ANY (%(schemas)s)
        ORDER BY 1
        """,
        {"schemas": sorted(OUR_SCHEMAS)},
    ).fetchall()
    assert len(rows) > 50  # the catalog walk finds them
    unsafe = []
    for fn, owner, path in rows:
        entries = [entry.strip().strip('"') for entry in (path or "").split(",")]
        if entries[-1] == "pg_temp":
            entries.pop()
        if owner != "keel_owner" or entries[0] != "pg_catalog" or not set(entries[1:]) <= OUR_SCHEMAS:
            unsafe.append((fn, owner, path))
    assert unsafe == []


def test_what_keel_api_reads_beyond_tables_is_scoped_to_the_reader(dba):
    """Views keel_api may read run with the reader's rights (security_invoker: the tables' row-level
    security applies to the reader, not to the view's owner, who bypasses it); materialized views cannot
    have row-level security, so keel_api reads none (the control tower reads them through functions that
    check the clinic claim)."""
    rows = dba.execute(
        """
        SELECT c.oid::regclass::text, c.relkind, coalesce(c.reloptions, '{}')
        FROM pg_class AS c
        JOIN pg_namespace AS n ON n.oid = c.relnamespace
        WHERE c.relkind IN ('v', 'm') AND n.nspname = ANY (%(schemas)s)
        ORDER BY 1
        """,
        {"schemas": sorted(OUR_SCHEMAS)},
    ).fetchall()
    assert {kind for _, kind, _ in rows} == {"v", "m"}  # the walk finds both kinds
    readable = [
        (name, kind, options)
        for name, kind, options in rows
        if dba.execute(
            "SELECT has_any_column_privilege('keel_api', %s::regclass, 'SELECT')", (name,)
        ).fetchone()[0]
    ]
    assert readable  # crew_invitations_sent at least
    assert [r for r in readable if r[1] == "m" or "security_invoker=true" not in r[2]] == []


def test_keel_api_reaches_no_sequence(dba):
    """A sequence has no tenant key, so row-level security cannot scope it: its last_value counts every
    tenant's rows (assistant.messages_seq_seq did, to any request session). keel_api may neither read nor
    advance one, today's or one created later in a domain schema (identity columns need no privilege)."""
    granted = """
        SELECT c.oid::regclass::text, p.privilege
        FROM pg_class AS c
        CROSS JOIN unnest(ARRAY['USAGE', 'SELECT', 'UPDATE']) AS p(privilege)
        WHERE c.relkind = 'S' AND has_sequence_privilege('keel_api', c.oid, p.privilege)
    """
    assert dba.execute(granted).fetchall() == []
    assert dba.execute("SELECT count(*) FROM pg_class WHERE relkind = 'S'").fetchone()[0] > 0
    dba.execute("BEGIN")
    try:
        dba.execute("SET LOCAL ROLE keel_owner")
        for schema in ("clinic", "assistant", "callmaster"):
            dba.execute(sql.SQL("CREATE SEQUENCE {}").format(sql.Identifier(schema, "lint_probe_seq")))
        assert dba.execute(granted).fetchall() == []
    finally:
        dba.execute("ROLLBACK")


# The live feed's internals: called only by SECURITY DEFINER entry points (feed triggers, show-run commands,
# live_open*, share links), so they run as the owner; keel_api may not call them itself (issue 13).
LIVE_INTERNALS = [
    "live_append_elements('element.updated', ARRAY[gen_random_uuid()], ARRAY[%(script)s::uuid], NULL)",
    "live_claim_positions(jsonb_build_object(%(script)s::text, 1000000))",
    "live_ring(ARRAY[%(script)s::uuid])",
    "live_open_run(%(script)s)",
    "live_state(%(script)s)",
    "live_replay(%(script)s, 0, 10)",
    "shared_link('sl_guess')",
]


def test_live_feed_internals_are_not_callable_by_the_request_role(dba):
    """Even a script's owner cannot forge feed events, skip feed positions or open a run by calling the
    internals directly: 42501 for each, and the feed is unchanged."""
    owner = add_user(dba, "user_owner")
    script = add_script(dba, add_show(dba, owner))
    head = "SELECT position FROM callmaster.live_feed_heads WHERE script_id = %s"
    before = dba.execute(head, (script,)).fetchone()
    refused = []
    for call in LIVE_INTERNALS:
        dba.execute("BEGIN")
        try:
            dba.execute("SELECT set_config('request.jwt.claims', %s, true)", ('{"sub": "user_owner"}',))
            dba.execute("SET LOCAL ROLE keel_api")
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                dba.execute("SELECT callmaster." + call, {"script": script})
            refused.append(call)
        finally:
            dba.execute("ROLLBACK")
    assert refused == LIVE_INTERNALS
    assert dba.execute(head, (script,)).fetchone() == before
    written = (
        "SELECT (SELECT count(*) FROM callmaster.live_events WHERE script_id = %(s)s),"
        " (SELECT count(*) FROM callmaster.show_runs WHERE script_id = %(s)s)"
    )
    assert dba.execute(written, {"s": script}).fetchone() == (0, 0)
