"""docs/benchmarks.md and its plots, written from docs/benchmarks.json: no figure in the doc is typed by hand.

Each benchmark is described once, in BENCHMARKS: how it runs, how its headline figures are read from its
result, its goals, its section of the page and its plot. What the misses taught us is prose in
docs/benchmark-findings.md, which cites runs by name and types no figure.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # after choosing the headless backend
from matplotlib.ticker import NullFormatter, ScalarFormatter

from bench import runs

FINDINGS_DOC = "benchmark-findings.md"  # next to benchmarks.md

Result = dict[str, Any]  # one benchmark's "result" in the JSON
Entry = dict[str, Any]  # a run: its date, command, machine, ... and its result
Goals = Mapping[str, float]


@dataclass(frozen=True)
class Row:
    figure: str
    measured: str
    goal: str
    met: bool | None  # None: a figure that is stated, with no goal


@dataclass(frozen=True)
class Plot:
    file: str  # in docs/
    caption: str
    draw: Callable[[Result, Goals, Path], None]


def _nothing(r: Result) -> list[str]:
    return []


@dataclass(frozen=True)
class Benchmark:
    """One benchmark: everything the command line and the page know of it."""

    name: str
    run: Callable[[bool, dict[str, Any]], Result]  # (quick, the results so far) -> its result
    run_order: int  # see BENCHMARKS
    figures: Callable[[Result, Goals], list[Row]]  # its headline figures, against its goals
    goals: Goals
    title: str  # its section's heading
    text: Callable[[Entry, Goals], list[str]]  # its section, between the provenance line and the plot
    plot: Plot | None = None
    after_plot: Callable[[Result], list[str]] = _nothing

    def rows(self, entry: Entry) -> list[Row]:
        return self.figures(entry["result"], self.goals)

    def section(self, entry: Entry) -> str:
        parts = [f"## {self.title}", _provenance(entry), *self.text(entry, self.goals)]
        if self.plot:
            parts.append(f"![{self.plot.caption}]({self.plot.file})")
        return "\n\n".join([*parts, *self.after_plot(entry["result"])])


# ---- formatting ----------------------------------------------------------------------------------
def _mb(size: float) -> str:
    return f"{size / 1e6:.1f} MB"


def _mib(size: float) -> str:
    """Lambda's quotas ("250 MB", "50 MB") are in MiB: 262,144,000 and 52,428,800 bytes."""
    return f"{size / 2**20:.1f} MiB"


def _table(header: list[str], body: list[list[Any]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in body]
    return "\n".join(lines)


def _met(met: bool | None) -> str:
    return "—" if met is None else ("yes" if met else "**no**")


def _under(figure: str, measured: str, value: float, goal: float, unit: str, statistic: str = "") -> Row:
    """A figure held against an upper bound; `statistic` names what the goal is about ("median", "p99")."""
    return Row(figure, measured, f"{statistic} < {goal:g} {unit}".lstrip(), value < goal)


def _stats_row(label: str, s: dict[str, Any], unit: str = "ms") -> list[Any]:
    return [label, f"{s['median']:.1f} {unit}", f"{s['p90']:.1f}", f"{s['p99']:.1f}", f"{s['max']:.1f}", s["n"]]


_STATS_HEADER = ["", "median", "p90", "p99", "max", "n"]


def _provenance(entry: Entry) -> str:
    quick = " (quick mode)" if entry.get("quick") else ""
    before, after = entry.get("load_average_1min_before"), entry.get("load_average_1min_after")
    cores = entry["machine"]["logical_cores"]
    busy = f" 1-minute load average before/after: {before:g}/{after:g} ({cores} cores; its own work counts)."
    steal = entry.get("cpu_steal_pct")
    stolen = f" CPU time taken by the hypervisor for other guests (steal) meanwhile: {steal:g}%." if steal else ""
    return (
        f"*Measured {entry['date']} at revision {entry.get('revision', 'unknown')} with `{entry['command']}`{quick}, "
        f"in {entry['elapsed_s']} s.{busy if after else ''}{stolen}*"
    )


def _save(fig: Any, path: Path) -> None:
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


# ---- idle-queue overhead -------------------------------------------------------------------------
def _overhead_figures(r: Result, goals: Goals) -> list[Row]:
    o = r["overhead_ms"]
    figure = f"Idle-queue overhead (upload → SUCCESS seen - {r['model_seconds']:g} s model)"
    measured = f"median {o['median']:.0f} ms (p90 {o['p90']:.0f}, max {o['max']:.0f}; n={o['n']})"
    return [_under(figure, measured, o["median"], goals["median_ms"], "ms")]


def _overhead_text(entry: Entry, goals: Goals) -> list[str]:
    r = entry["result"]
    return [
        f"One task at a time on an empty queue, {len(r['samples'])} times (after one warm-up task). "
        f"The model takes {r['model_seconds']:g} s (the encode runs inside it: its time is under Encode). The clock "
        "starts when the storage answers the presigned POST and stops at the first `GET /status` response showing "
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
    ]


def _overhead_plot(r: Result, goals: Goals, path: Path) -> None:
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
    ax.axvline(goals["median_ms"], color="#c44e52", linestyle="--", label=f"goal: {goals['median_ms']:g} ms")
    ax.set_yticks(range(len(samples)), [f"task {i + 1}" for i in range(len(samples))])
    ax.invert_yaxis()
    ax.set_xlabel("ms beyond the model time")
    ax.set_title(f"Idle-queue overhead, one task at a time ({r['model_seconds']:g} s model)")
    ax.legend(loc="lower right", fontsize=8)
    _save(fig, path)


# ---- backlog -------------------------------------------------------------------------------------
def _of_bursts(r: Result) -> str:
    rounds = r.get("rounds", 1)
    return f", median of {rounds} bursts" if rounds > 1 else ""


def _backlog_figures(r: Result, goals: Goals) -> list[Row]:
    g, utilisation = r["gap_ms"], goals["utilisation"]
    return [
        Row(
            f"Model utilisation, backlog of {r['tasks']} x {r['model_seconds']:g} s{_of_bursts(r)}",
            f"{r['utilisation']:.4f} ({r['utilisation_at_template_model']:.4f} projected at the template's "
            f"{r['template_model_seconds']:g} s model)",
            f"≥ {utilisation:g}",
            r["utilisation"] >= utilisation,
        ),
        _under(
            "Gap between one task's finish and the next one's start",
            f"median {g['median']:.0f} ms, p99 {g['p99']:.0f} ms (n={g['n']})",
            g["median"],
            goals["gap_median_ms"],
            "ms",
            "median",
        ),
    ]


def _backlog_text(entry: Entry, goals: Goals) -> list[str]:
    r = entry["result"]
    seen = r["gap_seen_by_poller_ms"]
    return [
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
    ]


def _backlog_plot(r: Result, goals: Goals, path: Path) -> None:
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
    _save(fig, path)


# ---- GET /status latency -------------------------------------------------------------------------
def _status_figures(r: Result, goals: Goals) -> list[Row]:
    s, c, p99 = r["sequential_ms"], r["concurrent_ms"], goals["sequential_p99_ms"]
    return [
        Row(
            "`GET /status` sequential",
            f"p50 {s['median']:.1f} ms, p99 {s['p99']:.1f} ms (n={s['n']}, errors {r['sequential_errors']})",
            f"p99 < {p99:g} ms",
            s["p99"] < p99 and r["sequential_errors"] == 0,
        ),
        Row(
            f"`GET /status` with {r['clients']} concurrent clients",
            f"p50 {c['median']:.0f} ms, p99 {c['p99']:.0f} ms, errors {r['concurrent_errors']} "
            f"(n={c['n']}, {r['concurrent_requests_per_second']:.0f} req/s)",
            "0 errors",
            r["concurrent_errors"] == 0,
        ),
    ]


def _status_text(entry: Entry, goals: Goals) -> list[str]:
    r = entry["result"]
    head = ["", "p50", "p90", "p99", "max", "n", "errors"]

    def line(label: str, s: dict[str, Any], errors: int) -> list[Any]:
        return [label, f"{s['median']:.1f} ms", f"{s['p90']:.1f}", f"{s['p99']:.1f}", f"{s['max']:.1f}", s["n"], errors]

    examples = r["concurrent_error_examples"]
    return [
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
    ]


def _status_plot(r: Result, goals: Goals, path: Path) -> None:
    fig, ax = plt.subplots(figsize=(8, 4))
    for key, label in (
        ("sequential_samples_ms", "one client, back to back"),
        ("concurrent_samples_ms", f"{r['clients']} concurrent clients"),
    ):
        values = sorted(r[key])
        ax.plot(values, [(i + 1) / len(values) for i in range(len(values))], label=f"{label} (n={len(values)})")
    p99 = goals["sequential_p99_ms"]
    ax.axvline(p99, color="#c44e52", linestyle="--", label=f"goal: sequential p99 < {p99:g} ms")
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
    _save(fig, path)


# ---- cold init -----------------------------------------------------------------------------------
def _coldstart_figures(r: Result, goals: Goals) -> list[Row]:
    found = []
    for function, f in r["functions"].items():
        cold, warm = f["cold_total_ms"], f["warm_invocation_ms"]
        goal = goals.get(function)
        found.append(
            Row(
                f"{function} cold init (import + first invocation); warm invocation",
                f"{cold['median']:.0f} ms (import {f['import_ms']['median']:.0f} + first "
                f"{f['first_invocation_ms']['median']:.0f}; max {cold['max']:.0f}); "
                f"warm p50 {warm['median']:.1f} ms",
                f"< {goal:g} ms" if goal else "stated",
                cold["median"] < goal if goal else None,
            )
        )
    return found


def _coldstart_text(entry: Entry, goals: Goals) -> list[str]:
    r = entry["result"]
    body = []
    for name, f in r["functions"].items():
        goal = goals.get(name)
        body.append(
            [
                name,
                f"{f['memory_mb']} MB",
                f"{f['import_ms']['median']:.0f} ms",
                f"{f['first_invocation_ms']['median']:.0f} ms",
                f"{f['cold_total_ms']['median']:.0f} ms (max {f['cold_total_ms']['max']:.0f})",
                f"{f['warm_invocation_ms']['median']:.1f} ms (p99 {f['warm_invocation_ms']['p99']:.1f})",
                f"< {goal:g} ms" if goal else "—",
                f"{f['does']} → {', '.join(f['answers'])}",
            ]
        )
    smallest = min(f["memory_mb"] for f in r["functions"].values())
    return [
        f"Each sample is a fresh Python {entry['machine']['python']} process pinned to one core (CPU "
        f"{r['pinned_cpu']}), with the function's environment from the template pointed at a running local "
        "stack's moto endpoint. It imports the handler (Lambda's init phase), invokes it once with the sample "
        f"event (cold) and then {r['warm_invocations_per_sample']} more times (warm). Medians of "
        f"{r['samples']} processes; interpreter start-up (about "
        f"{next(iter(r['functions'].values()))['interpreter_start_ms']['median']:.0f} ms) is not included: on "
        f"Lambda the runtime is started before the init phase. On AWS a {smallest} MB function has a fraction of a "
        "vCPU, so its CPU-bound init takes longer than on this core.",
        _table(["function", "memory", "import", "first invocation", "cold total", "warm", "goal", "invocation"], body),
    ]


def _import_profiles(r: Result) -> list[str]:
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


def _coldstart_plot(r: Result, goals: Goals, path: Path) -> None:
    names = list(r["functions"])
    imports = [r["functions"][name]["import_ms"]["median"] for name in names]
    firsts = [r["functions"][name]["first_invocation_ms"]["median"] for name in names]
    fig, ax = plt.subplots(figsize=(8, 3.2))
    ax.barh(names, imports, color="#4c72b0", label="import (init)")
    ax.barh(names, firsts, left=imports, color="#dd8452", label="first invocation")
    for i, name in enumerate(names):
        goal = goals.get(name)
        if goal:
            ax.plot([goal, goal], [i - 0.4, i + 0.4], color="#c44e52", linestyle="--")
    ax.plot([], [], color="#c44e52", linestyle="--", label="goal")
    ax.invert_yaxis()
    ax.set_xlabel("ms (median of fresh processes, one core)")
    ax.set_title("Cold init per function")
    ax.legend(fontsize=8, loc="upper right")
    _save(fig, path)


# ---- encode --------------------------------------------------------------------------------------
def _encode_figures(r: Result, goals: Goals) -> list[Row]:
    length, _, size, *_ = r["clip"].split(", ")  # "3 s, 24 fps, 1280x720, H.264 ..."
    measured = f"median {r['median_s']:.2f} s (p90 {r['p90_s']:.2f}, n={r['runs']})"
    return [_under(f"Encode of a {length} {size} clip on one core", measured, r["median_s"], goals["median_s"], "s")]


def _encode_text(entry: Entry, goals: Goals) -> list[str]:
    r = entry["result"]
    return [
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


# ---- package size --------------------------------------------------------------------------------
def _zips(f: dict[str, Any], r: Result) -> str:
    """The function's .zip, then each of its layers' (each is uploaded on its own)."""
    sizes = [f["zipped_bytes"], *(r["layers"][layer]["zipped_bytes"] for layer in f["layers"])]
    return " + ".join(_mib(size) for size in sizes)


def _package_figures(r: Result, goals: Goals) -> list[Row]:
    """The limits are Lambda's, recorded in the result."""
    return [
        Row(
            f"{function} package{' + ' + ', '.join(f['layers']) if f['layers'] else ''}, unzipped / zipped",
            f"{_mib(f['with_layers_unzipped_bytes'])} / {_zips(f, r)}",
            f"< {_mib(r['unzipped_limit_bytes'])} / < {_mib(r['direct_upload_limit_bytes'])} each (direct upload)",
            f["within_unzipped_limit"] and f["within_direct_upload_limit"],
        )
        for function, f in r["functions"].items()
    ]


def _package_text(entry: Entry, goals: Goals) -> list[str]:
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
    return [
        f"Method: {r['method']} ({r['sam']}; {r['python']}). Limits: {_mib(r['unzipped_limit_bytes'])} unzipped "
        f"(function and layers), {_mib(r['direct_upload_limit_bytes'])} zipped for a direct upload "
        "(`sam deploy` uploads through S3, where only the unzipped limit applies).",
        _table(["package", "layers", "unzipped", "with its layers", "zipped", "files", "largest entries (MiB)"], body),
    ]


# ---- cost ----------------------------------------------------------------------------------------
def _price_text(value: float) -> str:
    return f"{value:.10f}".rstrip("0").rstrip(".") if value else "0"


def _usd(value: float) -> str:
    return f"${value:.4f}" if value < 1 else f"${value:.2f}"


def _cost_figures(r: Result, goals: Goals) -> list[Row]:
    return [
        Row(
            "Cost on AWS (us-east-1)",
            f"${r['per_1000_videos_usd']:.2f} per 1,000 videos; ${r['idle_month_usd']:.2f} per idle month",
            "stated",
            None,
        )
    ]


def _bill(lines: list[dict[str, Any]]) -> str:
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


def _cost_text(entry: Entry, goals: Goals) -> list[str]:
    r = entry["result"]
    t, a, rec = r["template"], r["assumptions"], r["recorded"]
    prices = _table(
        ["price", "USD", "per", "source"],
        [[name, _price_text(p["usd"]), p["unit"], p["source"]] for name, p in r["prices"].items()],
    )
    return [
        f"From template.yaml: ModelSeconds {t['ModelSeconds']:g}, RetentionDays {t['RetentionDays']:g}, memory "
        + ", ".join(f"{name} {mb} MB" for name, mb in t["memory_mb"].items())
        + ". Operation counts per task were recorded from the local stack's AWS endpoint (moto's request "
        f"recorder) over {rec['tasks']} tasks of a {rec['model_seconds']:g} s model; progress writes are scaled "
        "to the template's model time. A user polls `GET /status` every "
        f"{a['poll_every_s']:g} s ({a['polls_per_video']} polls a video), then opens the video. The processor is "
        f"billed {a['processor_billed_s']:g} s (model time + the measured task time beyond it); the other "
        f"functions {a['http_function_billed_s'] * 1000:.0f} ms an invocation (conservative: their warm "
        f"invocations are under Cold init). Image {_mb(a['image_bytes'])}, video {_mb(a['video_bytes'])}. Nobody "
        "waits in line; free tiers are left out.",
        f"### 1,000 videos: {_usd(r['per_1000_videos_usd'])}",
        _bill(r["per_1000_videos"]),
        f"### An idle month: {_usd(r['idle_month_usd'])}",
        "Lambda's SQS pollers keep long-polling every queue with an event source mapping; how many pollers AWS "
        "runs on an idle queue is not published, so the figure is an estimate. Everything else is billed per "
        "use (DynamoDB on-demand, HTTP API, Lambda) or expires with the retention.",
        _bill(r["idle_month"]),
        "### Prices",
        f"As of {r['prices_as_of']}.",
        prices,
    ]


# ---- backlog scale -------------------------------------------------------------------------------
# Before issue 13, as the issue measured it on the local stack (one client, ModelSeconds=80): GET /status of the
# last waiting task counted every task ahead on QueueIndex. Kept for the comparison; not re-measured.
_BEFORE_LINE_SUMMARY = {10: (36, None), 100: (38, None), 500: (95, None), 1_000: (233, 734)}


def _scale_points(r: Result) -> dict[int, dict[str, Any]]:
    return {int(point["waiting"]): point for point in r["points"]}


def _reads_per_call(point: dict[str, Any]) -> float:
    return float(sum(point["requests_per_call"].values()))


def _backlog_scale_figures(r: Result, goals: Goals) -> list[Row]:
    points = _scale_points(r)
    smallest, largest = points[min(points)], points[max(points)]
    ratio = largest["latency_ms"]["median"] / smallest["latency_ms"]["median"]
    reads = {_reads_per_call(point) for point in points.values()}
    only_gets = all(set(point["requests_per_call"]) <= {"GetItem"} for point in points.values())
    return [
        _under(
            f"Status p50 of the last task, {max(points):,} waiting / {min(points):,} waiting",
            f"{ratio:.2f}x ({largest['latency_ms']['median']:.1f} / {smallest['latency_ms']['median']:.1f} ms)",
            ratio,
            goals["p50_ratio"],
            "x",
        ),
        Row(
            "DynamoDB items read per status call",
            ", ".join(f"{_reads_per_call(points[n]):g} at {n:,}" for n in sorted(points)),
            "constant, GetItem only",
            len(reads) == 1 and only_gets,
        ),
    ]


def _backlog_scale_text(entry: Entry, goals: Goals) -> list[str]:
    r = entry["result"]
    points = _scale_points(r)
    rows = [
        [
            f"{n:,}",
            points[n]["queue_position"],
            f"{points[n]['latency_ms']['median']:.1f} ms",
            f"{points[n]['latency_ms']['p95']:.1f} ms",
            f"{points[n]['latency_ms']['p99']:.1f} ms",
            ", ".join(f"{op} {count:g}" for op, count in points[n]["requests_per_call"].items()),
            f"{points[n]['build_seconds']:g} s",
        ]
        for n in sorted(points)
    ]
    before = [
        [f"{n:,}", f"{p50} ms", f"{p95} ms" if p95 is not None else "-"]
        for n, (p50, p95) in _BEFORE_LINE_SUMMARY.items()
    ]
    return [
        f"One task uploaded through the API enters the model ({r['model_seconds']:g} s model time); the others "
        "are written behind it through the intake's own write (TaskRepository.create and mark_queued, as "
        f"IntakeFunction does for each landed upload) from {r['clients']} clients (127.0.0.x), and GET /status "
        f"of the last one is timed {r['samples']} times at each length on one persistent connection. DynamoDB "
        "requests per call are counted from moto's request recorder (switched on only for those calls): each "
        "GetItem reads one item.",
        *_scale_cut_short(points),
        *(
            [f"The emulator stopped uncleanly after the run ({r['stack_stop']}); every figure was taken before."]
            if r.get("stack_stop")
            else []
        ),
        _table(["waiting", "position shown", "p50", "p95", "p99", "DynamoDB requests per call", "built in"], rows),
        "Before (issue 13's own measurement of the old code, one client, not re-run here): every status read "
        "counted the tasks ahead on QueueIndex, so the read grew with the line.",
        _table(["waiting", "p50", "p95"], before),
    ]


def _scale_cut_short(points: dict[int, dict[str, Any]]) -> list[str]:
    if max(points) >= 10_000:
        return []
    return [
        f"**This run stops at {max(points):,} waiting tasks, short of the goal's 10,000** (a `--quick` run): "
        "building the line through the intake's write is quadratic on the emulator, whose TransactWriteItems "
        "deep-copies the whole table before each transaction item (moto's rollback): the build time grows "
        "with the square of the line. The status read itself is two GetItems at every length measured."
    ]


def _backlog_scale_plot(r: Result, goals: Goals, path: Path) -> None:
    points = _scale_points(r)
    sizes = sorted(points)
    fig, ax = plt.subplots(figsize=(7, 3.6))
    ax.plot(sizes, [points[n]["latency_ms"]["median"] for n in sizes], marker="o", label="p50, line summary")
    ax.plot(sizes, [points[n]["latency_ms"]["p95"] for n in sizes], marker="o", label="p95, line summary")
    before = sorted(_BEFORE_LINE_SUMMARY)
    ax.plot(before, [_BEFORE_LINE_SUMMARY[n][0] for n in before], marker="x", ls="--", label="p50, before (issue 13)")
    ax.set_xscale("log")
    ax.set_xlabel("tasks waiting")
    ax.set_ylabel("GET /status of the last task (ms)")
    ax.legend()
    _save(fig, path)


# ---- accounts: GET /tasks and the authorizer ------------------------------------------------------
def _accounts_figures(r: Result, goals: Goals) -> list[Row]:
    listed, opened, guarded = r["list_ms"], r["status_open_ms"], r["status_accounts_ms"]
    return [
        _under(
            f"`GET /tasks` first page of {r['page']}, {r['tasks']:,} tasks of {r['users']} users",
            f"p50 {listed['median']:.1f} ms, p99 {listed['p99']:.1f} ms (n={listed['n']})",
            listed["p99"],
            goals["list_p99_ms"],
            "ms",
            "p99",
        ),
        _under(
            "JWT authorizer's cost on `GET /status` (median, accounts - open)",
            f"{r['authorizer_added_median_ms']:+.2f} ms ({guarded['median']:.1f} vs {opened['median']:.1f} ms)",
            r["authorizer_added_median_ms"],
            goals["authorizer_median_ms"],
            "ms",
            "added at the median",
        ),
    ]


def _accounts_text(entry: Entry, goals: Goals) -> list[str]:
    r = entry["result"]
    listed = r["list_ms"]
    return [
        f"`GET /tasks`: one user signs up, confirms and signs in on the stack's Cognito (moto); the table then gets "
        f"{r['tasks']:,} tasks, {r['tasks'] // r['users']} for each of {r['users']} owners, written through the "
        f"store's own create (the write POST /uploads makes; built in {r['list_build_seconds']:g} s). The first "
        f"page (the default {r['page']}; it held {r['list_first_page_size']}) of the user's history is timed "
        f"{listed['n']} times on one persistent connection with the bearer token: one Query of the user's "
        "partition of OwnerIndex, whatever the table holds.",
        _table(
            ["", "p50", "p90", "p95", "p99", "max", "n"],
            [
                [
                    "GET /tasks",
                    f"{listed['median']:.1f} ms",
                    f"{listed['p90']:.1f}",
                    f"{listed['p95']:.1f}",
                    f"{listed['p99']:.1f}",
                    f"{listed['max']:.1f}",
                    listed["n"],
                ]
            ],
        ),
        "The authorizer: `GET /status` of one PENDING task, on a stack in open mode and then on one in accounts "
        "mode, where the local gateway verifies the RS256 access token against the pool's JWKS (cached) on "
        "every call, as API Gateway does before invoking the function.",
        _table(
            ["AccessMode", "p50", "p90", "p99", "n"],
            [
                [mode, f"{s['median']:.2f} ms", f"{s['p90']:.2f}", f"{s['p99']:.2f}", s["n"]]
                for mode, s in (("open", r["status_open_ms"]), ("accounts", r["status_accounts_ms"]))
            ],
        ),
    ]


# ---- the two local backends ---------------------------------------------------------------------------
def _backends_figures(r: Result, goals: Goals) -> list[Row]:
    rows = []
    for name, b in r["backends"].items():
        install, start, flow = b["install"], b["start_s"], b["curl_flow_overhead_ms"]
        rows.append(Row(f"`{name}` backend: install", f"{install['seconds']:.0f} s, {_mb(install['bytes'])}", "", None))
        rows.append(Row(f"`{name}` backend: stack start", f"median {start['median']:.1f} s (n={start['n']})", "", None))
        outside = b["outside_the_run_ms"]["median"]
        measured = f"median {flow['median']:.0f} ms, {outside:.0f} ms outside the task's run (n={flow['n']})"
        rows.append(Row(f"`{name}` backend: curl flow overhead", measured, "", None))
    return rows


def _backends_text(entry: Entry, goals: Goals) -> list[str]:
    r = entry["result"]
    body = [
        [
            f"`{name}`",
            f"`{b['install']['what']}`",
            f"{b['install']['seconds']:.0f} s",
            _mb(b["install"]["bytes"]),
            f"{b['start_s']['median']:.1f} s (max {b['start_s']['max']:.1f}, n={b['start_s']['n']})",
            f"{b['curl_flow_overhead_ms']['median']:.0f} ms (max {b['curl_flow_overhead_ms']['max']:.0f}, "
            f"n={b['curl_flow_overhead_ms']['n']})",
            f"{b['outside_the_run_ms']['median']:.0f} ms (max {b['outside_the_run_ms']['max']:.0f})",
        ]
        for name, b in r["backends"].items()
    ]
    return [
        "`LEYLINE_BACKEND=moto` (the default) and `LEYLINE_BACKEND=localstack` (infra/backends.py). Install: what "
        "the backend adds to the product's `.venv`, into a fresh venv with pip's cache as it was (moto on the "
        "product's Python; LocalStack from `infra/localstack-requirements.txt` on Python 3.13, as `make "
        "localstack-venv` does), and its size on disk. Start: `python -m infra` spawned to its ready line "
        "(backend, provisioning, workers). Curl flow overhead: the original README's calls — `POST /upload`, "
        f"`GET /status` every {r['poll_every_ms']:.0f} ms until SUCCESS, `GET /video/<id>` followed to the MP4 "
        f"— minus the {r['model_seconds']:g} s model, on a warm stack; and the part of it outside the task's run "
        "(`started_at` to `finished_at`, which holds the model and whatever the encode takes past it on a busy "
        "CPU): what the backend's services cost the flow.",
        _table(
            ["backend", "installs", "install", "size", "stack start", "curl flow overhead", "outside the task's run"],
            body,
        ),
    ]


# ---- model slots -----------------------------------------------------------------------------------
def _slots_points(r: Result) -> list[dict[str, Any]]:
    return sorted(r["points"], key=lambda point: point["slots"])


def _slot_count(slots: int) -> str:
    return f"{slots} slot{'s' if slots > 1 else ''}"


def _slots_figures(r: Result, goals: Goals) -> list[Row]:
    rows = [
        _at_least(
            f"Throughput with {_slot_count(p['slots'])}, of N x 3600 / ModelSeconds",
            f"{p['efficiency']:.3f} ({p['videos_per_hour']:g} of {p['ideal_videos_per_hour']:g} videos/hour)",
            p["efficiency"],
            goals["efficiency"],
        )
        for p in _slots_points(r)
    ]
    rows += [
        _under(
            f"Gap with {_slot_count(p['slots'])}, a slot's finish to its next start",
            f"median {p['gap_ms']['median']:g} ms (n={p['gap_ms']['n']})",
            p["gap_ms"]["median"],
            goals["gap_median_ms"],
            "ms",
            "median",
        )
        for p in _slots_points(r)
        if p["gap_ms"] is not None
    ]
    worst = max(p["eta_error_pct"]["max"] for p in _slots_points(r))
    rows.append(
        _under(
            "ETA read on joining the line vs the real wait", f"{worst:.1f}%", worst, goals["eta_error_pct"], "%", "max"
        )
    )
    return rows


def _at_least(figure: str, measured: str, value: float, goal: float) -> Row:
    return Row(figure, measured, f">= {goal:g}", value >= goal)


def _slots_text(entry: Entry, goals: Goals) -> list[str]:
    r = entry["result"]
    rows = [
        [
            p["slots"],
            p["tasks"],
            f"{p['span_s']:.2f} s",
            f"{p['videos_per_hour']:g}",
            f"{p['ideal_videos_per_hour']:g}",
            f"{p['efficiency']:.3f}",
            "-" if p["gap_ms"] is None else f"{p['gap_ms']['median']:g} ms",
            f"{p['eta_error_pct']['median']:.1f}% / {p['eta_error_pct']['max']:.1f}%",
        ]
        for p in _slots_points(r)
    ]
    return [
        f"A **simulated model** (the product's: a fixed {r['model_seconds']:g} s per image, the video encoded "
        f"meanwhile) in 1, 2 and 4 slots (`ModelSlots`, one local stack each); {r['tasks_per_slot']} uploads per "
        "slot in a burst (the tickets first, then the files back to back) after one warm-up task per slot, all at "
        "once (so each slot's worker has started). Throughput is tasks over the span from the first start to the "
        "last finish, against the ideal N x 3600 / ModelSeconds; a gap is a start after the finish that freed its "
        "slot. The ETA error is |ETA shown on the task's first in-line status - real wait from that read to its "
        "finish| / real wait (the ETA is whole seconds, rounded up; it counts no gaps). On this machine's 2 cores "
        "the slots' encodes share the CPU with the stack and with whatever else runs (the load average above); a "
        "real model's throughput is the model's own.",
        _table(
            ["slots", "tasks", "span", "videos/hour", "ideal", "efficiency", "gap p50", "ETA error p50 / max"], rows
        ),
    ]


# ---- webhooks: delivery latency ---------------------------------------------------------------------
def _webhook_figures(r: Result, goals: Goals) -> list[Row]:
    s = r["latency_ms"]
    return [
        _under(
            "Webhook delivery, SUCCESS to the receiver's 200",
            f"{s['median']:.0f} ms",
            s["median"],
            goals["median_ms"],
            "ms",
            "median",
        )
    ]


def _webhook_text(entry: Entry, goals: Goals) -> list[str]:
    r = entry["result"]
    return [
        f"{r['samples']} tasks, one at a time ({r['model_seconds']:g} s model), each with a `webhook_url` on a "
        "receiver on 127.0.0.1; the time from the task's `finished_at` (the SUCCESS write) to the receiver "
        "answering 200. The path: TasksTable's stream, TaskEventsFunction, TaskEventBus, WebhookRule, "
        "WebhookQueue, WebhookFunction. The local stream poller reads every 0.25 s and the SQS poller "
        "long-polls, as Lambda's do.",
        _table(_STATS_HEADER, [_stats_row("SUCCESS -> 200", r["latency_ms"])]),
    ]


# ---- the benchmarks, in the page's order ---------------------------------------------------------
# One row each (formatted by hand, as a table): goals are what the figures are held against; run_order puts
# the quiet measurements first and the cost last, as it reads the overhead's and encode's results.
# fmt: off
BENCHMARKS = (
    Benchmark("overhead", runs.overhead, run_order=5, figures=_overhead_figures, goals={"median_ms": 500},
              title="Idle-queue overhead", text=_overhead_text,
              plot=Plot("bench-overhead.png", "Idle-queue overhead per task", _overhead_plot)),
    Benchmark("backlog", runs.backlog, run_order=6, figures=_backlog_figures,
              goals={"utilisation": 0.97, "gap_median_ms": 100},
              title="Backlog: model utilisation and the gap between tasks", text=_backlog_text,
              plot=Plot("bench-backlog.png", "Backlog timeline", _backlog_plot)),
    Benchmark("status", runs.status, run_order=4, figures=_status_figures, goals={"sequential_p99_ms": 30},
              title="`GET /status` latency", text=_status_text,
              plot=Plot("bench-status-latency.png", "GET /status latency", _status_plot)),
    Benchmark("coldstart", runs.coldstart, run_order=3, figures=_coldstart_figures,
              goals={"ApiFunction": 300, "StatusFunction": 300, "ProcessorFunction": 1000},  # median cold init, ms
              title="Cold init and warm invocations", text=_coldstart_text,
              plot=Plot("bench-coldstart.png", "Cold init", _coldstart_plot), after_plot=_import_profiles),
    Benchmark("encode", runs.encode, run_order=1, figures=_encode_figures, goals={"median_s": 3},
              title="Encode", text=_encode_text),
    Benchmark("package", runs.package, run_order=2, figures=_package_figures, goals={},  # Lambda's, in the result
              title="Lambda package size", text=_package_text),
    Benchmark("backlog-scale", runs.backlog_scale, run_order=7, figures=_backlog_scale_figures,
              goals={"p50_ratio": 1.2}, title="Backlog scale: a status read at any length of the line",
              text=_backlog_scale_text,
              plot=Plot("bench-backlog-scale.png", "Status latency against the line's length", _backlog_scale_plot)),
    Benchmark("webhooks", runs.webhooks, run_order=10, figures=_webhook_figures, goals={"median_ms": 1000},
              title="Webhook delivery latency", text=_webhook_text),
    Benchmark("slots", runs.slots, run_order=8, figures=_slots_figures,
              goals={"efficiency": 0.95, "eta_error_pct": 10, "gap_median_ms": 100},
              title="Model slots: throughput against N, the hand-over gap and the ETA's error", text=_slots_text),
    Benchmark("cost", runs.cost, run_order=12, figures=_cost_figures, goals={},
              title="Cost on AWS", text=_cost_text),
    Benchmark("accounts", runs.accounts, run_order=9, figures=_accounts_figures,
              goals={"list_p99_ms": 50, "authorizer_median_ms": 5},
              title="Accounts: `GET /tasks` and the JWT authorizer", text=_accounts_text),
    Benchmark("backends", runs.backends, run_order=11, figures=_backends_figures, goals={},
              title="Local backends: moto and LocalStack", text=_backends_text),
)
# fmt: on
BY_NAME = {benchmark.name: benchmark for benchmark in BENCHMARKS}
RUN_ORDER = tuple(sorted(BY_NAME, key=lambda name: BY_NAME[name].run_order))


def headline(name: str, entry: Entry) -> dict[str, Any]:
    """What the history keeps of a run that is being replaced."""
    return {
        "name": name,
        "date": entry["date"],
        "revision": entry.get("revision", "unknown"),
        "rows": [asdict(row) for row in BY_NAME[name].rows(entry)],
    }


# ---- the page ------------------------------------------------------------------------------------
def _latest(data: dict[str, Any]) -> Entry:
    entry: Entry = max((data[b.name] for b in BENCHMARKS if b.name in data), key=lambda entry: entry["date"])
    return entry


def _machine(m: dict[str, Any]) -> str:
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


def _history(history: list[dict[str, Any]]) -> list[str]:
    if not history:
        return []
    return [
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


def markdown(data: dict[str, Any]) -> str:
    present = [(b, data[b.name]) for b in BENCHMARKS if b.name in data]
    machine = _latest(data)["machine"]
    summary = [[row.figure, row.measured, row.goal, _met(row.met)] for b, entry in present for row in b.rows(entry)]
    parts = [
        "# Benchmarks",
        "<!-- Written by `python -m bench --report` from benchmarks.json: edit bench/report.py, not this file. -->",
        "The product measured the way its users feel it: on the local stack (`python -m infra`, an embedded moto "
        f"server, every function in its own warm worker process) over real HTTP, on one {machine['logical_cores']}"
        "-core machine that also runs the clients. Medians and nearest-rank percentiles over repeated runs.",
        "Reading them: the moto server is one Python process and the local HTTP gateway with the event source "
        "pollers another (one GIL each), so figures under concurrency show those processes' limits, not those of "
        "API Gateway or DynamoDB; the benchmark's clients "
        "share the machine's cores with the stack; on AWS each DynamoDB or S3 call also crosses the network.",
        "Rerun everything with `make bench` (or `python -m bench`), fewer samples with `python -m bench --quick`, "
        "one figure with e.g. `python -m bench status`, and rewrite this page from the JSON with "
        "`python -m bench --report`.",
        "## Summary",
        _table(["figure", "measured", "goal", "met"], summary),
        "## What the misses taught us",
        f"What profiling found where a figure missed its goal, and what changed: [{FINDINGS_DOC}]({FINDINGS_DOC}). "
        "It cites runs as `benchmark@revision`: the current run's figures are in the Summary, those of the runs "
        "it replaced under Earlier runs.",
        "## Machine",
        _machine(machine),
        *(b.section(entry) for b, entry in present),
        *_history(data.get("history", [])),
    ]
    return "\n\n".join(parts) + "\n"


def write(data: dict[str, Any], docs: Path) -> list[Path]:
    """Plots, then the markdown; returns the files written."""
    docs.mkdir(parents=True, exist_ok=True)
    written = []
    for b in BENCHMARKS:
        if b.plot and b.name in data:
            path = docs / b.plot.file
            b.plot.draw(data[b.name]["result"], b.goals, path)
            written.append(path)
    page = docs / "benchmarks.md"
    page.write_text(markdown(data), encoding="utf-8")
    return [*written, page]
