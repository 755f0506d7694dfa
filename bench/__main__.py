"""python -m bench [NAME ...] [--quick] [--report]: run benchmarks, save docs/benchmarks.json, write docs/benchmarks.md.

With no NAME every benchmark runs. Results of benchmarks not run this time are kept from the JSON, so a
single figure can be re-measured; --report only rewrites the markdown and plots from the JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
import traceback
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench import machine, report
from infra.settings import REPO_ROOT

DOCS = REPO_ROOT / "docs"
RESULTS = DOCS / "benchmarks.json"
BUSY_LOAD = 1.0  # 1-minute load average above which the machine is not quiet (it includes the last benchmark)


def _revision() -> str:
    def git(*args: str) -> str:
        done = subprocess.run(["git", *args], cwd=REPO_ROOT, capture_output=True, text=True, check=False)
        return done.stdout.strip()

    commit = git("rev-parse", "--short", "HEAD") or "unknown"
    return f"{commit}{' + uncommitted changes' if git('status', '--porcelain', '--untracked-files=no') else ''}"


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.splitlines()[0])
    parser.add_argument("names", nargs="*", metavar="NAME", help=f"any of {', '.join(report.RUN_ORDER)} (default: all)")
    parser.add_argument("--quick", action="store_true", help="fewer samples (a few minutes less; same goals)")
    parser.add_argument("--report", action="store_true", help="only rewrite docs/benchmarks.md and plots from the JSON")
    parser.add_argument("--json", type=Path, default=RESULTS, help=f"results file (default {RESULTS})")
    args = parser.parse_args()
    unknown = sorted(set(args.names) - set(report.RUN_ORDER))
    if unknown:
        parser.error(f"unknown benchmark {', '.join(unknown)}; choose from {', '.join(report.RUN_ORDER)}")
    data: dict[str, Any] = json.loads(args.json.read_text(encoding="utf-8")) if args.json.exists() else {}
    failed: list[str] = []
    if not args.report:
        command = " ".join(["python -m bench", *sys.argv[1:]])
        revision = _revision()
        for name in args.names or report.RUN_ORDER:
            print(f"bench: {name} ...", flush=True)
            load_before = os.getloadavg()[0]  # other work on the machine skews the figures: say so
            if load_before > BUSY_LOAD:
                print(f"bench: warning: load average {load_before:.2f}: other work may skew the figures", flush=True)
            began, ticks_before = time.monotonic(), machine.cpu_ticks()
            try:
                result = report.BY_NAME[name].run(args.quick, data)
            except Exception:  # the other benchmarks still run; the exit status tells
                traceback.print_exc()
                failed.append(name)
                continue
            if name in data:  # its headline figures stay in the history, for before/after comparisons
                data.setdefault("history", []).append(report.headline(name, data[name]))
            data[name] = {
                "date": datetime.now(UTC).isoformat(timespec="seconds"),
                "command": command,
                "quick": args.quick,
                "revision": revision,
                "machine": machine.describe(),
                "elapsed_s": round(time.monotonic() - began, 1),
                "load_average_1min_before": round(load_before, 2),
                "load_average_1min_after": round(os.getloadavg()[0], 2),
                "cpu_steal_pct": machine.steal_pct(ticks_before, machine.cpu_ticks()),
                "result": result,
            }
            print(f"bench: {name} done in {data[name]['elapsed_s']} s", flush=True)
            args.json.parent.mkdir(parents=True, exist_ok=True)
            args.json.write_text(json.dumps(data, indent=1) + "\n", encoding="utf-8")
    if not data:
        parser.error(f"no results in {args.json}: run a benchmark first")
    written = report.write(data, args.json.parent)
    for path in written:
        print(f"bench: wrote {path.relative_to(REPO_ROOT) if path.is_relative_to(REPO_ROOT) else path}")
    if failed:
        sys.exit(f"bench: failed: {', '.join(failed)}")


if __name__ == "__main__":
    main()
