"""Serve the pipeline on a cron schedule from this process (the one-process alternative to infra/prefect.yaml):

    python -m flows.serve [--cron "0 3 * * *"] [--project .] [--set KEY=VALUE ...]

Needs a Prefect server for the schedule (`make prefect-server`, then PREFECT_API_URL); with Prefect's temporary local
API it still serves manual runs (`prefect deployment run 'ebft-pipeline/ebft-retrain-local'`) but cannot schedule.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from components.params.overrides import parse_set_flags
from flows.pipeline import pipeline


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cron", default="0 3 * * *", help="when to retrain (cron, UTC); default nightly at 03:00")
    parser.add_argument("--project", default=".", help="project folder the runs work in")
    parser.add_argument("--name", default="ebft-retrain-local")
    parser.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="a parameter override every scheduled run applies (written into params.yaml)",
    )
    args = parser.parse_args(argv)
    try:
        overrides = parse_set_flags(args.overrides)
    except ValueError as err:
        parser.error(str(err))
    pipeline.serve(
        name=args.name,
        cron=args.cron,
        parameters={"project_dir": str(Path(args.project).resolve()), "overrides": overrides, "lock_wait_s": 600},
        tags=["ebft", "retrain"],
    )


if __name__ == "__main__":
    main()
