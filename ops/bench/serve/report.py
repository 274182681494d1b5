"""Numbers from the runs, and the Markdown tables the benchmark prints."""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass

from ops.bench.serve.load import Run

MS = 1000.0
# With the mock engine a request's own work takes well under a millisecond: a TTFT or E2E p99 above
# this is a stall of some process (issue 23: the client's garbage collector), not queueing for the
# work, and a run that shows one is not quoted.
STALL_MS = 250.0
STALL_NOTE = f"`!`: p99 above {STALL_MS:.0f} ms with the mock engine, a stall: do not quote this run"


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100); NaN for no values."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered), max(1, math.ceil(q / 100 * len(ordered)))) - 1]


@dataclass
class Row:
    """One measured cell: a system under one load."""

    system: str
    load: str  # "closed c=32", "open 150/s", ...
    stream: bool
    runs: list[Run]  # one per repeat

    @property
    def rps_each(self) -> list[float]:
        return [len(run.ok) / run.window_s for run in self.runs]

    @property
    def rps(self) -> float:
        return statistics.median(self.rps_each)

    def latency_ms(self, what: str, q: float) -> float:
        samples = [sample for run in self.runs for sample in run.ok]
        if what == "ttft":
            values = [sample.ttft for sample in samples if sample.first]
        elif what == "itl":
            values = [gap for sample in samples for gap in sample.gaps]
        else:
            values = [sample.e2e for sample in samples]
        return percentile(values, q) * MS

    @property
    def tokens_per_request(self) -> float:
        samples = [sample for run in self.runs for sample in run.ok]
        return statistics.fmean(sample.tokens for sample in samples) if samples else 0.0

    @property
    def errors(self) -> int:
        return sum(len(run.errors) for run in self.runs)

    @property
    def first_error(self) -> str:
        return next((error for run in self.runs for error in run.errors), "")

    def cpu_ms_per_request(self) -> dict[str, float]:
        """CPU milliseconds per completed request, per process name (summed over the repeats)."""
        done = sum(len(run.ok) for run in self.runs) or 1
        total: dict[str, float] = {}
        for run in self.runs:
            for name, seconds in run.cpu_s.items():
                total[name] = total.get(name, 0.0) + seconds
        return {name: seconds * MS / done for name, seconds in sorted(total.items(), key=lambda kv: -kv[1])}

    def cpu_text(self) -> str:
        parts = [f"{name} {ms:.2f}" for name, ms in self.cpu_ms_per_request().items() if ms >= 0.005]
        return ", ".join(parts)


def table(headers: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(headers[i]), *(len(row[i]) for row in rows)) for i in range(len(headers))]

    def line(cells: list[str]) -> str:
        return "| " + " | ".join(cell.ljust(widths[i]) for i, cell in enumerate(cells)) + " |"

    return "\n".join([line(headers), "|" + "|".join("-" * (w + 2) for w in widths) + "|", *map(line, rows)])


def _ms(value: float) -> str:
    return "-" if value != value else f"{value:.2f}"  # NaN: no such samples


def _p99(row: Row, what: str, stall_ms: float | None) -> str:
    value = row.latency_ms(what, 99)
    return _ms(value) + (" !" if stall_ms is not None and value > stall_ms else "")


def stalled(row: Row, stall_ms: float | None) -> bool:
    """A p99 (TTFT when streamed, E2E always) above `stall_ms`; None: no limit (a real model)."""
    if stall_ms is None:
        return False
    whats = ("ttft", "e2e") if row.stream else ("e2e",)
    return any(row.latency_ms(what, 99) > stall_ms for what in whats)


def _with_note(text: str, rows: list[Row], stall_ms: float | None) -> str:
    return text + ("\n\n" + STALL_NOTE if any(stalled(row, stall_ms) for row in rows) else "")


def _ratio(a: float, b: float) -> str:
    return f"{a / b:.2f}x" if b else "-"


def sweep_table(rows: list[Row], peer: str | None, stall_ms: float | None = None) -> str:
    """Every cell; `vs PEER` compares with the peer's row of the same load, `vs c=1` with the same
    system's closed loop at concurrency 1; p99s above `stall_ms` are marked."""
    by_key = {(row.system, row.load, row.stream): row for row in rows}
    headers = ["system", "load", "stream", "req/s", f"vs {peer}" if peer else "vs peer", "vs c=1"]
    headers += ["TTFT p50", "TTFT p99", "ITL p50", "ITL p99", "E2E p50", "E2E p99", "tok/req", "errors"]
    headers += ["CPU ms/req by process"]
    lines = []
    for row in rows:
        peer_row = by_key.get((peer or "", row.load, row.stream)) if row.system != peer else None
        single = by_key.get((row.system, "closed c=1", row.stream))
        stream = row.stream
        lines.append(
            [
                row.system,
                row.load,
                "yes" if stream else "no",
                f"{row.rps:.1f}",
                _ratio(row.rps, peer_row.rps) if peer_row else "",
                _ratio(row.rps, single.rps) if single and row.load.startswith("closed") else "",
                _ms(row.latency_ms("ttft", 50)) if stream else "",
                _p99(row, "ttft", stall_ms) if stream else "",
                _ms(row.latency_ms("itl", 50)) if stream else "",
                _ms(row.latency_ms("itl", 99)) if stream else "",
                _ms(row.latency_ms("e2e", 50)),
                _p99(row, "e2e", stall_ms),
                f"{row.tokens_per_request:.1f}",
                str(row.errors),
                row.cpu_text(),
            ]
        )
    return _with_note(table(headers, lines), rows, stall_ms)


def goal_table(ours: list[Row], theirs: list[Row], repeats: int, mode: str) -> str:
    """The goal cell side by side (mock engines on both sides: p99s above STALL_MS are marked)."""
    headers = [f"c=32, {mode}, mock", f"{ours[0].system} req/s", f"{theirs[0].system} req/s", "ours / peer"]
    headers += ["E2E p50 ours / peer", "TTFT p50 ours / peer", "E2E p99 ours / peer", "TTFT p99 ours / peer"]
    headers += ["errors"]
    lines = []
    for mine, peer in zip(ours, theirs, strict=True):
        spread = [f"{row.rps:.0f} ({min(row.rps_each):.0f}-{max(row.rps_each):.0f})" for row in (mine, peer)]
        stream = mine.stream
        ttft = f"{_ms(mine.latency_ms('ttft', 50))} / {_ms(peer.latency_ms('ttft', 50))} ms" if stream else ""
        e2e = f"{_ms(mine.latency_ms('e2e', 50))} / {_ms(peer.latency_ms('e2e', 50))} ms"
        e2e99 = f"{_p99(mine, 'e2e', STALL_MS)} / {_p99(peer, 'e2e', STALL_MS)} ms"
        ttft99 = f"{_p99(mine, 'ttft', STALL_MS)} / {_p99(peer, 'ttft', STALL_MS)} ms" if stream else ""
        kind = "streaming" if stream else "non-streaming"
        errors = f"{mine.errors} / {peer.errors}"
        lines.append([kind, *spread, _ratio(mine.rps, peer.rps), e2e, ttft, e2e99, ttft99, errors])
    note = f"req/s: median of {repeats} alternating runs (min-max); latencies over all of them"
    return _with_note(table(headers, lines) + "\n" + note, [*ours, *theirs], STALL_MS)


def ceiling_table(rows: list[Row]) -> str:
    headers = ["load", "stream", "req/s", "client CPU us/req", "client-bound req/s (1 core)"]
    headers += ["server CPU us/req"]
    lines = []
    for row in rows:
        cpu = row.cpu_ms_per_request()
        client_us = cpu.get("client", 0.0) * MS
        bound = f"{1e6 / client_us:.0f}" if client_us else "-"
        server_us = sum(ms for name, ms in cpu.items() if name != "client") * MS
        lines.append([row.load, "yes" if row.stream else "no", f"{row.rps:.0f}", f"{client_us:.0f}", bound])
        lines[-1].append(f"{server_us:.0f}")
    return table(headers, lines)


def keep_alive_table(rows: list[Row]) -> str:
    """Streaming at concurrency 1 with the mock engine: p99s above STALL_MS are marked."""
    headers = ["system", "connection", "req/s", "TTFT p50", "TTFT p99", "ITL p99", "E2E p50", "E2E p99"]
    lines = [
        [
            row.system,
            row.load,
            f"{row.rps:.1f}",
            _ms(row.latency_ms("ttft", 50)),
            _p99(row, "ttft", STALL_MS),
            _ms(row.latency_ms("itl", 99)),
            _ms(row.latency_ms("e2e", 50)),
            _p99(row, "e2e", STALL_MS),
        ]
        for row in rows
    ]
    return _with_note(table(headers, lines), rows, STALL_MS)
