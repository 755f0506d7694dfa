"""The accounts benchmark's section of docs/benchmarks.md is written from its result alone, against its goals."""

from __future__ import annotations

import copy
from typing import Any

from bench import report
from tests.unit.test_bench_report import _overhead_entry


def _stats(median: float, p99: float) -> dict[str, float]:
    return {"n": 300, "median": median, "p90": p99 - 1, "p95": p99 - 0.5, "p99": p99, "min": 1, "max": p99 + 1}


def _accounts_entry(list_p99: float, open_median: float, accounts_median: float) -> dict[str, Any]:
    entry = copy.deepcopy(_overhead_entry(100))
    entry["command"] = "python -m bench accounts"
    entry["result"] = {
        "users": 100,
        "tasks": 10_000,
        "page": 20,
        "samples": 300,
        "list_ms": _stats(list_p99 / 2, list_p99),
        "list_build_seconds": 31.5,
        "list_first_page_size": 20,
        "list_samples_ms": [1.0, 2.0],
        "status_open_ms": _stats(open_median, open_median + 3),
        "status_accounts_ms": _stats(accounts_median, accounts_median + 3),
        "authorizer_added_median_ms": round(accounts_median - open_median, 3),
    }
    return entry


def test_the_accounts_section_holds_get_tasks_and_the_authorizer_against_their_goals():
    # Given a run that meets both goals, and one that misses both
    met = report.BY_NAME["accounts"].rows(_accounts_entry(list_p99=20, open_median=8, accounts_median=9.5))
    missed = report.BY_NAME["accounts"].rows(_accounts_entry(list_p99=80, open_median=8, accounts_median=20))

    # Then the summary rows say so, with the goals of the issue
    assert [row.met for row in met] == [True, True]
    assert [row.met for row in missed] == [False, False]
    assert [row.goal for row in met] == ["p99 < 50 ms", "added at the median < 5 ms"]
    assert "10,000 tasks of 100 users" in met[0].figure
    assert "+1.50 ms" in met[1].measured

    # And the page has the section, its tables written from the result
    page = report.markdown({"accounts": _accounts_entry(list_p99=20, open_median=8, accounts_median=9.5)})
    assert "## Accounts: `GET /tasks` and the JWT authorizer" in page
    assert "| GET /tasks | 10.0 ms |" in page
    assert "| accounts | 9.50 ms |" in page
