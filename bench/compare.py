"""The regression guard: every figure of a run against a saved run, flagged when it moved beyond noise.

A run's figures are, per row: the ratio (oriented by its target: a "≤ …×" bound means lower is better
unless the target says "ratio ≥", anything else higher) and Keel's own figure when it is a rate (`/s`, higher is better) or a time (`µs`,
`ms`, `s`, lower is better). A figure regressed when it moved the worse way by more than its threshold:
twice the spread measured between two back-to-back runs of the same mode (`bench/results/noise.json`,
written by `python -m bench --measure-noise A.json B.json`), at least `FLOOR`; `UNMEASURED` for a
figure the noise runs did not have.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).parent / "results"
LATEST = RESULTS / "latest.json"
NOISE = RESULTS / "noise.json"
FLOOR = 0.10  # no figure is trusted to better than ±10 % on a shared two-core machine
UNMEASURED = 0.30
FIGURE = re.compile(r"^(?P<value>[\d,]+(?:\.\d+)?) ?(?P<unit>/s|µs|ms|s)$")


def load(path: str | Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(Path(path).read_text())
    return data


def slim(run: dict[str, Any]) -> dict[str, Any]:
    """The run without raw samples (what `bench/results/latest.json` keeps): rows, their figures, the machine."""
    keep = ("workload", "keel", "baseline", "ratio", "target", "passed", "note")
    results = []
    for row in run["results"]:
        small = {k: row[k] for k in keep}
        small["data"] = {k: v for k, v in row.get("data", {}).items() if isinstance(v, (int, float, str))}
        results.append(small)
    return {"mode": run["mode"], "machine": run["machine"], "results": results}


def figures(run: dict[str, Any]) -> dict[str, tuple[float, bool]]:
    """`{name: (value, higher_is_better)}` of every comparable figure of a run."""
    out: dict[str, tuple[float, bool]] = {}
    for row in run["results"]:
        if row["keel"] == "error":
            continue
        target = row.get("target") or ""
        if row.get("ratio"):
            bounded_above = "≤" in target and "×" in target and "ratio ≥" not in target
            out[f"{row['workload']} | ratio"] = (float(row["ratio"]), not bounded_above)
        match = FIGURE.match(str(row["keel"]).strip())
        if match:
            value = float(match["value"].replace(",", ""))
            out[f"{row['workload']} | Keel"] = (value, match["unit"] == "/s")
    return out


def measure_noise(first: dict[str, Any], second: dict[str, Any]) -> dict[str, Any]:
    """Per figure, the relative spread |a − b| / mean between two runs of one mode."""
    if first["mode"] != second["mode"]:
        raise ValueError(f"runs of different modes: {first['mode']} and {second['mode']}")
    a, b = figures(first), figures(second)
    spread = {
        name: round(abs(a[name][0] - b[name][0]) / ((a[name][0] + b[name][0]) / 2), 4)
        for name in sorted(a.keys() & b.keys())
        if a[name][0] + b[name][0] > 0
    }
    return {
        "mode": first["mode"],
        "runs": [first["machine"].get("date"), second["machine"].get("date")],
        "loadavg": [first["machine"].get("loadavg"), second["machine"].get("loadavg")],
        "spread": spread,
    }


def thresholds(mode: str, path: Path = NOISE) -> dict[str, float]:
    """Per figure, how far it may move the worse way before it is flagged."""
    if not path.exists():
        return {}
    noise = load(path)
    per_mode = noise.get(mode) or next(iter(noise.values()), {})
    return {name: max(FLOOR, 2 * spread) for name, spread in per_mode.get("spread", {}).items()}


def compare(old: dict[str, Any], new: dict[str, Any], limits: dict[str, float]) -> list[dict[str, Any]]:
    """One row per figure both runs have: old, new, the change the better way (negative: worse), the
    threshold and whether it regressed."""
    before, after = figures(old), figures(new)
    rows = []
    for name in [n for n in after if n in before]:
        (was, higher), (now, _) = before[name], after[name]
        if was == 0:
            continue
        change = now / was - 1 if higher else was / now - 1 if now else float("inf")
        limit = limits.get(name, UNMEASURED)
        rows.append({"figure": name, "old": was, "new": now, "change": change, "threshold": limit,
                     "regressed": change < -limit})  # fmt: skip
    return rows


def report(console: Any, old_path: str, new: dict[str, Any]) -> bool:
    """Print `new` against the saved run at `old_path`; whether any figure regressed beyond noise."""
    old = load(old_path)
    if old["mode"] != new["mode"]:
        console.print(
            f"[yellow]{old_path} is a {old['mode']} run, this is a {new['mode']} run: sizes differ[/]"
        )
    rows = compare(old, new, thresholds(new["mode"]))
    print_comparison(console, rows, old_path)
    return any(r["regressed"] for r in rows)


def print_comparison(console: Any, rows: list[dict[str, Any]], old_label: str) -> None:
    from rich.table import Table

    table = Table(title=f"Against {old_label} (change: + is better; flagged beyond the noise threshold)")
    for name in ("figure", "old", "new", "change", "threshold", "flag"):
        table.add_column(name, overflow="fold")
    for r in rows:
        flag = (
            "[red]REGRESSION[/]"
            if r["regressed"]
            else "[green]better[/]"
            if r["change"] > r["threshold"]
            else ""
        )
        table.add_row(r["figure"], f"{r['old']:,.4g}", f"{r['new']:,.4g}", f"{r['change']:+.0%}",
                      f"±{r['threshold']:.0%}", flag)  # fmt: skip
    console.print(table)
    regressed = sum(r["regressed"] for r in rows)
    console.print(f"{len(rows)} figures compared, {regressed} regressed beyond noise")
