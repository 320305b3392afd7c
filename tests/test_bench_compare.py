"""The bench's regression guard (`python -m bench --compare`): which figures it compares, which way is
better for each, and that only a move beyond the measured noise is flagged."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from bench import compare
from bench.runner import main


def run(mode: str, *rows: tuple[str, str, float | None, str]) -> dict[str, Any]:
    return {
        "mode": mode,
        "machine": {"date": "2026-12-03 06:00 UTC", "loadavg": [0.5, 0.5, 0.5]},
        "results": [
            {"workload": w, "keel": k, "baseline": "x", "ratio": r, "target": t, "passed": None, "note": "",
             "data": {"samples": [1.0, 2.0], "rtt": "0.5 ms RTT"}}
            for w, k, r, t in rows
        ],
    }  # fmt: skip


OLD = run(
    "quick",
    ("booking", "700/s", 2.0, "≥ 2× throughput"),
    ("bulk update", "25.0 ms", 30.0, "≥ 20× faster"),
    ("duplication: 10× elements", "9.00×", 9.0, "Keel ≤ 12×"),
    ("chat", "8.4 ms vs 11.3 ms = 0.75×", 0.75, "Keel ≤ 1.5×"),
    ("live feed", "66.2 ms", 0.9, "feed ≤ 1.5× (ratio ≥ 0.67)"),
    ("hop", "97 µs", 1.5, "(the proxy's own cost)"),
    ("broken", "error", None, ""),
)


def test_figures_are_oriented_by_unit_and_target() -> None:
    figures = compare.figures(OLD)

    assert figures["booking | Keel"] == (700.0, True)  # a rate: higher is better
    assert figures["bulk update | Keel"] == (25.0, False)  # a time: lower is better
    assert figures["booking | ratio"] == (2.0, True)
    assert figures["duplication: 10× elements | ratio"] == (9.0, False)  # "Keel ≤ 12×" bounds it from above
    assert figures["chat | ratio"] == (0.75, False)
    assert figures["live feed | ratio"] == (0.9, True)  # the ratio's own bound is from below
    assert figures["hop | Keel"] == (97.0, False)
    assert "chat | Keel" not in figures  # not a plain figure
    assert not any(name.startswith("broken") for name in figures)


def test_only_moves_beyond_the_noise_the_worse_way_are_regressions() -> None:
    new = run(
        "quick",
        ("booking", "600/s", 2.1, "≥ 2× throughput"),  # rate −14 %: beyond a 10 % threshold
        ("bulk update", "26.0 ms", 29.0, "≥ 20× faster"),  # +4 % time: noise
        ("duplication: 10× elements", "8.00×", 8.0, "Keel ≤ 12×"),  # lower is better: an improvement
        ("chat", "9.0 ms vs 11.3 ms = 0.80×", 1.2, "Keel ≤ 1.5×"),  # 0.75 → 1.2: −37.5 %, beyond 30 %
    )
    limits = {"booking | Keel": 0.10, "bulk update | Keel": 0.10, "booking | ratio": 0.10}

    rows = {r["figure"]: r for r in compare.compare(OLD, new, limits)}

    assert rows["booking | Keel"]["regressed"] and round(rows["booking | Keel"]["change"], 3) == -0.143
    assert not rows["booking | ratio"]["regressed"]
    assert not rows["bulk update | Keel"]["regressed"]
    assert not rows["duplication: 10× elements | ratio"]["regressed"]
    assert rows["duplication: 10× elements | ratio"]["change"] > 0
    assert rows["chat | ratio"]["regressed"] and rows["chat | ratio"]["threshold"] == compare.UNMEASURED
    assert {name for name, r in rows.items() if r["regressed"]} == {"booking | Keel", "chat | ratio"}


def test_noise_from_two_runs_sets_the_thresholds(tmp_path: Path) -> None:
    second = run(
        "quick", ("booking", "640/s", 1.9, "≥ 2× throughput"), ("bulk update", "25.0 ms", 30.0, "≥ 20×")
    )

    noise = compare.measure_noise(OLD, second)
    path = tmp_path / "noise.json"
    path.write_text(json.dumps({"quick": noise}))
    limits = compare.thresholds("quick", path)

    assert noise["spread"]["booking | Keel"] == round(60 / 670, 4)
    assert limits["booking | Keel"] == 2 * noise["spread"]["booking | Keel"]
    assert limits["bulk update | Keel"] == compare.FLOOR  # no spread measured: never below the floor


def test_compare_two_saved_runs_from_the_command_line(tmp_path: Path) -> None:
    old, worse, same = tmp_path / "old.json", tmp_path / "worse.json", tmp_path / "same.json"
    old.write_text(json.dumps(OLD))
    same.write_text(json.dumps(OLD))
    worse.write_text(json.dumps(run("quick", ("booking", "300/s", 1.0, "≥ 2× throughput"))))

    assert main(["--compare", str(old), "--against", str(same)]) == 0
    assert main(["--compare", str(old), "--against", str(worse)]) == 1


def test_the_kept_copy_has_no_raw_samples() -> None:
    kept = compare.slim(OLD)

    assert kept["results"][0]["data"] == {"rtt": "0.5 ms RTT"}
    assert [r["keel"] for r in kept["results"]] == [r["keel"] for r in OLD["results"]]
