"""docs/benchmarks.md and its plots, written from docs/benchmarks.json: no figure in the doc is typed by hand."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import itertools

import matplotlib.pyplot as plt  # after choosing the headless backend
from matplotlib.ticker import NullFormatter, ScalarFormatter

GOALS_MS = {"ApiFunction": 300, "StatusFunction": 300, "ProcessorFunction": 1000}
PLOTS = {
    "overhead": "bench-overhead.png",
    "backlog": "bench-backlog.png",
    "status": "bench-status-latency.png",
    "coldstart": "bench-coldstart.png",
}


@dataclass(frozen=True)
class Row:
    figure: str
    measured: str
    goal: str
    met: bool | None  # None: a figure that is stated, with no goal


def _mb(size: float) -> str:
    return f"{size / 1e6:.1f} MB"


def _mib(size: float) -> str:
    """Lambda's quotas ("250 MB", "50 MB") are in MiB: 262,144,000 and 52,428,800 bytes."""
    return f"{size / 2**20:.1f} MiB"


def rows(name: str, entry: dict[str, Any]) -> list[Row]:
    """The headline figures of one benchmark, against their goals."""
    r = entry["result"]
    if name == "overhead":
        o = r["overhead_ms"]
        return [
            Row(
                f"Idle-queue overhead (upload → SUCCESS seen - {r['model_seconds']:g} s model)",
                f"median {o['median']:.0f} ms (p90 {o['p90']:.0f}, max {o['max']:.0f}; n={o['n']})",
                "< 500 ms",
                o["median"] < 500,
            )
        ]
    if name == "backlog":
        g = r["gap_ms"]
        return [
            Row(
                f"Model utilisation, backlog of {r['tasks']} x {r['model_seconds']:g} s{_of_bursts(r)}",
                f"{r['utilisation']:.4f} ({r['utilisation_at_template_model']:.4f} projected at the template's "
                f"{r['template_model_seconds']:g} s model)",
                "≥ 0.97",
                r["utilisation"] >= 0.97,
            ),
            Row(
                "Gap between one task's finish and the next one's start",
                f"median {g['median']:.0f} ms, p99 {g['p99']:.0f} ms (n={g['n']})",
                "median < 100 ms",
                g["median"] < 100,
            ),
        ]
    if name == "status":
        s, c = r["sequential_ms"], r["concurrent_ms"]
        return [
            Row(
                "`GET /status` sequential",
                f"p50 {s['median']:.1f} ms, p99 {s['p99']:.1f} ms (n={s['n']}, errors {r['sequential_errors']})",
                "p99 < 30 ms",
                s["p99"] < 30 and r["sequential_errors"] == 0,
            ),
            Row(
                f"`GET /status` with {r['clients']} concurrent clients",
                f"p50 {c['median']:.0f} ms, p99 {c['p99']:.0f} ms, errors {r['concurrent_errors']} "
                f"(n={c['n']}, {r['concurrent_requests_per_second']:.0f} req/s)",
                "0 errors",
                r["concurrent_errors"] == 0,
            ),
        ]
    if name == "coldstart":
        found = []
        for function, f in r["functions"].items():
            cold, warm = f["cold_total_ms"], f["warm_invocation_ms"]
            goal = GOALS_MS.get(function)
            found.append(
                Row(
                    f"{function} cold init (import + first invocation); warm invocation",
                    f"{cold['median']:.0f} ms (import {f['import_ms']['median']:.0f} + first "
                    f"{f['first_invocation_ms']['median']:.0f}; max {cold['max']:.0f}); "
                    f"warm p50 {warm['median']:.1f} ms",
                    f"< {goal} ms" if goal else "stated",
                    cold["median"] < goal if goal else None,
                )
            )
        return found
    if name == "encode":
        return [
            Row(
                "Encode of a 3 s 1280x720 clip on one core",
                f"median {r['median_s']:.2f} s (p90 {r['p90_s']:.2f}, n={r['runs']})",
                "< 3 s",
                r["median_s"] < 3,
            )
        ]
    if name == "package":
        return [
            Row(
                f"{function} package{' + ' + ', '.join(f['layers']) if f['layers'] else ''}, unzipped / zipped",
                f"{_mib(f['with_layers_unzipped_bytes'])} / {_zips(f, r)}",
                f"< {_mib(r['unzipped_limit_bytes'])} / < {_mib(r['direct_upload_limit_bytes'])} each (direct upload)",
                f["within_unzipped_limit"] and f["within_direct_upload_limit"],
            )
            for function, f in r["functions"].items()
        ]
    if name == "cost":
        return [
            Row(
                "Cost on AWS (us-east-1)",
                f"${r['per_1000_videos_usd']:.2f} per 1,000 videos; ${r['idle_month_usd']:.2f} per idle month",
                "stated",
                None,
            )
        ]
    raise ValueError(f"unknown benchmark {name}")


def headline(name: str, entry: dict[str, Any]) -> dict[str, Any]:
    """What the history keeps of a run that is being replaced."""
    return {
        "name": name,
        "date": entry["date"],
        "revision": entry.get("revision", "unknown"),
        "rows": [asdict(row) for row in rows(name, entry)],
    }


# ---- plots ---------------------------------------------------------------------------------------
def _plot_overhead(r: dict[str, Any], path: Path) -> None:
    samples = r["samples"]
    parts = [
        ("to_start_ms", "upload → model starts", "#4c72b0"),
        ("beyond_model_ms", "task time beyond the model", "#dd8452"),
        ("finish_to_seen_ms", "finished → SUCCESS seen by the poller", "#55a868"),
    ]
    fig, ax = plt.subplots(figsize=(8, 0.35 * len(samples) + 1.6))
    left = [0.0] * len(samples)
    for key, label, colour in parts:
        values = [sample[key] for sample in samples]
        ax.barh(range(len(samples)), values, left=left, label=label, color=colour)
        left = [a + b for a, b in zip(left, values, strict=True)]
    ax.axvline(500, color="#c44e52", linestyle="--", label="goal: 500 ms")
    ax.set_yticks(range(len(samples)), [f"task {i + 1}" for i in range(len(samples))])
    ax.invert_yaxis()
    ax.set_xlabel("ms beyond the model time")
    ax.set_title(f"Idle-queue overhead, one task at a time ({r['model_seconds']:g} s model)")
    ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _of_bursts(r: dict[str, Any]) -> str:
    rounds = r.get("rounds", 1)
    return f", median of {rounds} bursts" if rounds > 1 else ""


def _plot_backlog(r: dict[str, Any], path: Path) -> None:
    timeline = r["timeline"]
    fig, ax = plt.subplots(figsize=(9, 0.35 * len(timeline) + 1.6))
    for i, task in enumerate(timeline):
        ax.barh(i, task["started"] - task["uploaded"], left=task["uploaded"], color="#c9d3e6")
        ax.barh(i, task["finished"] - task["started"], left=task["started"], color="#4c72b0")
    for earlier, later in itertools.pairwise(timeline):
        gap_ms = (later["started"] - earlier["finished"]) * 1000
        ax.annotate(f"{gap_ms:.0f} ms", (later["started"], timeline.index(later) - 0.45), fontsize=7, ha="center")
    ax.set_yticks(range(len(timeline)), [f"task {i + 1}" for i in range(len(timeline))])
    ax.invert_yaxis()
    ax.set_xlabel("seconds since the first task entered the model")
    ax.set_title(
        f"Backlog of {r['tasks']}{_of_bursts(r)}: waiting (light) and in the model (dark); "
        f"utilisation {r['utilisation']:.3f}, labels = idle gap before each task"
    )
    ax.title.set_fontsize(9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _plot_status(r: dict[str, Any], path: Path) -> None:
    fig, ax = plt.subplots(figsize=(8, 4))
    for key, label in (
        ("sequential_samples_ms", "one client, back to back"),
        ("concurrent_samples_ms", f"{r['clients']} concurrent clients"),
    ):
        values = sorted(r[key])
        ax.plot(values, [(i + 1) / len(values) for i in range(len(values))], label=f"{label} (n={len(values)})")
    ax.axvline(30, color="#c44e52", linestyle="--", label="goal: sequential p99 < 30 ms")
    ax.axhline(0.99, color="grey", linestyle=":", linewidth=1)
    ax.set_xscale("log")
    every = r["sequential_samples_ms"] + r["concurrent_samples_ms"]
    ax.set_xticks(
        [t for t in (5, 10, 20, 30, 50, 100, 200, 500, 1000, 2000, 5000) if min(every) / 2 <= t <= max(every) * 2]
    )
    ax.xaxis.set_major_formatter(ScalarFormatter())
    ax.xaxis.set_minor_formatter(NullFormatter())
    ax.set_xlabel("GET /status latency, ms (log scale)")
    ax.set_ylabel("fraction of requests")
    ax.set_title("GET /status latency distribution (a QUEUED task, one ahead of it)")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _plot_coldstart(r: dict[str, Any], path: Path) -> None:
    names = list(r["functions"])
    imports = [r["functions"][name]["import_ms"]["median"] for name in names]
    firsts = [r["functions"][name]["first_invocation_ms"]["median"] for name in names]
    fig, ax = plt.subplots(figsize=(8, 3.2))
    ax.barh(names, imports, color="#4c72b0", label="import (init)")
    ax.barh(names, firsts, left=imports, color="#dd8452", label="first invocation")
    for i, name in enumerate(names):
        goal = GOALS_MS.get(name)
        if goal:
            ax.plot([goal, goal], [i - 0.4, i + 0.4], color="#c44e52", linestyle="--")
    ax.plot([], [], color="#c44e52", linestyle="--", label="goal")
    ax.invert_yaxis()
    ax.set_xlabel("ms (median of fresh processes, one core)")
    ax.set_title("Cold init per function")
    ax.legend(fontsize=8, loc="upper right")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


_PLOTTERS = {"overhead": _plot_overhead, "backlog": _plot_backlog, "status": _plot_status, "coldstart": _plot_coldstart}


# ---- markdown ------------------------------------------------------------------------------------
def _table(header: list[str], body: list[list[Any]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in body]
    return "\n".join(lines)


def _met(met: bool | None) -> str:
    return "—" if met is None else ("yes" if met else "**no**")


def _stats_row(label: str, s: dict[str, Any], unit: str = "ms") -> list[Any]:
    return [label, f"{s['median']:.1f} {unit}", f"{s['p90']:.1f}", f"{s['p99']:.1f}", f"{s['max']:.1f}", s["n"]]


_STATS_HEADER = ["", "median", "p90", "p99", "max", "n"]


def _provenance(entry: dict[str, Any]) -> str:
    quick = " (quick mode)" if entry.get("quick") else ""
    before, after = entry.get("load_average_1min_before"), entry.get("load_average_1min_after")
    busy = f" 1-minute load average before/after: {before:g}/{after:g} (2 cores; its own work counts)." if after else ""
    return (
        f"*Measured {entry['date']} at revision {entry.get('revision', 'unknown')} with `{entry['command']}`{quick}, "
        f"in {entry['elapsed_s']} s.{busy}*"
    )


def _overhead_section(entry: dict[str, Any]) -> str:
    r = entry["result"]
    return "\n\n".join(
        [
            "## Idle-queue overhead",
            _provenance(entry),
            f"One task at a time on an empty queue, {len(r['samples'])} times (after one warm-up task). "
            f"The model takes {r['model_seconds']:g} s (the encode, about 1.5 s, runs inside it). The clock starts "
            "when the storage answers the presigned POST and stops at the first `GET /status` response showing "
            f"SUCCESS, polled every {r['poll_every_ms']:.0f} ms on a keep-alive connection. The overhead splits "
            "exactly into the parts below, using started_at and finished_at from the status JSON.",
            _table(
                _STATS_HEADER,
                [
                    _stats_row("upload answered → started_at", r["upload_to_start_ms"]),
                    _stats_row("finished_at - started_at - model time", r["beyond_model_time_ms"]),
                    _stats_row("finished_at → SUCCESS seen", r["finish_to_seen_ms"]),
                    _stats_row("**overhead**", r["overhead_ms"]),
                ],
            ),
            f"![Idle-queue overhead per task]({PLOTS['overhead']})",
        ]
    )


def _backlog_section(entry: dict[str, Any]) -> str:
    r = entry["result"]
    seen = r["gap_seen_by_poller_ms"]
    return "\n\n".join(
        [
            "## Backlog: model utilisation and the gap between tasks",
            _provenance(entry),
            f"{r['tasks']} uploads in a burst (after one warm-up task); the model takes {r['model_seconds']:g} s. "
            "Utilisation = model time x tasks / (last finished_at - first started_at); a gap is the next task's "
            f"started_at - the previous task's finished_at. {r.get('rounds', 1)} burst(s), each once the last has "
            "drained: the utilisation, span and timeline are the median burst's (by span), the gaps and task times "
            "those of every burst. The cross-check polls the running task and the next one "
            f"every {r['poll_every_ms']:.0f} ms: its gap is the first response showing the next task PROCESSING - "
            "the first showing the previous SUCCESS (so it carries ± one poll of noise).",
            _table(
                ["", "value"],
                [
                    ["utilisation", f"{r['utilisation']:.4f}"],
                    ["utilisation of each burst", ", ".join(f"{u:.4f}" for u in r.get("utilisation_per_round", []))],
                    ["span (first start → last finish)", f"{r['span_s']:.3f} s"],
                    ["overhead per task (span / tasks - model time)", f"{r['overhead_per_task_ms']:.1f} ms"],
                    [
                        f"utilisation, same overhead, the template's {r['template_model_seconds']:g} s model",
                        f"{r['utilisation_at_template_model']:.4f}",
                    ],
                    ["tasks ran in upload order", "yes" if r["in_upload_order"] else "**no**"],
                ],
            ),
            _table(
                _STATS_HEADER,
                [
                    _stats_row("gap (status timestamps)", r["gap_ms"]),
                    *([_stats_row("gap seen by the poller", seen)] if seen else []),
                    _stats_row("task time beyond the model", r["task_time_beyond_model_ms"]),
                ],
            ),
            f"![Backlog timeline]({PLOTS['backlog']})",
        ]
    )


def _status_section(entry: dict[str, Any]) -> str:
    r = entry["result"]
    head = ["", "p50", "p90", "p99", "max", "n", "errors"]

    def line(label: str, s: dict[str, Any], errors: int) -> list[Any]:
        return [label, f"{s['median']:.1f} ms", f"{s['p90']:.1f}", f"{s['p99']:.1f}", f"{s['max']:.1f}", s["n"], errors]

    examples = r["concurrent_error_examples"]
    return "\n\n".join(
        [
            "## `GET /status` latency",
            _provenance(entry),
            f"The polled task is {r['polled_task']['state']} with {r['polled_task']['queue_position']} task ahead "
            "(the most a status costs: the task, the count of tasks ahead, the head's start for the ETA), while the "
            "task ahead is in the model after its encode. Each client keeps one HTTP/1.1 connection open, as a "
            "browser does; the latency is request sent → response read, on the client.",
            _table(
                head,
                [
                    line("one client, back to back", r["sequential_ms"], r["sequential_errors"]),
                    line(f"{r['clients']} clients at once", r["concurrent_ms"], r["concurrent_errors"]),
                ],
            ),
            f"Throughput with {r['clients']} clients: {r['concurrent_requests_per_second']:.0f} requests/s. "
            f"States the responses showed: {', '.join(r['states_seen'])}."
            + (f" Errors, e.g.: {'; '.join(examples)}" if examples else ""),
            f"![GET /status latency]({PLOTS['status']})",
        ]
    )


def _coldstart_section(entry: dict[str, Any]) -> str:
    r = entry["result"]
    body = []
    for name, f in r["functions"].items():
        goal = GOALS_MS.get(name)
        body.append(
            [
                name,
                f"{f['memory_mb']} MB",
                f"{f['import_ms']['median']:.0f} ms",
                f"{f['first_invocation_ms']['median']:.0f} ms",
                f"{f['cold_total_ms']['median']:.0f} ms (max {f['cold_total_ms']['max']:.0f})",
                f"{f['warm_invocation_ms']['median']:.1f} ms (p99 {f['warm_invocation_ms']['p99']:.1f})",
                f"< {goal} ms" if goal else "—",
                f"{f['does']} → {', '.join(f['answers'])}",
            ]
        )
    return "\n\n".join(
        [
            "## Cold init and warm invocations",
            _provenance(entry),
            f"Each sample is a fresh Python {entry['machine']['python']} process pinned to one core (CPU "
            f"{r['pinned_cpu']}), with the function's environment from the template pointed at a running local "
            "stack's moto endpoint. It imports the handler (Lambda's init phase), invokes it once with the sample "
            f"event (cold) and then {r['warm_invocations_per_sample']} more times (warm). Medians of "
            f"{r['samples']} processes; interpreter start-up (about "
            f"{next(iter(r['functions'].values()))['interpreter_start_ms']['median']:.0f} ms) is not included: on "
            "Lambda the runtime is started before the init phase. On AWS a 256 MB function has a fraction of a "
            "vCPU, so its CPU-bound init takes longer than on this core.",
            _table(
                ["function", "memory", "import", "first invocation", "cold total", "warm", "goal", "invocation"], body
            ),
            f"![Cold init]({PLOTS['coldstart']})",
            *_import_profiles(r),
        ]
    )


def _import_profiles(r: dict[str, Any]) -> list[str]:
    """Where each function's init phase goes, when the benchmark recorded it."""
    profiles = {name: f["import_profile_ms"] for name, f in r["functions"].items() if "import_profile_ms" in f}
    if not profiles:
        return []
    packages = list(dict.fromkeys(package for profile in profiles.values() for package in profile))
    packages.sort(key=lambda package: (package == "(other)", -max(p.get(package, 0) for p in profiles.values())))
    rows = [[package, *(f"{p.get(package, 0):.0f}" for p in profiles.values())] for package in packages]
    rows.append(["**total**", *(f"{sum(p.values()):.0f}" for p in profiles.values())])
    return [
        "Where the init phase goes (`python -X importtime`, one more fresh process per function on the same core; "
        "self time in ms by top-level package, so a little above the import column: the profiler costs time too). "
        "A package's self time includes its module-level code: `leyline`'s is mostly creating the boto3 clients "
        "(botocore loads its endpoint rules and service models then) and building the pydantic models.",
        _table(["package", *profiles], rows),
    ]


def _encode_section(entry: dict[str, Any]) -> str:
    r = entry["result"]
    return "\n\n".join(
        [
            "## Encode",
            _provenance(entry),
            f"`python -m bench.encode`: {r['clip']}, from a 1920x1080 photo-like image, "
            f"pinned to CPU {r['pinned_cpu']} with one x264 thread, after one warm-up encode "
            f"(PyAV {r['pyav']}, Pillow {r['pillow']}).",
            _table(
                ["runs", "median", "p90", "min", "max", "MP4 size"],
                [
                    [
                        r["runs"],
                        f"{r['median_s']:.3f} s",
                        f"{r['p90_s']:.3f} s",
                        f"{r['min_s']:.3f} s",
                        f"{r['max_s']:.3f} s",
                        _mb(r["output_bytes"]),
                    ]
                ],
            ),
        ]
    )


def _zips(f: dict[str, Any], r: dict[str, Any]) -> str:
    """The function's .zip, then each of its layers' (each is uploaded on its own)."""
    sizes = [f["zipped_bytes"], *(r["layers"][layer]["zipped_bytes"] for layer in f["layers"])]
    return " + ".join(_mib(size) for size in sizes)


def _package_section(entry: dict[str, Any]) -> str:
    r = entry["result"]
    packages = [(name, f, ", ".join(f["layers"]) or "-") for name, f in r["functions"].items()]
    packages += [(f"{name} (layer)", layer, "") for name, layer in r["layers"].items()]
    body = [
        [
            name,
            layers,
            _mib(f["unzipped_bytes"]),
            _mib(f["with_layers_unzipped_bytes"]) if "with_layers_unzipped_bytes" in f else "",
            _mib(f["zipped_bytes"]),
            f["files"],
            ", ".join(f"{part['name']} {part['bytes'] / 2**20:.1f}" for part in f["largest"]),
        ]
        for name, f, layers in packages
    ]
    return "\n\n".join(
        [
            "## Lambda package size",
            _provenance(entry),
            f"Method: {r['method']} ({r['sam']}; {r['python']}). Limits: {_mib(r['unzipped_limit_bytes'])} unzipped "
            f"(function and layers), {_mib(r['direct_upload_limit_bytes'])} zipped for a direct upload "
            "(`sam deploy` uploads through S3, where only the unzipped limit applies).",
            _table(
                ["package", "layers", "unzipped", "with its layers", "zipped", "files", "largest entries (MiB)"], body
            ),
        ]
    )


def _price_text(value: float) -> str:
    return f"{value:.10f}".rstrip("0").rstrip(".") if value else "0"


def _usd(value: float) -> str:
    return f"${value:.4f}" if value < 1 else f"${value:.2f}"


def _cost_section(entry: dict[str, Any]) -> str:
    r = entry["result"]
    t, a, rec = r["template"], r["assumptions"], r["recorded"]

    def bill(lines: list[dict[str, Any]]) -> str:
        return _table(
            ["item", "quantity", "unit", "x price", "= cost", "how"],
            [
                [
                    x["item"],
                    f"{x['quantity']:,.3f}".rstrip("0").rstrip("."),
                    x["unit"],
                    f"${_price_text(x['unit_usd'])}",
                    _usd(x["usd"]),
                    x["note"],
                ]
                for x in lines
            ],
        )

    prices = _table(
        ["price", "USD", "per", "source"],
        [[name, _price_text(p["usd"]), p["unit"], p["source"]] for name, p in r["prices"].items()],
    )
    return "\n\n".join(
        [
            "## Cost on AWS",
            _provenance(entry),
            f"From template.yaml: ModelSeconds {t['ModelSeconds']:g}, RetentionDays {t['RetentionDays']:g}, memory "
            + ", ".join(f"{name} {mb} MB" for name, mb in t["memory_mb"].items())
            + ". Operation counts per task were recorded from the local stack's AWS endpoint (moto's request "
            f"recorder) over {rec['tasks']} tasks of a {rec['model_seconds']:g} s model; progress writes are scaled "
            "to the template's model time. A user polls `GET /status` every "
            f"{a['poll_every_s']:g} s ({a['polls_per_video']} polls a video), then opens the video. The processor is "
            f"billed {a['processor_billed_s']:g} s (model time + the measured task time beyond it); the other "
            f"functions {a['http_function_billed_s'] * 1000:.0f} ms an invocation (conservative: 4-15 ms here). "
            f"Image {_mb(a['image_bytes'])}, video {_mb(a['video_bytes'])}. Nobody waits in line; free tiers are "
            "left out.",
            f"### 1,000 videos: {_usd(r['per_1000_videos_usd'])}",
            bill(r["per_1000_videos"]),
            f"### An idle month: {_usd(r['idle_month_usd'])}",
            "Lambda's SQS pollers keep long-polling every queue with an event source mapping; how many pollers AWS "
            "runs on an idle queue is not published, so the figure is an estimate. Everything else is billed per "
            "use (DynamoDB on-demand, HTTP API, Lambda) or expires with the retention.",
            bill(r["idle_month"]),
            "### Prices",
            f"As of {r['prices_as_of']}.",
            prices,
        ]
    )


_SECTIONS = {
    "overhead": _overhead_section,
    "backlog": _backlog_section,
    "status": _status_section,
    "coldstart": _coldstart_section,
    "encode": _encode_section,
    "package": _package_section,
    "cost": _cost_section,
}
ORDER = ("overhead", "backlog", "status", "coldstart", "encode", "package", "cost")


def _machine(data: dict[str, Any]) -> str:
    latest = max((data[name] for name in ORDER if name in data), key=lambda entry: entry["date"])
    m = latest["machine"]
    return _table(
        ["", ""],
        [
            ["CPU", f"{m['cpu_model']}, {m['logical_cores']} logical cores"],
            ["RAM", f"{m['ram_gib']} GiB"],
            ["OS", m["os"]],
            ["Python", f"{m['python']} (Lambda runs 3.12)"],
            ["moto / boto3", f"{m['moto']} / {m['boto3']}"],
            ["Powertools / PyAV / Pillow", f"{m['aws_lambda_powertools']} / {m['av']} / {m['pillow']}"],
        ],
    )


# What profiling the misses found and what changed; the figures before and after are in "Earlier runs".
FINDINGS = """## What the misses taught us

- **`GET /status`, sequential** (p50 60 ms on 2026-11-25): the handler took about 5 ms (its REPORT line), so
  the time was in the local gateway. It wrote the headers and the body in two sends with Nagle's algorithm
  on, so every body waited for the client's delayed ACK (about 40 ms on Linux). The gateway now sets
  TCP_NODELAY (`disable_nagle_algorithm` in `infra/gateway.py`): p50 60 → about 16 ms. API Gateway is not
  affected; the fix is to the local stack.
- **Package size** (every function 153 MiB, 61 MiB zipped, over the 50 MiB of a direct upload): all five
  functions carried Pillow and PyAV (FFmpeg with libx264), which only the processor uses. They moved to
  `MediaLayer`, attached to ProcessorFunction alone, and the API's format check reads magic bytes without
  Pillow: the other functions are now about 34 MiB (21 MiB zipped); the processor with its layer is 153 MiB.
  `tests/template/test_template.py` fails if a function imports Pillow or PyAV without carrying the layer,
  or carries it without needing it.
- **Cold init of ApiFunction and StatusFunction** (384 and 373 ms at 9498696, goal 300; see "Earlier runs"):
  `-X importtime` and cProfile of a fresh process showed the libraries' own floor (importing boto3 and
  Powertools, creating an S3 and a DynamoDB client) at about 280 ms here, and four things of ours on top.
  Each step below was measured with `python -m bench coldstart --quick` (3 samples; 383 / 366 ms before
  the first), API / Status:
  1. The response models were pydantic classes built at import only to document `/openapi.json`: routes
     now name their bodies and the models join the document when it is built: Status 366 → 307 ms (API
     unchanged: its first POST /uploads then imported pydantic, 60 ms, for its request model).
  2. POST /uploads's body is validated by a JSON Schema (fastjsonschema, compiled in about 1 ms), which the
     document shows too (adding the values the service checks after it): API 387 → 319 ms.
     `tests/template` fails if either function imports pydantic.
  3. DynamoDB through the low-level client instead of boto3's resource layer (12 vs 22 ms to create) and the
     multipart parser imported by POST /upload only: 319 / 304 → 305 / 296 ms.
  4. Python's cyclic garbage collector ran about 160 times during the init phase, walking the ~86,000
     objects it creates to free about 600: 40 ms. Each handler now runs its imports and set-up inside
     `init_phase()`, which pauses the collector and then freezes those objects out of later collections
     (`functions/leyline/handlers/init_phase.py`): 305 / 296 → 281 / 254 ms, and the processor 497 → 426 ms.
     `tests/template` fails if the collector runs once boto3 or Powertools begin to load.
  Lambda SnapStart for Python would take the remaining init phase off the request path on AWS; it is not
  enabled (it needs published versions and an alias per function, and costs for the cached snapshots).
- **Model utilisation** is close to its goal with the 3 s model the benchmark uses (at 30 s it is 0.997),
  and one burst decided it: 0.9697 in the full run at d21df85 (two of its tasks took 90 ms beyond the model
  instead of 30), 0.9767 rerun alone. The benchmark now runs three bursts on one stack and takes the
  median burst's utilisation, with the gaps of all three (n=33): this page's run had 0.9783, 0.9754 and
  0.9769, under a 1-minute load of 1.7 to 2.1. Both earlier runs are kept ("Earlier runs")."""


def markdown(data: dict[str, Any]) -> str:
    present = [name for name in ORDER if name in data]
    summary = [
        [row.figure, row.measured, row.goal, _met(row.met)] for name in present for row in rows(name, data[name])
    ]
    parts = [
        "# Benchmarks",
        "<!-- Written by `python -m bench --report` from benchmarks.json: edit bench/report.py, not this file. -->",
        "The product measured the way its users feel it: on the local stack (`python -m infra`, an embedded moto "
        "server, every function in its own warm worker process) over real HTTP, on one 2-core machine that also "
        "runs the clients. Medians and nearest-rank percentiles over repeated runs.",
        "Reading them: the moto server and the local HTTP gateway share one Python process, so figures under "
        "concurrency show that process's limits, not those of API Gateway or DynamoDB; the benchmark's clients "
        "share the machine's two cores with the stack; on AWS each DynamoDB or S3 call also crosses the network.",
        "Rerun everything with `make bench` (or `python -m bench`), fewer samples with `python -m bench --quick`, "
        "one figure with e.g. `python -m bench status`, and rewrite this page from the JSON with "
        "`python -m bench --report`.",
        "## Summary",
        _table(["figure", "measured", "goal", "met"], summary),
        FINDINGS,
        "## Machine",
        _machine(data),
        *(_SECTIONS[name](data[name]) for name in present),
    ]
    history = data.get("history", [])
    if history:
        parts += [
            "## Earlier runs",
            "Headline figures of runs that a later run replaced (newest last), for before/after comparisons.",
            _table(
                ["date", "revision", "figure", "measured", "met"],
                [
                    [run["date"], run["revision"], row["figure"], row["measured"], _met(row["met"])]
                    for run in history
                    for row in run["rows"]
                ],
            ),
        ]
    return "\n\n".join(parts) + "\n"


def write(data: dict[str, Any], docs: Path) -> list[Path]:
    """Plots, then the markdown; returns the files written."""
    docs.mkdir(parents=True, exist_ok=True)
    written = []
    for name, plotter in _PLOTTERS.items():
        if name in data:
            path = docs / PLOTS[name]
            plotter(data[name]["result"], path)
            written.append(path)
    page = docs / "benchmarks.md"
    page.write_text(markdown(data), encoding="utf-8")
    return [*written, page]
