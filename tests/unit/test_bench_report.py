"""docs/benchmarks.md is written from the results alone; the findings cite runs and type no figure.

Pure rendering from small fixtures of results (and the stored docs/benchmarks.json): no benchmark runs.
"""

from __future__ import annotations

import copy
import json
import re
import sys
from pathlib import Path
from typing import Any

import pytest

from bench import __main__ as cli
from bench import machine, report
from infra.settings import REPO_ROOT

DOCS = REPO_ROOT / "docs"
CITATION = re.compile(r"`(\w+)@([0-9a-f]{7,40})`")


def _stats(median: float) -> dict[str, float]:
    return {"median": median, "p90": median + 50, "p99": median + 90, "max": median + 100, "n": 3}


def _overhead_entry(median_ms: float) -> dict[str, Any]:
    """A run of the overhead benchmark as the JSON stores it, with three tasks."""
    sample = {"to_start_ms": 40.0, "beyond_model_ms": 20.0, "finish_to_seen_ms": 10.0}
    return {
        "date": "2030-01-02T03:04:05+00:00",
        "command": "python -m bench overhead",
        "quick": False,
        "revision": "abcdef0",
        "machine": {
            "cpu_model": "Test CPU",
            "logical_cores": 8,
            "ram_gib": 16,
            "os": "Linux",
            "python": "3.12.1",
            "moto": "5",
            "boto3": "1",
            "aws_lambda_powertools": "3",
            "av": "14",
            "pillow": "11",
        },
        "elapsed_s": 12.5,
        "load_average_1min_before": 0.5,
        "load_average_1min_after": 0.7,
        "result": {
            "model_seconds": 3,
            "poll_every_ms": 20,
            "overhead_ms": _stats(median_ms),
            "upload_to_start_ms": _stats(40),
            "beyond_model_time_ms": _stats(20),
            "finish_to_seen_ms": _stats(10),
            "samples": [sample] * 3,
        },
    }


def _findings() -> str:
    return (DOCS / report.FINDINGS_DOC).read_text(encoding="utf-8")


def test_the_page_is_the_report_of_the_stored_results():
    # Given the stored results and the page in docs/
    data = json.loads((DOCS / "benchmarks.json").read_text(encoding="utf-8"))

    # When the page is rendered from the results alone
    page = report.markdown(data)

    # Then it is the page in docs/, to the character: nothing in it was typed by hand
    assert page == (DOCS / "benchmarks.md").read_text(encoding="utf-8")


def test_the_findings_type_no_figure():
    # Given the findings, without their code spans (run citations, commits, paths, commands)
    prose = re.sub(r"`[^`]*`", "", _findings())

    # Then no number is left (names such as p99, boto3 or S3 are not numbers): figures live in benchmarks.json
    assert re.findall(r"\b\d[\d.,]*", prose) == []


def test_the_findings_cite_only_runs_the_results_hold():
    # Given every run the stored results hold, current and replaced
    data = json.loads((DOCS / "benchmarks.json").read_text(encoding="utf-8"))
    held = [(name, data[name]["revision"]) for name in report.BY_NAME if name in data]
    held += [(run["name"], run["revision"]) for run in data.get("history", [])]

    # When the findings cite runs
    cited = CITATION.findall(_findings())

    # Then each names a benchmark and a revision it was run at
    assert cited
    for name, revision in cited:
        assert name in report.BY_NAME, name
        assert any(n == name and r.startswith(revision) for n, r in held), f"{name}@{revision}"


def test_the_page_points_to_the_findings_instead_of_typing_them():
    page = report.markdown({"overhead": _overhead_entry(93)})

    assert f"]({report.FINDINGS_DOC})" in page
    assert (DOCS / report.FINDINGS_DOC).exists()


def test_each_figure_is_read_from_its_result_and_held_against_its_goal():
    # Given one benchmark's results: one within its goal, one missing it
    met = report.markdown({"overhead": _overhead_entry(93)})
    missed = report.markdown({"overhead": _overhead_entry(600)})

    # Then the summary states the measured figures, the goal and whether it was met
    assert "| median 93 ms (p90 143, max 193; n=3) | < 500 ms | yes |" in met
    assert "| median 600 ms (p90 650, max 700; n=3) | < 500 ms | **no** |" in missed
    # And the page describes the machine of the run, and only the benchmarks that ran
    assert "one 8-core machine" in met
    assert "(8 cores; its own work counts)" in met
    assert "## Idle-queue overhead" in met
    assert "![Idle-queue overhead per task](bench-overhead.png)" in met
    assert "## Encode" not in met
    assert "## Earlier runs" not in met


def test_the_gap_of_each_number_of_slots_is_held_against_the_gap_goal():
    # Given a slots run whose gap median meets the goal with one slot and misses it with four
    def point(slots: int, gap_median: float) -> dict[str, Any]:
        return {
            "slots": slots, "tasks": 4 * slots, "span_s": 49.0, "videos_per_hour": 290.0 * slots,
            "ideal_videos_per_hour": 300.0 * slots, "efficiency": 0.97, "gap_ms": _stats(gap_median) | {"n": 12},
            "eta_error_pct": _stats(1.0), "eta_error_signed_pct": [1.0],
        }  # fmt: skip

    result = {"model_seconds": 12, "tasks_per_slot": 4, "points": [point(4, 116), point(1, 48)]}
    entry = _overhead_entry(93) | {"command": "python -m bench slots", "result": result}

    # When the page is rendered
    page = report.markdown({"slots": entry})

    # Then the summary holds each N's gap median against the goal of a gap under 100 ms
    gap = "a slot's finish to its next start"
    assert f"| Gap with 1 slot, {gap} | median 48 ms (n=12) | median < 100 ms | yes |" in page
    assert f"| Gap with 4 slots, {gap} | median 116 ms (n=12) | median < 100 ms | **no** |" in page


def test_a_run_states_the_cpu_time_the_hypervisor_took_meanwhile():
    # Given a run on a shared virtual machine whose hypervisor took a fifth of the CPU time while it ran
    before, after = (1_000, 10), (2_000, 210)
    entry = _overhead_entry(93) | {"cpu_steal_pct": machine.steal_pct(before, after)}
    # Then the page says so beside the load average, and says nothing of it for a run that did not record it
    assert "taken by the hypervisor for other guests (steal) meanwhile: 20%." in report.markdown({"overhead": entry})
    assert "steal" not in report.markdown({"overhead": _overhead_entry(93)})
    assert machine.steal_pct(after, after) is None


def test_a_replaced_run_keeps_its_headline_figures_under_earlier_runs():
    # Given a run that a later one replaced
    earlier = _overhead_entry(600)
    data = {"overhead": _overhead_entry(93), "history": [report.headline("overhead", earlier)]}

    # When the page is rendered
    page = report.markdown(data)

    # Then the earlier run's figures are listed with its date and revision
    earlier_runs = page.split("## Earlier runs", 1)[1]
    assert "| 2030-01-02T03:04:05+00:00 | abcdef0 |" in earlier_runs
    assert "median 600 ms (p90 650, max 700; n=3) | **no** |" in earlier_runs


def test_the_cost_runs_after_the_benchmarks_whose_results_it_reads():
    assert sorted(report.RUN_ORDER) == sorted(b.name for b in report.BENCHMARKS)
    assert report.RUN_ORDER.index("cost") > max(report.RUN_ORDER.index(n) for n in ("overhead", "encode"))


def test_report_rewrites_the_page_and_plots_from_the_json_without_running_anything(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    # Given results stored in a JSON file
    data = {"overhead": _overhead_entry(93)}
    results = tmp_path / "benchmarks.json"
    results.write_text(json.dumps(data), encoding="utf-8")
    stored = results.read_bytes()

    # When `python -m bench --report` runs on it
    monkeypatch.setattr(sys, "argv", ["bench", "--report", "--json", str(results)])
    cli.main()

    # Then the page and the plot are written next to it, and no benchmark ran (the JSON is untouched)
    assert (tmp_path / "benchmarks.md").read_text(encoding="utf-8") == report.markdown(copy.deepcopy(data))
    assert (tmp_path / "bench-overhead.png").stat().st_size > 0
    assert results.read_bytes() == stored


def _scale_point(waiting: int, median: float, gets: float = 2.0) -> dict[str, Any]:
    return {
        "waiting": waiting,
        "queue_position": waiting - 1,
        "eta_seconds": 80 * waiting,
        "latency_ms": _stats(median) | {"p95": median + 70},
        "build_seconds": 1.0,
        "requests_per_call": {"GetItem": gets},
    }


def test_backlog_scale_holds_the_p50_ratio_and_constant_reads_against_their_goals():
    # Given two runs of backlog-scale: one flat, one whose status grew with the line and read more items
    benchmark = report.BY_NAME["backlog-scale"]
    flat = {
        "model_seconds": 80,
        "clients": 250,
        "samples": 3,
        "points": [_scale_point(10, 10), _scale_point(10_000, 11)],
    }
    grown = {"points": [_scale_point(10, 10), _scale_point(10_000, 30, gets=3)]} | {
        key: flat[key] for key in ("model_seconds", "clients", "samples")
    }

    # Then the flat run meets both goals and the grown one neither
    assert [row.met for row in benchmark.figures(flat, benchmark.goals)] == [True, True]
    assert [row.met for row in benchmark.figures(grown, benchmark.goals)] == [False, False]
    assert "1.10x (11.0 / 10.0 ms)" in benchmark.figures(flat, benchmark.goals)[0].measured
