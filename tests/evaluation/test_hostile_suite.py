"""The hostile corpus (tests/evaluation/hostile/cases.py), two runs at a time beside ordinary samples: no false pass and
no leak with namespaces; without them the sandbox refuses to run unless told to, and the opt-in fallback still has no
false pass (its leaks are the ones docs/evaluation.md lists)."""

import os
from unittest import mock

import pytest

from components.evaluation import sandbox
from components.evaluation.code_tasks import humaneval_problems
from components.evaluation.sandbox import SandboxUnavailable
from tests.evaluation.hostile.cases import CASES
from tests.evaluation.hostile.suite import run_suite

pytestmark = pytest.mark.slow
FALLBACK_LEAKS = {  # what only namespaces stop: the network and the host's process list
    "connect to a local service (ctypes, past the audit hook)",
    "connect to a local service (child interpreter)",
    "read other processes' command lines",
}
MEMORY, PRIVATE_FILE = "memory held across forks beyond the limit", "read the evaluator user's private file"


def needs_of(case: str) -> str:
    """Why this machine cannot contain ``case`` (docs/evaluation.md, "What the sandbox needs"), or ""."""
    if case == MEMORY and not sandbox._cgroups_available():
        return "no writable cgroup here: memory is limited per process only"
    if case == PRIVATE_FILE and os.geteuid() != 0:
        return "not root: runs cannot get a user of their own, so they can read this user's files"
    return ""


@pytest.fixture(scope="module")
def isolated():
    return run_suite(workers=2)


@pytest.mark.parametrize("case", [c.name for c in CASES])
def test_each_hostile_case_is_contained(isolated, case):
    if needs_of(case):
        pytest.skip(needs_of(case))
    (row,) = [r for r in isolated["rows"] if r["case"] == case]
    assert row["contained"], row


def test_ordinary_samples_beside_them_keep_their_verdicts(isolated):
    assert isolated["ordinary_samples"] == 8 and isolated["ordinary_disturbed"] == []
    assert isolated["false_passes"] == 0


def test_without_namespaces_generated_code_is_refused_unless_opted_in():
    problem = humaneval_problems()[0]
    with mock.patch.object(sandbox, "_namespace_prefix", lambda: ()):
        with pytest.raises(SandboxUnavailable, match="require_namespaces: false"):
            problem.run_tests(problem.reference, sandbox.SandboxLimits())
        weak = sandbox.SandboxLimits(require_namespaces=False)
        assert problem.run_tests(problem.reference, weak).status == "pass"


def test_the_opted_in_fallback_has_no_false_pass_and_only_the_known_leaks():
    figures = run_suite(workers=2, without_namespaces=True)
    assert figures["false_passes"] == 0 and figures["ordinary_disturbed"] == []
    allowed = FALLBACK_LEAKS | {c.name for c in CASES if needs_of(c.name)}
    assert {r["case"] for r in figures["rows"] if r["leak"]} <= allowed
