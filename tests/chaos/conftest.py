"""Fixtures of the fault tests, and the report table printed at the end of `make chaos`."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

import pytest

from tests.chaos.load import Tally

COLUMNS = ("completed", "error", "lost", "hung", "duplicated", "wrong")


@dataclass
class Row:
    fault: str
    trials: int = 0
    outcomes: Counter[str] = field(default_factory=Counter)


ROWS: dict[str, Row] = {}


def record(fault: str, tally: Tally, trials: int = 1) -> None:
    row = ROWS.setdefault(fault, Row(fault))
    row.trials += trials
    row.outcomes.update(tally.outcomes)


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if not ROWS:
        return
    write = terminalreporter.write_line
    write("")
    write("| fault / input class | trials | requests | " + " | ".join(COLUMNS) + " |")
    write("|---|---:|---:|" + "---:|" * len(COLUMNS))
    for row in ROWS.values():
        counts = " | ".join(str(row.outcomes.get(column, 0)) for column in COLUMNS)
        write(f"| {row.fault} | {row.trials} | {sum(row.outcomes.values())} | {counts} |")
