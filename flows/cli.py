"""The ``ebft`` command: one entry point for what the README runs with ``make`` and ``python -m flows.*``.

    ebft run [--set KEY=VALUE ...]              the pipeline (refresh inputs, dvc repro, register and gate): make run
    ebft train --data FILE.jsonl [--model DIR] [--preset NAME] [--set KEY=VALUE ...] [--evaluate]
                                                a one-off run over your data and model (flows/one_off.py)
    ebft evaluate [--params FILE]               the evaluate stage on this project's models
    ebft registry status|promote|rollback       the MLflow registry: champion, challenger, promotion by hand
    ebft presets list|show|apply|flags [NAME]   the paper's settings as presets
    ebft serve [--cron "0 3 * * *"]             the pipeline on a schedule from this process

``ebft COMMAND --help`` tells each command's options.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path

from components.params.loading import ParamsError
from components.params.overrides import parse_set_flags
from flows.stage_cli import errors_as_messages


def _train(argv: list[str]) -> None:
    from flows.one_off import __doc__ as doc
    from flows.one_off import one_off

    parser = argparse.ArgumentParser(prog="ebft train", description=doc,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    parser.add_argument("--data", required=True, type=Path,
                        help="a .jsonl file, a folder of them, or a HF save_to_disk folder")  # fmt: skip
    parser.add_argument("--model", help="a local model folder, a hub id, smollm2-135m or tiny:llama (default: params)")
    parser.add_argument("--preset", help="apply a preset first (ebft presets list)")
    parser.add_argument("--params", type=Path, help="base params file (default: ./params.yaml, else the defaults)")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="override a parameter, e.g. --set train.steps=100 (repeatable)")  # fmt: skip
    parser.add_argument("--out", type=Path, help="run folder (default: runs/train-<UTC time>)")
    parser.add_argument("--evaluate", action="store_true", help="also run the evaluate stage (base vs trained)")
    args = parser.parse_args(argv)
    one_off(args.data, args.model, parse_set_flags(args.overrides), out=args.out, params_file=args.params,
            preset=args.preset, run_evaluation=args.evaluate)  # fmt: skip


def _delegate(module: str, prog: str) -> Callable[[list[str]], None]:
    """A command that is an existing entry point: its own parser, shown as ``ebft <command>``."""

    def command(argv: list[str]) -> None:
        import importlib

        sys.argv[0] = prog  # argparse's usage line names the command the user typed
        importlib.import_module(module).main(argv)

    return command


COMMANDS: dict[str, tuple[str, Callable[[list[str]], None]]] = {
    "run": ("the pipeline: refresh inputs, dvc repro, register and gate (make run)",
            _delegate("flows.pipeline", "ebft run")),
    "train": ("a one-off run over your data and model, without DVC or the registry", _train),
    "evaluate": ("the evaluate stage on this project's models", _delegate("flows.evaluate", "ebft evaluate")),
    "registry": ("the model registry: status, promote --version N, rollback",
                 _delegate("flows.registry", "ebft registry")),
    "presets": ("the paper's settings: list, show NAME, apply NAME, flags NAME",
                _delegate("components.params.presets", "ebft presets")),
    "serve": ("the pipeline on a cron schedule from this process", _delegate("flows.serve", "ebft serve")),
}  # fmt: skip


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    parser = argparse.ArgumentParser(
        prog="ebft", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name, (summary, _) in COMMANDS.items():
        commands.add_parser(name, help=summary, add_help=False)
    if not argv or argv[0] in ("-h", "--help") or argv[0] not in COMMANDS:
        parser.parse_args(argv[:1])  # usage, or "invalid choice: ... (choose from ...)", exit 2
    with errors_as_messages((ParamsError, FileNotFoundError, ValueError)):
        COMMANDS[argv[0]][1](argv[1:])


if __name__ == "__main__":
    main()
