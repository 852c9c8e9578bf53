"""A running stage's progress bars as Prefect progress artifacts (one per bar, e.g. ``progress-train-train-ebft``)
and as lines in the run's log at every quarter, so the UI shows how far a long stage is and when it should end."""

from __future__ import annotations

import re
import time
from uuid import UUID

from prefect import get_run_logger
from prefect.artifacts import create_progress_artifact, update_progress_artifact

from components.project.progress import BarState, ProgressReader

UPDATE_EVERY_S = 2.0  # at most one API call per bar in this time (the final state is always sent)


def artifact_key(stage: str, desc: str) -> str:
    """Prefect keys are lowercase letters, digits and dashes."""
    return re.sub(r"[^a-z0-9]+", "-", f"progress-{stage}-{desc}".lower()).strip("-")


class StageProgress:
    def __init__(self, stage: str):
        self.stage = stage
        self.reader = ProgressReader()
        self.artifacts: dict[str, UUID] = {}
        self.sent_at: dict[str, float] = {}
        self.logged_quarter: dict[str, int] = {}
        self.failed = False

    def feed(self, text: str) -> None:
        for bar in self.reader.feed(text):
            if bar.total in ("0", "1"):  # a one-item bar (writing one file) says nothing about time
                continue
            self._log(bar)
            if not self.failed:
                self._publish(bar)

    def _log(self, bar: BarState) -> None:
        quarter = bar.percent // 25
        if quarter > self.logged_quarter.get(bar.desc, -1):
            self.logged_quarter[bar.desc] = quarter
            get_run_logger().info("stage %s: %s", self.stage, bar.sentence())

    def _publish(self, bar: BarState) -> None:
        now = time.monotonic()
        if bar.percent < 100 and now - self.sent_at.get(bar.desc, -UPDATE_EVERY_S) < UPDATE_EVERY_S:
            return
        self.sent_at[bar.desc] = now
        description = f"stage {self.stage}: {bar.sentence()}"
        try:
            if bar.desc not in self.artifacts:
                key = artifact_key(self.stage, bar.desc)
                self.artifacts[bar.desc] = create_progress_artifact(bar.percent, key=key, description=description)
            else:
                update_progress_artifact(self.artifacts[bar.desc], bar.percent, description=description)
        except Exception as err:  # progress is a view: a server hiccup must not fail the stage it watches
            self.failed = True
            get_run_logger().warning("stage %s: progress artifacts stopped (%s)", self.stage, err)
