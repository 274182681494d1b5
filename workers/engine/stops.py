"""Stop strings over a stream of text deltas: nothing of a stop string ever reaches the client.

Text that could still turn out to be the start of a stop string is held back until the next delta
proves otherwise.
"""

from __future__ import annotations


class StopStringFilter:
    def __init__(self, stops: list[str]) -> None:
        self._stops = [s for s in stops if s]
        self._pending = ""

    def feed(self, delta: str) -> tuple[str, bool]:
        """Returns (text safe to release, whether a stop string was hit). After a hit the text is the
        part before the stop string and the filter should not be fed again."""
        if not self._stops:
            return delta, False
        text = self._pending + delta
        # The stop string that completes first wins, whatever the chunking of the deltas.
        hits = [(i + len(stop), i) for stop in self._stops if (i := text.find(stop)) >= 0]
        if hits:
            self._pending = ""
            return text[: min(hits)[1]], True
        keep = self._held_suffix(text)
        self._pending = text[len(text) - keep :] if keep else ""
        return text[: len(text) - keep], False

    def flush(self) -> str:
        """At the end of generation: release the held-back text (it never completed a stop string)."""
        text, self._pending = self._pending, ""
        return text

    def _held_suffix(self, text: str) -> int:
        """Length of the longest suffix of `text` that is a proper prefix of some stop string."""
        longest = 0
        for stop in self._stops:
            for size in range(min(len(stop) - 1, len(text)), longest, -1):
                if text.endswith(stop[:size]):
                    longest = size
                    break
        return longest
