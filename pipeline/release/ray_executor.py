"""`--ray`: each job a Ray task on a cluster (or a local Ray instance when no address is given).

Workers share artifacts through the store's remote tier: each node keeps its own local store
($LLMC_HOME there) as a cache, and a job whose key the remote already holds is fetched, not rebuilt.
Without a remote, only a local instance works (its workers share this machine's store).

A job that runs a program only some machines have (nvcc, ld64.lld, emcc) asks for the Ray resource
`llmc_tool_<program>`; nodes offer it with `ray start --resources "$(llmc release resources)"`. A job whose
resource no node offers fails with that said, and the others go on. A worker that dies mid-job (killed,
out of memory) is retried by Ray; the store's atomic commits leave nothing half-written behind it.
"""
from __future__ import annotations

import json
import os
import shutil

from llmc.errors import NotAvailable, UserError
from llmc.release import jobs
from llmc.release.plan import Job

RETRIES = 3
# Passed to every worker when set here (a node's own LLMC_HOME is never overridden).
FORWARDED_ENV = ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL",
                 "AWS_DEFAULT_REGION", "AWS_REGION", "TVM_NUM_THREADS")
TOOL_PROGRAMS = ("nvcc", "ld64.lld", "ld.lld", "emcc")


def resource_name(tool: str) -> str:
    return "llmc_tool_" + tool.replace(".", "_").replace("-", "_")


def local_resources(units: int = 1000) -> dict[str, int]:
    """The tool resources this machine can offer (for `ray start --resources`)."""
    return {resource_name(t): units for t in TOOL_PROGRAMS if shutil.which(t)}


class RayExecutor:
    def __init__(self, store, address: str | None, workers: int | None = None):
        try:
            import ray
        except ImportError:
            raise NotAvailable("--ray needs Ray (pip install 'llmc[ray]')") from None
        self.ray = ray
        address = address or os.environ.get("RAY_ADDRESS") or None
        remote = store.remote
        if remote is None and address is not None:
            raise UserError("--ray on a cluster needs a shared team cache for its workers: pass --remote "
                            "s3://bucket/prefix (or set LLMC_REMOTE)")
        # a node's own $LLMC_HOME (root None) with the remote; without one, this machine's store
        self.args = (None, remote.url, remote.read_only) if remote is not None else (str(store.root), None, False)
        env = {k: os.environ[k] for k in FORWARDED_ENV if k in os.environ}
        init = {"address": address, "runtime_env": {"env_vars": env}, "log_to_driver": False,
                "include_dashboard": False}
        if address is None and workers:
            init["num_cpus"] = workers
        try:
            ray.init(**init)
        except Exception as exc:  # noqa: BLE001 - a cluster that cannot be reached is the user's to fix
            raise UserError(f"cannot connect to Ray at {address or 'a new local instance'}: "
                            f"{' '.join(str(exc).split())}") from None
        self.offered = set(ray.cluster_resources())
        self.task = ray.remote(jobs.in_worker)
        self.refs = {}
        self.unrunnable: list[tuple[str, str]] = []

    def submit(self, job: Job, needs: dict) -> None:
        missing = [t for t in job.spec.get("tools", ()) if resource_name(t) not in self.offered]
        if missing:
            self.unrunnable.append((job.id, f"{job.spec['device']} needs {', '.join(missing)}, which no Ray node "
                                    "offers (start a node that has it with: ray start ... --resources "
                                    "\"$(llmc release resources)\")"))
            return
        options = {"num_cpus": 1, "max_retries": RETRIES, "retry_exceptions": False, "name": job.id,
                   "resources": {resource_name(t): 1 for t in job.spec.get("tools", ())}}
        ref = self.task.options(**options).remote(job.spec, needs, *self.args)
        self.refs[ref] = job.id

    def wait(self):
        if self.unrunnable:
            job_id, error = self.unrunnable.pop()
            return job_id, None, error
        ready, _ = self.ray.wait(list(self.refs), num_returns=1)
        job_id = self.refs.pop(ready[0])
        try:
            result, error = self.ray.get(ready[0])
        except Exception as exc:  # noqa: BLE001 - retries exhausted: the worker kept dying
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
            result, error = None, f"its Ray worker failed {RETRIES + 1} times ({type(exc).__name__}: {first})"
        return job_id, result, error

    def close(self) -> None:
        self.ray.shutdown()


def resources_json() -> str:
    return json.dumps(local_resources(), sort_keys=True)
