"""The default executor: jobs in worker processes on this machine, sharing its store."""
from __future__ import annotations

import multiprocessing
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool

from llmc.release import jobs
from llmc.release.plan import Job


class LocalExecutor:
    def __init__(self, store, workers: int):
        self.store = store
        remote = store.remote
        self.remote = (remote.url, remote.read_only) if remote is not None else (None, False)
        self.workers = workers
        self.pool = self._new_pool()
        self.futures = {}  # future -> (job id, the pool it runs in)

    def _new_pool(self) -> ProcessPoolExecutor:
        # spawn, not fork: the parent has threads (progress, the S3 client), and a forked lock stays locked.
        return ProcessPoolExecutor(max_workers=self.workers, mp_context=multiprocessing.get_context("spawn"))

    def submit(self, job: Job, needs: dict) -> None:
        future = self.pool.submit(jobs.in_worker, job.spec, needs, str(self.store.root), *self.remote)
        self.futures[future] = (job.id, self.pool)

    def wait(self):
        done, _ = wait(self.futures, return_when=FIRST_COMPLETED)
        future = next(iter(done))
        job_id, pool = self.futures.pop(future)
        try:
            result, error = future.result()
        except BrokenProcessPool:  # a worker died (killed, out of memory): that pool takes no more jobs
            result, error = None, "its worker process died (killed or out of memory); rerun the plan to build it"
            if pool is self.pool:
                self.pool = self._new_pool()
        return job_id, result, error

    def close(self) -> None:
        self.pool.shutdown(cancel_futures=True)
