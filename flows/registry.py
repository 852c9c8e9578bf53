"""Look at and steer the model registry by hand.

    python -m flows.registry status            versions, aliases and gate decisions
    python -m flows.registry rollback          move `champion` back to the version it replaced
    python -m flows.registry promote --version N [--reason TEXT]   make a version champion by hand

The registry is the one in params.yaml (tracking.uri, registry.name), or --uri / --name.
"""

from __future__ import annotations

import argparse
import sys

from mlflow.exceptions import MlflowException

from components.params.loading import ParamsError, load_params
from components.release.registry import CHALLENGER, CHAMPION, ModelRegistry, RegistryError, unreachable
from components.release.tracking import resolve_tracking_uri


def status(reg: ModelRegistry) -> str:
    versions = reg.versions()
    if not versions:
        return f"{reg.name!r} has no versions at {reg.uri}"
    lines = [f"{reg.name} at {reg.uri}", "version  aliases              state    decision  reason"]
    for v in versions:
        aliases = ",".join(sorted(v.aliases)) or "-"
        t = v.tags
        lines.append(
            f"v{v.version:<7} {aliases:<20} {t.get('ebft.state', '?'):<8} {t.get('gate.decision', '-'):<9} "
            f"{t.get('gate.manual') or t.get('gate.reason', '')}"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("command", choices=["status", "rollback", "promote"])
    parser.add_argument("--version", help="promote: the version to make champion")
    parser.add_argument("--reason", default="promoted by hand", help="promote: recorded as the tag gate.manual")
    parser.add_argument("--params", default="params.yaml")
    parser.add_argument("--uri", help="MLflow tracking/registry URI (default: from params.yaml)")
    parser.add_argument("--name", help="registered model name (default: registry.name)")
    args = parser.parse_args(argv)
    try:
        params = load_params(args.params) if not (args.uri and args.name) else None
    except ParamsError as err:
        sys.exit(f"error: {err}")
    uri = args.uri or resolve_tracking_uri(params.tracking.uri)
    reg = ModelRegistry(uri, args.name or params.registry.name)
    try:
        run(reg, args)
    except RegistryError as err:
        sys.exit(f"error: {err}")
    except (MlflowException, OSError) as err:
        if not unreachable(err):
            raise
        sys.exit(f"error: cannot reach the registry at {uri}: {str(err).splitlines()[0]}")


def run(reg: ModelRegistry, args: argparse.Namespace) -> None:
    if args.command == "rollback":
        old, new = reg.rollback()
        print(f"champion: v{old} -> v{new}")
    elif args.command == "promote":
        if not args.version:
            raise RegistryError("promote needs --version N")
        reg.promote(args.version, args.reason)
        print(f"champion: v{args.version} (by hand: {args.reason})")
    else:
        print(status(reg))
    champion, challenger = reg.alias(CHAMPION), reg.alias(CHALLENGER)
    version = lambda v: f"v{v.version}" if v else "-"  # noqa: E731
    print(f"@champion = {version(champion)}, @challenger = {version(challenger)}")


if __name__ == "__main__":
    main()
