"""The command-line shape every stage entry point shares: ``python -m flows.<stage> [--params FILE]``."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Callable
from contextlib import contextmanager

from components.params.loading import ParamsError


def stage_main(run: Callable[..., dict], description: str, argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--params", default="params.yaml", help="parameters file (default: params.yaml)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    for chatty in ("accelerate", "httpx", "alembic"):  # per-checkpoint file lists and request logs
        logging.getLogger(chatty).setLevel(logging.WARNING)
    with errors_as_messages():
        run(params_path=args.params)


@contextmanager
def errors_as_messages(kinds: tuple[type[Exception], ...] = (ParamsError, FileNotFoundError, ValueError, RuntimeError)):
    """A clear one-paragraph reason (``error: ...``, exit 1) instead of a traceback for the errors users can act on;
    EBFT_DEBUG=1 keeps the traceback for developers."""
    try:
        yield
    except kinds as err:
        if os.environ.get("EBFT_DEBUG") == "1":
            raise
        sys.exit(f"error: {err}")
