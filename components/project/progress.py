"""What a stage's progress bars say, read from its output as it streams past (the stages draw tqdm bars; the pipeline
shows them in Prefect's UI, where stdout is not shown). Pure parsing: no Prefect here."""

from __future__ import annotations

import re
from dataclasses import dataclass

# tqdm's default bar: "train ebft:  50%|█████     | 1/2 [00:10<00:10,  4.41step/s, reward=0.69]"
BAR = re.compile(
    r"(?P<desc>[^\r\n|:]+):\s+(?P<percent>\d{1,3})%\|[^|]*\|\s*(?P<n>[\d.]+[kMG]?)/(?P<total>[\d.]+[kMG]?)"
    r"\s*\[(?P<elapsed>[\d:]+)<(?P<eta>[\d:?]+)"
)


@dataclass(frozen=True)
class BarState:
    desc: str
    percent: int
    n: str
    total: str
    elapsed: str
    eta: str

    def sentence(self) -> str:
        return f"{self.desc}: {self.percent}% ({self.n}/{self.total}), {self.elapsed} elapsed, ETA {self.eta}"


class ProgressReader:
    """Feed it output as it arrives; it returns the newest state of each bar drawn since the last call."""

    def __init__(self) -> None:
        self._pending = ""

    def feed(self, text: str) -> list[BarState]:
        *done, self._pending = re.split(r"[\r\n]", self._pending + text)  # a bar is complete once the next \r comes
        latest: dict[str, BarState] = {}
        for line in done:
            found = BAR.search(line)
            if found:
                fields = found.groupdict() | {"desc": found["desc"].strip(), "percent": int(found["percent"])}
                state = BarState(**fields)
                latest[state.desc] = state
        return list(latest.values())
