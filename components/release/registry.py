"""The MLflow model registry as the pipeline uses it: versions with lineage, `challenger` / `champion` aliases,
rollback.

A version is created with every lineage tag in one call and the tag ``ebft.state=pending``. The gate's numbers are
written as tags next, then ``ebft.decided`` (the commit point: the decision is complete); then the aliases move
(champion first when promoting, then challenger) and the state becomes ``final``. The next run (under the pipeline
lock, so no live run of this project owns a pending version) makes every interrupted registration of *this project*
converge (``discard_incomplete``): a version that died before its decision was complete has no alias and is deleted
(that run's model is registered and gated again, as if the dead run had not happened); one that died after it gets
the rest of its commit, exactly as the dead run would have done it.
So an alias only ever points at a fully tagged version.

Several projects may share one registry (and one registered model). Each version records the project that created it
(``ebft.project``: host and folder, the scope of the project lock); a project only ever cleans up its own versions,
because only for those does holding the lock prove that their run is dead. Another project's pending version is
left alone and named in the report.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Mapping
from pathlib import Path

from mlflow import MlflowClient
from mlflow.entities.model_registry import ModelVersion
from mlflow.exceptions import MlflowException

from components.release.tracking import tracking_uri_scope

CHAMPION, CHALLENGER = "champion", "challenger"
STATE, PENDING, FINAL = "ebft.state", "pending", "final"
DECIDED = "ebft.decided"  # promote | keep, written after every decision tag
PREVIOUS_CHAMPION = "ebft.previous_champion"
PROJECT = "ebft.project"  # host:folder of the project whose run created the version


def project_id(project: Path) -> str:
    """The scope of one project lock: this host and the project's folder."""
    return f"{socket.gethostname()}:{project.resolve()}"


def number(version: ModelVersion | None) -> str | None:
    """A version's number as a string (REST stores answer "3", SQL stores 3), None for no version."""
    return None if version is None else str(version.version)


def unreachable(err: BaseException) -> bool:
    """True for what a flaky server or network explains (worth a retry); a bug or bad input fails the same way again."""
    if isinstance(err, ConnectionError | TimeoutError | OSError):
        return True
    if not isinstance(err, MlflowException):
        return False
    # the REST client's own retries are exhausted ("API request to ... failed"), or the server says to wait
    exhausted = "API request to" in str(err) and "failed with exception" in str(err)
    return exhausted or err.error_code in ("TEMPORARILY_UNAVAILABLE", "REQUEST_LIMIT_EXCEEDED")


class RegistryError(RuntimeError):
    """A registry request that cannot be honoured (e.g. no earlier champion to roll back to)."""


class ModelRegistry:
    def __init__(self, uri: str, name: str):
        self.uri, self.name = uri, name
        self.client = MlflowClient(tracking_uri=uri, registry_uri=uri)

    # --- reading -------------------------------------------------------------------------------------------------
    def versions(self) -> list[ModelVersion]:
        """Every version, oldest first, with its aliases (one request per version: for people, not hot paths)."""
        return [self.client.get_model_version(self.name, number(v)) for v in self._search()]

    def _search(self) -> list[ModelVersion]:
        """Every version, oldest first, tags included; aliases only where the store fills them in (SQL does not)."""
        try:
            found = self.client.search_model_versions(f"name='{self.name}'")
        except MlflowException as err:
            if err.error_code == "RESOURCE_DOES_NOT_EXIST":
                return []
            raise
        return sorted(found, key=lambda v: int(v.version))

    def aliases(self, version: ModelVersion) -> list[str]:
        """The aliases on ``version`` now (search results carry none on some stores; the version itself does)."""
        return self.client.get_model_version(self.name, number(version)).aliases

    def alias(self, alias: str) -> ModelVersion | None:
        try:
            return self.client.get_model_version_by_alias(self.name, alias)
        except MlflowException as err:
            if err.error_code in ("RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE"):
                return None
            raise

    def find(self, **tags: str) -> ModelVersion | None:
        """The newest final version whose tags include all of ``tags``."""
        matches = [
            v
            for v in self._search()
            if v.tags.get(STATE) == FINAL and all(v.tags.get(k) == str(val) for k, val in tags.items())
        ]
        return matches[-1] if matches else None

    def download_run_artifacts(self, version: ModelVersion, artifact_path: str, dst: Path) -> Path:
        dst.mkdir(parents=True, exist_ok=True)
        return Path(self.client.download_artifacts(version.run_id, artifact_path, str(dst)))

    def download_model(self, version: ModelVersion, dst: Path) -> Path:
        """The version's model as a plain HF folder (weights and tokenizer) in ``dst``, through the public
        transformers-flavour loader (the flavour's file layout is MLflow's business)."""
        import mlflow

        with tracking_uri_scope(self.uri):
            parts = mlflow.transformers.load_model(f"models:/{self.name}/{number(version)}", return_type="components")
        parts["model"].save_pretrained(dst, safe_serialization=True)
        parts["tokenizer"].save_pretrained(dst)
        return dst

    # --- writing -------------------------------------------------------------------------------------------------
    def register(self, model_uri: str, run_id: str, tags: Mapping[str, str], project: str) -> ModelVersion:
        """A new pending version of the logged model ``model_uri`` (``models:/m-<id>``) of run ``run_id`` made by
        ``project`` (see ``project_id``), carrying ``tags`` (created in one call)."""
        try:
            self.client.create_registered_model(self.name, description="EBFT pipeline models (see version tags)")
        except MlflowException as err:
            if err.error_code != "RESOURCE_ALREADY_EXISTS":
                raise
        # MLflow 3: a logged model's source is its models:/m-<id> URI (runs:/ URIs do not resolve). A local (SQLite)
        # registry looks that model up through the *global* tracking URI, so it is pointed at this store meanwhile.
        with tracking_uri_scope(self.uri):
            return self.client.create_model_version(
                self.name,
                source=model_uri,
                run_id=run_id,
                tags={**tags, PROJECT: project, STATE: PENDING},
                model_id=model_uri.removeprefix("models:/"),
            )

    def commit(self, version: ModelVersion, decision_tags: Mapping[str, str], promote: bool) -> None:
        """Write the gate's decision and mark it complete, then move the aliases and mark the version final."""
        v = number(version)
        for key, value in decision_tags.items():
            self.client.set_model_version_tag(self.name, v, key, str(value))
        self.client.set_model_version_tag(self.name, v, DECIDED, "promote" if promote else "keep")
        self._finish(v, promote)

    def _finish(self, version: str, promote: bool) -> None:
        """The commit after its decision: champion (when promoting), challenger, final. Repeating it is harmless."""
        if promote:
            self._make_champion(version)
        self.client.set_registered_model_alias(self.name, CHALLENGER, version)
        self.client.set_model_version_tag(self.name, version, STATE, FINAL)

    def _make_champion(self, version: str) -> None:
        current = self.alias(CHAMPION)
        if number(current) == version:
            return
        self.client.set_model_version_tag(self.name, version, PREVIOUS_CHAMPION, number(current) or "")
        self.client.set_model_version_tag(self.name, version, "ebft.promoted_at", time.strftime("%Y-%m-%dT%H:%M:%SZ"))
        self.client.set_registered_model_alias(self.name, CHAMPION, version)

    def discard(self, version: ModelVersion) -> bool:
        """Delete ``version`` if it never reached the commit point; True if it was deleted."""
        if self.aliases(version):
            return False
        self.client.delete_model_version(self.name, version.version)
        return True

    def discard_incomplete(self, project: str) -> list[str]:
        """Clean up after runs of ``project`` that died mid-registration (the caller holds its project lock, so none
        of them is alive); returns what was done and what was left, for the report."""
        done = []
        for v in self._search():
            if v.tags.get(STATE) != PENDING:
                continue
            if v.tags.get(PROJECT) != project:
                age_h = (time.time() * 1000 - int(v.creation_timestamp or 0)) / 3.6e6
                owner = v.tags.get(PROJECT, "an unknown project")
                done.append(f"v{v.version}: left pending (created {age_h:.1f} h ago by {owner}, not this project)")
                continue
            decided = v.tags.get(DECIDED)
            if decided or self.aliases(v):  # died after the commit point: the decision is complete
                self._finish(number(v), promote=decided == "promote")
                done.append(f"v{v.version}: finished an interrupted commit")
            else:
                self.client.delete_model_version(self.name, v.version)
                done.append(f"v{v.version}: deleted (registration was interrupted before its gate decision)")
        return done

    def promote(self, version: str, reason: str) -> None:
        """Make ``version`` champion by hand (recorded as a manual decision)."""
        found = self._version(str(version))
        if found.tags.get(STATE) != FINAL:
            raise RegistryError(f"version {version} of {self.name!r} is not final (state {found.tags.get(STATE)!r})")
        self.client.set_model_version_tag(self.name, str(version), "gate.manual", reason)
        self._make_champion(str(version))

    def _version(self, version: str) -> ModelVersion:
        try:
            return self.client.get_model_version(self.name, version)
        except MlflowException as err:
            if err.error_code not in ("RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE"):
                raise
        existing = ", ".join(f"v{v.version}" for v in self._search()) or "none"
        raise RegistryError(f"{self.name!r} has no version {version!r} (its versions: {existing})") from None

    def rollback(self) -> tuple[str, str]:
        """Move ``champion`` back to the version it replaced; returns (from, to)."""
        current = self.alias(CHAMPION)
        if current is None:
            raise RegistryError(f"{self.name!r} has no champion to roll back")
        previous = current.tags.get(PREVIOUS_CHAMPION, "")
        if not previous:
            raise RegistryError(f"champion v{current.version} of {self.name!r} was the first; nothing precedes it")
        self._version(previous)  # still exists
        self.client.set_registered_model_alias(self.name, CHAMPION, previous)
        self.client.set_model_version_tag(
            self.name, current.version, "ebft.rolled_back_at", time.strftime("%Y-%m-%dT%H:%M:%SZ")
        )
        return number(current), previous
