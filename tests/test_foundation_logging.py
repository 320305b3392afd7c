"""Logs are JSON lines carrying the request id when stderr is not a terminal."""

from __future__ import annotations

import json
import logging

from api.observability import configure_logging, request_id_var


def test_json_log_lines_carry_the_request_id(capsys):
    root = logging.getLogger()
    saved = (root.handlers[:], root.level)
    try:
        configure_logging("INFO", "json")
        token = request_id_var.set("req-42")
        try:
            logging.getLogger("keel.test").info("booked", extra={"appointment_id": "a1"})
        finally:
            request_id_var.reset(token)
        line = capsys.readouterr().err.strip().splitlines()[-1]
    finally:
        root.handlers[:], root.level = saved[0], saved[1]
    record = json.loads(line)
    assert record["message"] == "booked"
    assert record["request_id"] == "req-42"
    assert record["appointment_id"] == "a1"
    assert record["levelname"] == "INFO"
