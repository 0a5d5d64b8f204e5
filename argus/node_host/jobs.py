"""The node-host's background jobs: processes with captured output that outlive a call.

A job is one process (no shell: ``argv`` as given), started in its own process group with
stdin at /dev/null and an environment scrubbed of ``ARGUS_*`` secrets. Its output goes to
``stdout.log``/``stderr.log`` in the job's directory while it runs (each file capped at
``LOG_CAP``; counting continues past it), and the last ``TAIL_CAP`` bytes of each stream are
kept in memory for results and events. ``meta.json`` is written atomically (temp + rename).

Jobs live in ``<state dir>/jobs/<jobId>/`` and survive a node-host restart: a job that was
running when the agent stopped is marked ``orphaned`` (with ``alive`` saying whether its
process still exists). At most ``KEEP_FINISHED`` finished jobs are kept; older ones are
deleted. All file I/O runs in worker threads.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import signal
import subprocess
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import trio

from ..procs import ByteTail, now_ms, read_chunks, signal_group

log = logging.getLogger(__name__)

TAIL_CAP = 64 * 1024
EVENT_TAIL_CHARS = 4000
LOG_CAP = 8 * 1024 * 1024
KEEP_FINISHED = 200
MAX_RUNNING = 64
KILL_GRACE_S = 2.0


def child_environment(extra: dict[str, str] | None) -> dict[str, str]:
    """The node-host's environment minus every ARGUS_* variable, plus ``extra``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("ARGUS_")}
    env.update(extra or {})
    return env


def new_tail() -> ByteTail:
    """The kept end of one job stream (``TAIL_CAP`` bytes)."""
    return ByteTail(TAIL_CAP)


@dataclass(eq=False)
class Job:
    """One job: its metadata and, while it runs, its process and output tails."""

    meta: dict[str, Any]
    process: trio.Process | None = None
    stdout: ByteTail = field(default_factory=new_tail)
    stderr: ByteTail = field(default_factory=new_tail)
    finished: trio.Event = field(default_factory=trio.Event)

    @property
    def id(self) -> str:
        """The job id."""
        return self.meta["jobId"]


class JobStore:
    """All jobs of one node-host, on disk and in memory."""

    def __init__(self, state_dir: Path, node_id: str, on_exit: Callable[[Job], None]) -> None:
        self.dir = state_dir / "jobs"
        self.node_id = node_id
        self.jobs: dict[str, Job] = {}
        self.on_exit = on_exit

    async def load(self) -> None:
        """Read the jobs of earlier runs; running ones become orphans."""

        def read() -> list[dict[str, Any]]:
            self.dir.mkdir(parents=True, exist_ok=True)
            metas = []
            for meta_path in self.dir.glob("*/meta.json"):
                try:
                    meta = json.loads(meta_path.read_text())
                except (OSError, ValueError):
                    continue
                if isinstance(meta, dict) and isinstance(meta.get("jobId"), str):
                    if meta.get("running"):
                        meta.update(running=False, orphaned=True, alive=_alive(meta.get("pid")))
                        _write_meta(meta_path.parent, meta)
                    metas.append(meta)
            return metas

        for meta in await trio.to_thread.run_sync(read):
            self.jobs[meta["jobId"]] = Job(meta)
        await self.prune()

    def running(self) -> int:
        """How many jobs run now."""
        return sum(1 for j in self.jobs.values() if j.meta.get("running"))

    async def start(
        self,
        nursery: trio.Nursery,
        argv: list[str],
        cwd: str | None,
        env: dict[str, str] | None,
        timeout_ms: int | None,
    ) -> Job:
        """Spawn a job; raises OSError when the process cannot start."""
        job_id = str(uuid.uuid4())
        meta: dict[str, Any] = {
            "version": 1,
            "jobId": job_id,
            "nodeId": self.node_id,
            "argv": argv,
            "cwd": cwd,
            "createdAtMs": now_ms(),
            "startedAtMs": None,
            "endedAtMs": None,
            "pid": None,
            "running": True,
            "orphaned": False,
            "timeoutMs": timeout_ms,
            "notifyOnExit": False,
            "exitCode": None,
            "signal": None,
            "timedOut": False,
            "stdoutBytes": 0,
            "stderrBytes": 0,
        }
        process = await trio.lowlevel.open_process(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            cwd=cwd,
            env=child_environment(env),
            start_new_session=True,
        )
        meta.update(pid=process.pid, startedAtMs=now_ms())
        job = Job(meta, process)
        self.jobs[job_id] = job
        job_dir = self.dir / job_id
        await trio.to_thread.run_sync(
            lambda: (job_dir.mkdir(parents=True), _write_meta(job_dir, meta))
        )
        nursery.start_soon(self._supervise, job, job_dir, timeout_ms)
        return job

    async def _supervise(self, job: Job, job_dir: Path, timeout_ms: int | None) -> None:
        process = job.process
        assert process is not None and process.stdout is not None and process.stderr is not None
        async with trio.open_nursery() as nursery:
            nursery.start_soon(_pump, process.stdout, job.stdout, job_dir / "stdout.log")
            nursery.start_soon(_pump, process.stderr, job.stderr, job_dir / "stderr.log")
            if timeout_ms and timeout_ms > 0:
                with trio.move_on_after(timeout_ms / 1000):
                    await process.wait()
                if process.returncode is None:
                    job.meta["timedOut"] = True
                    signal_group(process, signal.SIGKILL)
            await process.wait()
        rc = process.returncode
        job.meta.update(
            running=False,
            endedAtMs=now_ms(),
            exitCode=rc if rc is not None and rc >= 0 else None,
            signal=signal.Signals(-rc).name if rc is not None and rc < 0 else None,
            stdoutBytes=job.stdout.total,
            stderrBytes=job.stderr.total,
            stdoutTruncated=job.stdout.truncated,
            stderrTruncated=job.stderr.truncated,
        )
        await trio.to_thread.run_sync(_write_meta, job_dir, job.meta)
        job.finished.set()
        self.on_exit(job)
        await self.prune()

    async def kill(self, job: Job) -> str:
        """SIGTERM the job's process group, then SIGKILL after a grace; the last signal sent."""
        process = job.process
        if process is None or process.returncode is not None:
            return "none"
        signal_group(process, signal.SIGTERM)
        with trio.move_on_after(KILL_GRACE_S):
            await job.finished.wait()
            return "SIGTERM"
        signal_group(process, signal.SIGKILL)
        with trio.move_on_after(KILL_GRACE_S):
            await job.finished.wait()
        return "SIGKILL"

    async def read_logs(self, job: Job, tail_bytes: int) -> tuple[str, str]:
        """The last ``tail_bytes`` of each stream (memory while running, else the files)."""
        if job.meta.get("running"):
            return job.stdout.text(tail_bytes), job.stderr.text(tail_bytes)
        job_dir = self.dir / job.id

        def read(name: str) -> str:
            try:
                with (job_dir / name).open("rb") as f:
                    f.seek(0, os.SEEK_END)
                    f.seek(max(0, f.tell() - tail_bytes))
                    return f.read().decode("utf-8", "replace")
            except OSError:
                return ""

        return await trio.to_thread.run_sync(read, "stdout.log"), await trio.to_thread.run_sync(
            read, "stderr.log"
        )

    async def prune(self) -> None:
        """Delete the oldest finished jobs beyond ``KEEP_FINISHED``."""
        finished = [
            j for j in self.jobs.values() if not j.meta.get("running") and j.meta.get("endedAtMs")
        ]
        finished.sort(key=lambda j: j.meta["endedAtMs"], reverse=True)
        for job in finished[KEEP_FINISHED:]:
            del self.jobs[job.id]
            await trio.to_thread.run_sync(shutil.rmtree, self.dir / job.id, True)

    def listing(self) -> list[dict[str, Any]]:
        """``process.list``: running first, then newest."""
        keys = (
            "jobId",
            "running",
            "orphaned",
            "pid",
            "argv",
            "cwd",
            "createdAtMs",
            "startedAtMs",
            "endedAtMs",
            "exitCode",
            "signal",
            "timedOut",
        )
        jobs = [{k: j.meta.get(k) for k in keys} for j in self.jobs.values()]
        jobs.sort(key=lambda m: (not m["running"], -(m["startedAtMs"] or m["createdAtMs"] or 0)))
        return jobs

    def describe(self, job: Job) -> dict[str, Any]:
        """``process.get``: the metadata with live byte counts."""
        meta = dict(job.meta)
        if meta.get("running"):
            meta.update(stdoutBytes=job.stdout.total, stderrBytes=job.stderr.total)
        return meta


async def _pump(stream: trio.abc.ReceiveStream, tail: ByteTail, path: Path) -> None:
    written = 0
    with open(path, "ab") as f:  # noqa: ASYNC230 - writes go through to_thread below
        async for chunk in read_chunks(stream):
            tail.feed(chunk)
            if written < LOG_CAP:
                piece = chunk[: LOG_CAP - written]
                written += len(piece)
                await trio.to_thread.run_sync(f.write, piece)


def _write_meta(job_dir: Path, meta: dict[str, Any]) -> None:
    tmp = job_dir / "meta.json.tmp"
    tmp.write_text(json.dumps(meta, indent=2) + "\n")
    os.replace(tmp, job_dir / "meta.json")


def _alive(pid: Any) -> bool:
    if not isinstance(pid, int):
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
