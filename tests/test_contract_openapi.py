"""Issue 14: the OpenAPI document is exact — every answer the API gives is described, as given.

The outside Schemathesis run found: undocumented 401/403/404/409/422/503, problem bodies documented as
`application/json`, bodies rejecting unknown members without `additionalProperties: false`, `ge=0`
bounds dropped, no request body for `POST /api/leads/import`, `/api/health` and `/api/ready` behind the
global bearer requirement, `Allow` headers missing methods, a CSV with a duplicated column accepted. Each
is asserted here over the whole served document (tests/test_reliability_fuzz.py fuzzes it).
"""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.contract_support import operations, resolve
from tests.factories import KEYS_ONE, assert_problem
from tests.fixtures import ClinicAdmin

PROBLEM = {"$ref": "#/components/schemas/Problem"}


@pytest.fixture
def settings_overrides() -> dict[str, Any]:
    return {"encryption_keys": KEYS_ONE}


@pytest.fixture
async def doc(client: httpx.AsyncClient) -> dict[str, Any]:
    return (await client.get("/schema/openapi.json")).json()


async def test_every_error_is_a_documented_problem(doc: dict[str, Any]) -> None:
    for path, method, op in operations(doc):
        responses = op["responses"]
        secured = op.get("security") != [{}]
        statuses = set(responses)
        if secured:
            assert {"401", "403", "503"} <= statuses, (method, path, statuses)
        if "{" in path:
            assert "404" in statuses, (method, path)
        if op.get("parameters") or op.get("requestBody"):
            assert {"400", "422"} <= statuses, (method, path)
        for status, response in responses.items():
            if status.startswith(("4", "5")):
                assert response["content"] == {"application/problem+json": {"schema": PROBLEM}}, (
                    path,
                    status,
                )
    problem = doc["components"]["schemas"]["Problem"]
    assert set(problem["required"]) == {"title", "status", "detail"}


async def test_ops_endpoints_are_anonymous_in_the_document_and_in_fact(
    doc: dict[str, Any], client: httpx.AsyncClient
) -> None:
    assert doc["security"] == [{"BearerToken": []}]
    for path in ("/api/health", "/api/ready"):
        assert doc["paths"][path]["get"]["security"] == [{}]
        assert (await client.get(path)).status_code == 200
    assert doc["paths"]["/api/leads"]["get"].get("security") is None  # the global requirement applies


async def test_request_bodies_are_closed_and_keep_their_bounds(doc: dict[str, Any]) -> None:
    bodies = set()
    for _, _, op in operations(doc):
        schema = op.get("requestBody", {}).get("content", {}).get("application/json", {}).get("schema", {})
        if "$ref" in schema:
            bodies.add(schema["$ref"].rsplit("/", 1)[-1])
    assert len(bodies) > 20
    for name in bodies:
        assert doc["components"]["schemas"][name]["additionalProperties"] is False, name
    schemas = doc["components"]["schemas"]
    assert schemas["LeadCreate"]["properties"]["age"]["minimum"] == 0
    assert schemas["ElementCreate"]["properties"]["sequence"]["minimum"] == 0
    assert schemas["VenueCreate"]["properties"]["capacity"]["minimum"] == 0
    equipment = schemas["VenuePatch"]["properties"]["equipment"]["oneOf"][0]["items"]
    assert equipment["minLength"] == 1
    bulk = doc["paths"]["/api/scripts/{script_id}/elements"]["patch"]["requestBody"]["content"]
    assert bulk["application/json"]["schema"]["minItems"] == 1


async def test_lead_import_documents_its_bodies(doc: dict[str, Any]) -> None:
    body = doc["paths"]["/api/leads/import"]["post"]["requestBody"]
    assert body["required"] is True
    assert set(body["content"]) == {"application/json", "text/csv", "multipart/form-data"}
    rows = body["content"]["application/json"]["schema"]["oneOf"][0]
    assert resolve(doc, rows["items"])["title"] == "LeadCreate"
    assert "415" in doc["paths"]["/api/leads/import"]["post"]["responses"]


async def test_creates_link_to_the_operations_using_their_id(doc: dict[str, Any]) -> None:
    links = doc["paths"]["/api/shows/{show_id}/scripts"]["post"]["responses"]["201"]["links"]
    target = links["get_api_scripts_script_id"]
    assert target["operationRef"] == "#/paths/~1api~1scripts~1{script_id}/get"
    assert target["parameters"] == {"path.script_id": "$response.body#/id"}
    assert "get_api_leads_lead_id" in doc["paths"]["/api/leads"]["post"]["responses"]["201"]["links"]


async def test_show_dates_are_validated_before_postgresql(
    doc: dict[str, Any], client: httpx.AsyncClient, bearer: Any, dba: Any
) -> None:
    dba.execute("INSERT INTO callmaster.users (clerk_user_id, email) VALUES ('user_dates', 'd@example.com')")
    headers = bearer("user_dates")
    for bad, status in (("2026-13-01", 400), ("2026-02-30", 422), ("2026-05-01T25:00", 400)):
        response = await client.post("/api/shows", headers=headers, json={"name": "Hamlet", "show_date": bad})
        assert "date/time field value out of range" not in assert_problem(response, status)["detail"]
    assert dba.execute("SELECT count(*) FROM callmaster.shows").fetchone()[0] == 0
    response = await client.post(
        "/api/shows", headers=headers, json={"name": "Hamlet", "show_date": "2026-02-28"}
    )
    assert response.status_code == 201


async def test_options_allow_lists_every_method_of_the_path(
    doc: dict[str, Any], client: httpx.AsyncClient
) -> None:
    for path, item in doc["paths"].items():
        url = path.replace("{", "").replace("}", "")
        url = "/".join(
            "00000000-0000-4000-8000-000000000000" if part.endswith("_id") else part
            for part in url.split("/")
        )
        response = await client.options(url)
        allowed = {method.strip() for method in response.headers["allow"].split(",")}
        assert allowed == {*(method.upper() for method in item), "OPTIONS"}, path


async def test_csv_with_a_duplicated_column_is_refused(
    client: httpx.AsyncClient, clinic_a: ClinicAdmin
) -> None:
    csv = "name,phone,Name\nMeera,+91 98470 12345,Other\n"
    response = await client.post(
        "/api/leads/import", headers={**clinic_a.headers, "Content-Type": "text/csv"}, content=csv
    )
    body = assert_problem(response, 422)
    assert body["duplicated_columns"] == ["name"]
    assert (await client.get("/api/leads", headers=clinic_a.headers)).json()["total"] == 0
