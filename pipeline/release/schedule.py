"""Run a release's jobs as the DAG they are, on any executor.

An executor has submit(job, needs) and wait() -> (job id, result or None, error or None). A job starts
once every job it needs is done; a failed job's dependents are skipped with the reason, and jobs that
do not depend on it go on.
"""
from __future__ import annotations

import contextlib
from dataclasses import dataclass

from llmc.graph import progress
from llmc.release.plan import Job


@dataclass
class Outcome:
    job: Job
    status: str                 # done | failed | skipped
    result: dict | None = None
    error: str = ""


class _View:
    """Progress per device (convert and gen_config jobs count under "weights"): done of total, with the
    running and failed counts in the description."""

    def __init__(self, jobs: list[Job], stack: contextlib.ExitStack):
        self.groups = {}
        for job in jobs:
            self.groups.setdefault(self.group(job), []).append(job.id)
        self.running = {g: 0 for g in self.groups}
        self.failed = {g: 0 for g in self.groups}
        self.tasks = {g: stack.enter_context(progress.task(g, total=len(ids))) for g, ids in self.groups.items()}
        for g in self.groups:
            self._show(g)

    @staticmethod
    def group(job: Job) -> str:
        return job.device or "weights"

    def _show(self, g: str) -> None:
        self.tasks[g].update(f"{g}: {self.running[g]} running, {self.failed[g]} failed")

    def started(self, job: Job) -> None:
        self.running[self.group(job)] += 1
        self._show(self.group(job))

    def finished(self, job: Job, ok: bool, was_running: bool = True) -> None:
        g = self.group(job)
        self.running[g] -= was_running
        self.failed[g] += not ok
        self.tasks[g].advance(1)
        self._show(g)


def run(jobs: list[Job], executor) -> dict[str, Outcome]:
    by_id = {j.id: j for j in jobs}
    waiting = list(jobs)
    outcomes: dict[str, Outcome] = {}
    running: set[str] = set()
    with contextlib.ExitStack() as stack:
        view = _View(jobs, stack)
        while waiting or running:
            for job in list(waiting):
                states = [outcomes.get(d) for d in job.deps]
                if any(s is not None and s.status != "done" for s in states):
                    bad = next(s for s in states if s is not None and s.status != "done")
                    outcomes[job.id] = Outcome(job, "skipped", error=f"needs {bad.job.id}, which {bad.status}")
                    view.finished(job, False, was_running=False)
                    waiting.remove(job)
                elif all(s is not None for s in states):
                    executor.submit(job, {by_id[d].kind: outcomes[d].result for d in job.deps})
                    running.add(job.id)
                    view.started(job)
                    waiting.remove(job)
            if not running:
                continue
            job_id, result, error = executor.wait()
            running.discard(job_id)
            job = by_id[job_id]
            outcomes[job_id] = Outcome(job, "done", result) if error is None else Outcome(job, "failed", error=error)
            view.finished(job, error is None)
    return outcomes
