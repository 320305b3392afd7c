"""docs/schema.sql is the schema the migrations and sql/ produce (regenerate it with `make schema`)."""

from __future__ import annotations

from tests.schema_dump import HEADER, SCHEMA_FILE, diff, dump_schema, normalise


def test_checked_in_schema_is_what_the_migrations_produce(db_url: str) -> None:
    actual = dump_schema(db_url)
    expected = SCHEMA_FILE.read_text()
    assert actual == expected, "docs/schema.sql is stale: run `make schema` and commit it\n" + diff(
        expected, actual
    )


def test_normalise_keeps_the_schema_and_drops_what_varies_by_run_and_server() -> None:
    dump = (
        "--\n-- Dumped from database version 15.14\n-- Dumped by pg_dump version 18.6\n\\restrict Xy12\n"
        "SET statement_timeout = 0;\nSELECT pg_catalog.set_config('search_path', '', false);\n\n\n\n"
        "CREATE TABLE s.t (x integer);\n\n"
        "CREATE MATERIALIZED VIEW s.v AS\n SELECT a.x,\n    count(*) FILTER (WHERE (a.x > 0)) AS n\n"
        "   FROM s.t a\n  GROUP BY a.x\n  WITH NO DATA;\n\n"
        "CREATE VIEW s.w AS\n SELECT a.x,\n    b.x AS y\n   FROM (s.t a\n     JOIN s.t b ON ((b.x = a.x)));\n\n"
        "CREATE VIEW s.u AS\n SELECT t.x,\n    t.x AS y\n   FROM s.t;\n"
        "\\unrestrict Xy12\n"
    )
    assert normalise(dump) == HEADER + (
        "\n--\n\nCREATE TABLE s.t (x integer);\n\n"
        "CREATE MATERIALIZED VIEW s.v AS\n SELECT x,\n    count(*) FILTER (WHERE (x > 0)) AS n\n"
        "   FROM s.t a\n  GROUP BY x\n  WITH NO DATA;\n\n"
        "CREATE VIEW s.w AS\n SELECT a.x,\n    b.x AS y\n   FROM (s.t a\n     JOIN s.t b ON ((b.x = a.x)));\n\n"
        "CREATE VIEW s.u AS\n SELECT x,\n    x AS y\n   FROM s.t;\n"
    )
