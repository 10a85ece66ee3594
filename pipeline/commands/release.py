"""`llmc release`: build a plan of models x quantizations x devices once, publish it with its index;
verify a published release."""
from __future__ import annotations

import sys
import time
from dataclasses import dataclass, field

from llmc.release import index as release_index
from llmc.release import plan as release_plan
from llmc.release import schedule


@dataclass
class ReleaseResult:
    output: str
    outcomes: dict                      # job id -> schedule.Outcome
    seconds: float
    index: bytes | None = None          # release.json, when everything built and was published
    messages: list[str] = field(default_factory=list)

    @property
    def failed(self) -> list:
        return [o for o in self.outcomes.values() if o.status != "done"]

    def counts(self) -> dict[str, int]:
        """Jobs that ran a stage, jobs served whole from the caches, and jobs that failed or were skipped."""
        done = [o for o in self.outcomes.values() if o.status == "done"]
        built = sum(1 for o in done if o.result["counts"]["run"] > 0)
        return {"jobs": len(self.outcomes), "built": built, "reused": len(done) - built, "failed": len(self.failed)}

    def report(self) -> None:
        for line in self.messages:
            print(line, file=sys.stderr)
        c = self.counts()
        print(f"release: {c['jobs']} jobs, {c['built']} built, {c['reused']} reused, {c['failed']} failed, "
              f"{self.seconds:.1f} s" + (f" -> {self.output}" if self.index is not None else ""), file=sys.stderr)


def build_release(plan_path: str, store, output: str | None = None, workers: int = 1, ray: bool = False,
                  ray_address: str | None = None, started: float | None = None) -> ReleaseResult:
    """Check the whole plan, run its jobs (here in worker processes, or as Ray tasks), and publish the
    outputs with release.json only if every job succeeded (a failed job does not stop the others; rerun
    the plan to build what is missing)."""
    started = time.monotonic() if started is None else started
    plan = release_plan.load(plan_path, output)
    jobs = release_plan.jobs(plan)
    store.ensure()
    if ray:
        from llmc.release.ray_executor import RayExecutor

        executor = RayExecutor(store, ray_address, workers if workers > 1 else None)
    else:
        from llmc.release.local_executor import LocalExecutor

        executor = LocalExecutor(store, max(1, workers))
    try:
        outcomes = schedule.run(jobs, executor)
    finally:
        executor.close()
    result = ReleaseResult(plan.output, outcomes, 0.0)
    result.messages = [f"failed: {o.job.id}: {o.error}" if o.status == "failed" else f"skipped: {o.job.id}: {o.error}"
                       for o in result.failed]
    if not result.failed:
        result.index = release_index.publish(plan, outcomes, store, plan.output)
    result.seconds = time.monotonic() - started
    return result


def verify_release(location: str) -> tuple[int, list[str]]:
    return release_index.verify(location)
