"""Group commit: the writes of many concurrent sync sessions in one transaction.

    commit = GroupCommit(lambda: Store(target))     # a writer thread with its own connection
    fut = commit.submit("store_batch_in_transaction", device_id, raws, now)
    up_to = await asyncio.wrap_future(fut)          # resolved only after the COMMIT
    commit.close()

One durable COMMIT (an fsync on SQLite, a WAL flush on PostgreSQL) costs about as much for one
batch as for a hundred, so the writer thread takes every job queued while the previous
transaction was committing and runs them all in the next one, in submission order. Each
job's future is resolved only after that transaction committed: the sync server sends a
batch's ACK only then ("acknowledge only after commit" holds as before). Jobs are Store
method names and their arguments, run against the writer's own Store.

A job that raises FormatError (a batch the store refuses) does so before it writes anything
(store.store_batch_in_transaction promises it), so only that job's future fails. When the
transaction itself fails (the driver's error: a full disk, a lost connection, a deadlock
between two front ends on PostgreSQL), nothing of it was committed, and every job of it is
run again in a transaction of its own, so one bad job fails alone and the rest commit.

Idempotency is the store's: records by (device_id, seq), the device row locked while its
batch is stored; several front ends, each with its own GroupCommit, stay correct.
"""

import concurrent.futures
import queue
import threading
from collections.abc import Callable
from typing import Any

from protocol.errors import FormatError

MAX_JOBS = 1024  # jobs in one transaction at most (a bound on its size and on lock time)


class GroupCommit:
    def __init__(self, open_store: Callable[[], Any], max_jobs: int = MAX_JOBS) -> None:
        self.max_jobs = max_jobs
        self.transactions = 0  # committed (a job run again alone counts too)
        self.jobs = 0
        self._q: queue.SimpleQueue = queue.SimpleQueue()
        self._ready = threading.Event()
        self._failed: BaseException | None = None
        self._open = open_store
        self._thread = threading.Thread(target=self._run, name="group-commit", daemon=True)
        self._thread.start()
        self._ready.wait()
        if self._failed is not None:
            raise self._failed

    def submit(self, method: str, *args: Any) -> concurrent.futures.Future:
        """Queue `store.method(*args)`; the future holds its result once it is committed."""
        fut: concurrent.futures.Future = concurrent.futures.Future()
        self._q.put((method, args, fut))
        return fut

    def close(self) -> None:
        """Commit what is queued, then stop the writer and close its store."""
        self._q.put(None)
        self._thread.join(30)

    def _run(self) -> None:
        try:
            store = self._open()
        except BaseException as e:  # StoreUnavailable: said by the constructor
            self._failed = e
            self._ready.set()
            return
        self.errors = store.errors
        self._ready.set()
        stop = False
        while not stop:
            job = self._q.get()
            if job is None:
                break
            jobs = [job]
            while len(jobs) < self.max_jobs:
                try:
                    more = self._q.get_nowait()
                except queue.Empty:
                    break
                if more is None:
                    stop = True
                    break
                jobs.append(more)
            # a job whose session was cancelled (its waiter gone) is dropped: never acked
            jobs = [j for j in jobs if j[2].set_running_or_notify_cancel()]
            if jobs:
                self._commit(store, jobs)
        store.close()

    def _commit(self, store: Any, jobs: list) -> None:
        done: list[tuple[concurrent.futures.Future, bool, Any]] = []
        try:
            with store.transaction():
                for method, args, fut in jobs:
                    try:
                        done.append((fut, True, getattr(store, method)(*args)))
                    except FormatError as e:  # raised before it wrote: the others go on
                        done.append((fut, False, e))
        except store.errors as e:
            if len(jobs) > 1:
                for job in jobs:  # nothing committed: each alone, so a bad one fails alone
                    self._commit(store, [job])
                return
            jobs[0][2].set_exception(e)
            return
        except BaseException as e:  # a bug: every waiting session hears of it
            for _method, _args, fut in jobs:
                fut.set_exception(e)
            return
        self.transactions += 1
        self.jobs += len(jobs)
        for fut, ok, value in done:
            if ok:
                fut.set_result(value)
            else:
                fut.set_exception(value)
