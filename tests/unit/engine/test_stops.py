"""Stop strings: the released text is exactly the text before the first stop string to complete,
whatever the chunking of the deltas."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from workers.engine.stops import StopStringFilter

texts = st.text(alphabet="abc ", max_size=30)


def expected(text: str, stops: list[str]) -> tuple[str, bool]:
    hits = [(i + len(s), i) for s in stops if s and (i := text.find(s)) >= 0]
    return (text[: min(hits)[1]], True) if hits else (text, False)


def run(chunks: list[str], stops: list[str]) -> tuple[str, bool]:
    stop_filter = StopStringFilter(stops)
    released = ""
    for chunk in chunks:
        text, hit = stop_filter.feed(chunk)
        released += text
        if hit:
            return released, True
    return released + stop_filter.flush(), False


@given(st.lists(texts, max_size=8), st.lists(st.text(alphabet="abc ", min_size=1, max_size=4), max_size=3))
def test_release_is_text_before_first_completed_stop(chunks: list[str], stops: list[str]) -> None:
    assert run(chunks, stops) == expected("".join(chunks), stops)


@given(st.lists(texts, max_size=8), st.lists(st.text(alphabet="abc ", min_size=1, max_size=4), max_size=3))
def test_released_text_never_holds_a_stop_string(chunks: list[str], stops: list[str]) -> None:
    released, _ = run(chunks, stops)
    assert not any(stop in released for stop in stops)


def test_partial_match_is_held_then_released() -> None:
    stop_filter = StopStringFilter(["END"])
    assert stop_filter.feed("the E") == ("the ", False)
    assert stop_filter.feed("N") == ("", False)
    assert stop_filter.feed("D of it") == ("", True)
    stop_filter = StopStringFilter(["END"])
    assert stop_filter.feed("the EN") == ("the ", False)
    assert stop_filter.feed("ough") == ("ENough", False)
