"""Serve the pipeline on a cron schedule from this process (the one-process alternative to infra/prefect.yaml):

    python -m flows.serve [--cron "0 3 * * *"] [--project .]

Needs a Prefect server for the schedule (`make prefect-server`, then PREFECT_API_URL); with Prefect's temporary local
API it still serves manual runs (`prefect deployment run 'ebft-pipeline/ebft-retrain-local'`) but cannot schedule.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from flows.pipeline import pipeline


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cron", default="0 3 * * *", help="when to retrain (cron, UTC); default nightly at 03:00")
    parser.add_argument("--project", default=".", help="project folder the runs work in")
    parser.add_argument("--name", default="ebft-retrain-local")
    args = parser.parse_args(argv)
    pipeline.serve(
        name=args.name,
        cron=args.cron,
        parameters={"project_dir": str(Path(args.project).resolve()), "lock_wait_s": 600},
        tags=["ebft", "retrain"],
    )


if __name__ == "__main__":
    main()
