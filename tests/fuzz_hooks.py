"""Schemathesis hooks for the fuzz suite (loaded through SCHEMATHESIS_HOOKS=tests.fuzz_hooks).

Path ids: half of the generated cases keep Schemathesis' random id (→ 404), half use the seeded row of
that name (`KEEL_FUZZ_IDS`, JSON), so operations reach real records. Only well-formed UUIDs are
replaced: a deliberately malformed id (negative testing) stays as generated.
"""

from __future__ import annotations

import json
import os
import uuid
from typing import Any

import hypothesis.strategies as st
import schemathesis

SEEDED: dict[str, str] = json.loads(os.environ.get("KEEL_FUZZ_IDS", "{}"))


def _is_uuid(value: Any) -> bool:
    try:
        uuid.UUID(str(value))
    except ValueError:
        return False
    return True


@schemathesis.hook
def flatmap_path_parameters(context: Any, path_parameters: dict[str, Any] | None) -> Any:
    if not path_parameters:
        return st.just(path_parameters)
    seeded = {
        name: SEEDED[name]
        for name, value in path_parameters.items()
        if name in SEEDED and isinstance(value, str) and _is_uuid(value)
    }
    if not seeded:
        return st.just(path_parameters)
    return st.sampled_from([{**path_parameters, **seeded}, path_parameters])
