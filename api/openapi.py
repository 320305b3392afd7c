"""The OpenAPI document made exact, by rules applied to every route in one place.

Handlers declare what they take and return; `document_routes(app)` derives the rest of each operation
from what the route is, so a new handler is documented correctly without doing anything:

- error responses, all `application/problem+json` (the `Problem` schema): 400 and 422 when the operation
  takes parameters or a body, 401 and 403 when it requires a token (401 for a signed body), 404 when it
  has a path id, 409 when it writes, 413 when it takes a body, 415 when it reads several media types,
  503 (with `Retry-After`) and 504 when it reaches the database, plus what a handler declares in
  `opt={"error_statuses": (...)}`; Server-Sent Events as `text/event-stream`;
- `security`: the global bearer requirement only where the handler depends on `principal`; anonymous
  operations (`/api/health`, `/api/ready`, the Clerk webhook) say so;
- OpenAPI links from each create (`POST …/xs` answering 201 with an `id`) to every operation whose path
  id names that resource (`x_id`), which Schemathesis' stateful phase and client generators follow.

A handler that reads its body itself says so with `operation_class=raw_body_operation(...)`.
`StrictStructSchemaPlugin` documents request bodies as msgspec validates them: `additionalProperties:
false` for structs that forbid unknown fields, bounds of 0 and constraints on list items, which Litestar
drops. `repair_default_options` makes `OPTIONS` answer every method of a path (litestar#4169).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Iterator
from typing import Any, ClassVar

import msgspec
from litestar import Litestar
from litestar._openapi.schema_generation.plugins import StructSchemaPlugin
from litestar.openapi.datastructures import ResponseSpec
from litestar.openapi.spec import (
    Link,
    OpenAPIHeader,
    OpenAPIMediaType,
    OpenAPIType,
    Operation,
    Parameter,
    Reference,
    RequestBody,
    Schema,
)
from litestar.response import ServerSentEvent
from litestar.routes import HTTPRoute
from litestar.typing import FieldDefinition

WRITE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
ANONYMOUS: list[dict[str, list[str]]] = [{}]


class Problem(msgspec.Struct):
    """An RFC 9457 problem document (`application/problem+json`); more members may follow."""

    title: str
    status: int
    detail: str
    type: str | None = None
    code: str | None = None
    hint: str | None = None
    errors: list[Any] | dict[str, Any] | None = None


ERRORS = {
    400: "The request is malformed or fails validation",
    401: "Missing, expired or invalid bearer token",
    403: "The token's holder may not do this",
    404: "No such record (or it belongs to another tenant)",
    409: "Conflicts with the current state (duplicate, overlap, stale version, status transition)",
    413: "The request body is too large",
    415: "The body's media type is not one the operation reads",
    422: "The request is well-formed but its values are not acceptable",
    429: "Too many requests from this client; slow down",
    503: "The database is unavailable or busy; retry after `Retry-After` seconds",
    504: "The database took too long to answer",
}


SSE_EVENT = Schema(
    type=OpenAPIType.OBJECT,
    description="One Server-Sent Event; `data` is JSON text",
    properties={
        "event": Schema(type=OpenAPIType.STRING),
        "data": Schema(type=OpenAPIType.STRING),
        "id": Schema(type=OpenAPIType.STRING),
    },
    required=["event", "data"],
)


@dataclasses.dataclass(frozen=True)
class Traits:
    """What the document needs to know about one operation."""

    path: str
    method: str
    token: bool  # depends on `principal`
    database: bool  # depends on `db` / `read_db`
    path_ids: tuple[str, ...]
    parameters: bool  # query, header or path parameters, or a body
    body: bool
    several_media_types: bool  # a raw body in more than one media type (anything else is a 415)
    event_stream: bool  # answers Server-Sent Events
    signed: bool  # the body carries a signature in headers
    declared: tuple[int, ...]  # statuses the handler adds in `opt={"error_statuses": (...)}`
    optional_body: bool  # `data` has a default: the body may be left out

    def error_statuses(self) -> list[int]:
        statuses = set(self.declared)
        if self.parameters or self.body:
            statuses |= {400, 422}
        if self.token:
            statuses |= {401, 403}
        if self.signed:
            statuses.add(401)
        if self.path_ids:
            statuses.add(404)
        if self.method in WRITE_METHODS and self.database:
            statuses.add(409)
        if self.body:
            statuses.add(413)
        if self.several_media_types:
            statuses.add(415)
        if self.database:
            statuses |= {503, 504}
        return sorted(statuses)


def _dependency_names(handler: Any) -> set[str]:
    """Every dependency the handler needs, directly or through other dependencies."""
    provided = handler.resolve_dependencies()
    seen: set[str] = set()
    todo = list(handler.parsed_fn_signature.parameters)
    while todo:
        name = todo.pop()
        if name in provided and name not in seen:
            seen.add(name)
            todo.extend(provided[name].parsed_fn_signature.parameters)
    return seen


RESERVED_KWARGS = frozenset(
    {"request", "state", "scope", "headers", "cookies", "query", "body", "socket", "self"}
)  # what Litestar injects itself: not parameters of the operation


def _takes_parameters(handler: Any, dependencies: set[str]) -> bool:
    """Whether the handler or one of its dependencies reads a path, query or header parameter."""
    provided = handler.resolve_dependencies()
    signatures = [handler.parsed_fn_signature, *(provided[name].parsed_fn_signature for name in dependencies)]
    return any(
        name not in provided and name not in RESERVED_KWARGS and name != "data"
        for signature in signatures
        for name in signature.parameters
    )


def raw_body_operation(
    content: dict[str, Schema | Reference], description: str, signature_headers: tuple[str, ...] = ()
) -> type[Operation]:
    """`operation_class` for a handler that reads its body from the request itself: in several media
    types, or to verify a signature over the raw bytes carried in `signature_headers` (required; a bad
    signature is a 401)."""

    @dataclasses.dataclass
    class RawBodyOperation(Operation):
        raw_body: ClassVar[bool] = True
        signed: ClassVar[bool] = bool(signature_headers)
        several_media_types: ClassVar[bool] = len(content) > 1

        def __post_init__(self) -> None:
            self.request_body = RequestBody(
                content={media: OpenAPIMediaType(schema=schema) for media, schema in content.items()},
                description=description,
                required=True,
            )
            if signature_headers:
                self.parameters = [
                    *(self.parameters or []),
                    *(
                        Parameter(
                            name=name,
                            param_in="header",
                            required=True,
                            schema=Schema(type=OpenAPIType.STRING, min_length=1),
                        )
                        for name in signature_headers
                    ),
                ]

    return RawBodyOperation


def _operations(app: Litestar) -> Iterator[tuple[HTTPRoute, str, Any]]:
    for route in app.routes:
        if not isinstance(route, HTTPRoute):
            continue
        for method, (handler, _) in route.route_handler_map.items():
            if method != "OPTIONS" and handler.resolve_include_in_schema():
                yield route, method, handler


def operation_traits(app: Litestar) -> list[Traits]:
    """Traits of every documented operation of `app`."""
    out = []
    for route, method, handler in _operations(app):
        deps = _dependency_names(handler)
        path_ids = tuple(route.path_parameters)
        raw_body = getattr(handler.operation_class, "raw_body", False)
        out.append(
            Traits(
                path=route.path_format,
                method=method,
                token="principal" in deps,
                database=bool(deps & {"db", "read_db"}),
                path_ids=path_ids,
                parameters=bool(path_ids) or _takes_parameters(handler, deps),
                body=raw_body or "data" in handler.parsed_fn_signature.parameters,
                signed=getattr(handler.operation_class, "signed", False),
                several_media_types=getattr(handler.operation_class, "several_media_types", False),
                declared=tuple(handler.opt.get("error_statuses", ())),
                optional_body="data" in handler.parsed_fn_signature.parameters
                and handler.parsed_fn_signature.parameters["data"].has_default,
                event_stream=handler.parsed_fn_signature.return_type.annotation is ServerSentEvent,
            )
        )
    return out


def _creates(traits: Traits) -> str | None:
    """The path id a create's answer fills (`POST /api/shows` → `show_id`), if it is a create."""
    if traits.method != "POST":
        return None
    last = traits.path.rstrip("/").rsplit("/", 1)[-1]
    if last.startswith("{"):
        return None
    return f"{last[:-1]}_id" if last.endswith("s") else f"{last}_id"


def _pointer(path: str, method: str) -> str:
    escaped = path.replace("~", "~0").replace("/", "~1")
    return f"#/paths/{escaped}/{method.lower()}"


def links_for(traits: Traits, everything: Iterable[Traits]) -> dict[str, Link]:
    """Links from a create to every operation using the id it returns (others' ids from this path)."""
    created = _creates(traits)
    if created is None:
        return {}
    links = {}
    for target in everything:
        if created not in target.path_ids:
            continue
        others = [name for name in target.path_ids if name != created]
        if any(name not in traits.path_ids for name in others):
            continue
        parameters = {f"path.{created}": "$response.body#/id"}
        parameters.update({f"path.{name}": f"$request.path.{name}" for name in others})
        name = f"{target.method.lower()}_{target.path.strip('/').replace('/', '_')}"
        links[name.replace("{", "").replace("}", "")] = Link(
            operation_ref=_pointer(target.path, target.method), parameters=parameters
        )
    return links


def _operation_class(base: type[Operation], traits: Traits, links: dict[str, Link]) -> type[Operation]:
    @dataclasses.dataclass
    class DocumentedOperation(base):  # type: ignore[valid-type, misc]
        def __post_init__(self) -> None:
            if hasattr(super(), "__post_init__"):
                super().__post_init__()
            if not traits.token and not self.security:
                self.security = ANONYMOUS
            if traits.optional_body and isinstance(self.request_body, RequestBody):
                self.request_body.required = False
            for status, response in (self.responses or {}).items():
                if isinstance(response, Reference):
                    continue
                if status.startswith("2") and links:
                    response.links = dict(links)
                if status.startswith("2") and traits.event_stream:
                    response.content = {"text/event-stream": OpenAPIMediaType(schema=SSE_EVENT)}
                if status == "503":
                    response.headers = {
                        "Retry-After": OpenAPIHeader(
                            schema=Schema(type=OpenAPIType.STRING),
                            description="Seconds to wait before retrying",
                        )
                    }

    return DocumentedOperation


def repair_default_options(app: Litestar) -> None:
    """Make every automatic `OPTIONS` answer list all of its path's methods.

    Litestar 2 builds a path's default OPTIONS handler for the first route registered there and keeps it
    when later handlers for the same path are merged in, so `Allow` misses their methods
    (litestar#4169, fixed in Litestar 3). The handler reads the methods of the route it closes over:
    point it at the merged route.
    """
    for route in app.routes:
        if not isinstance(route, HTTPRoute) or "OPTIONS" not in route.route_handler_map:
            continue
        handler = route.route_handler_map["OPTIONS"][0]
        if handler.handler_name != "options_handler":
            continue
        for cell in handler.fn.__closure__ or ():
            if isinstance(cell.cell_contents, HTTPRoute):
                cell.cell_contents = route


def document_routes(app: Litestar) -> None:
    """Apply the rules above to every documented operation of `app` (once, before the first `/schema`)."""
    everything = operation_traits(app)
    by_key = {(traits.path, traits.method): traits for traits in everything}
    for route, method, handler in _operations(app):
        traits = by_key[(route.path_format, method)]
        handler.responses = {
            **{
                status: ResponseSpec(
                    data_container=Problem,
                    media_type="application/problem+json",
                    description=ERRORS[status],
                    generate_examples=False,
                )
                for status in traits.error_statuses()
            },
            **{  # a handler's own problem answers keep their description, in the one Problem schema
                status: dataclasses.replace(spec, data_container=Problem)
                if spec.media_type == "application/problem+json"
                else spec
                for status, spec in (handler.responses or {}).items()
            },
        }
        handler.operation_class = _operation_class(
            handler.operation_class, traits, links_for(traits, everything)
        )


_BOUNDS = {  # msgspec constraint → OpenAPI schema attribute, per kind of type
    "number": {"ge": "minimum", "le": "maximum", "gt": "exclusive_minimum", "lt": "exclusive_maximum"},
    "string": {"min_length": "min_length", "max_length": "max_length", "pattern": "pattern"},
    "array": {"min_length": "min_items", "max_length": "max_items"},
}


def _apply_constraints(schema: Schema, info: msgspec.inspect.Type) -> None:
    """Copy msgspec's constraints onto the schema where Litestar left them out (a bound of 0, or
    anything on the items of a list)."""
    inspect = msgspec.inspect
    if isinstance(info, inspect.UnionType):
        for member in info.types:
            _apply_constraints(schema, member)
        return
    if isinstance(info, inspect.IntType | inspect.FloatType):
        kind = "number"
    elif isinstance(info, inspect.StrType):
        kind = "string"
    elif isinstance(info, inspect.ListType | inspect.SetType | inspect.FrozenSetType | inspect.VarTupleType):
        kind = "array"
    else:
        return
    for source, target in _BOUNDS[kind].items():
        value = getattr(info, source)
        if value is not None and getattr(schema, target) is None:
            setattr(schema, target, value)
    if kind == "array":
        arrays = [schema, *(option for option in schema.one_of or () if isinstance(option, Schema))]
        for option in arrays:
            if isinstance(option.items, Schema):
                _apply_constraints(option.items, info.item_type)


class StrictStructSchemaPlugin(StructSchemaPlugin):
    """Litestar's struct schemas, plus `additionalProperties: false` and every constraint msgspec checks."""

    def to_openapi_schema(self, field_definition: FieldDefinition, schema_creator: Any) -> Schema:
        schema = super().to_openapi_schema(field_definition, schema_creator)
        info = msgspec.inspect.type_info(field_definition.type_)
        if not isinstance(info, msgspec.inspect.StructType):
            return schema
        if info.forbid_unknown_fields:
            schema.additional_properties = False
        for field in info.fields:
            prop = (schema.properties or {}).get(field.encode_name)
            if isinstance(prop, Schema):
                _apply_constraints(prop, field.type)
        return schema
