"""The node-host's jobs: processes it started, in memory and under ``<state>/jobs/<id>/``.

Why a job store: ``system.run`` may "yield" (return ``{running, jobId}`` after ``yieldMs``)
while the process keeps running; the agent must then answer ``process.*`` about it and
report its completion later, even across a reconnect. Meta is written atomically (temp file
and rename, in a worker thread); output is kept as an in-memory tail per stream (2 MiB,
oldest bytes dropped) and written to ``stdout.log``/``stderr.log`` at exit. Jobs found
running at start-up belonged to a previous agent and are marked ``orphaned``; the agent also
marks its running jobs orphaned when it stops. Completed jobs beyond 200 are pruned.

Children run in their own session (process group) with stdin on /dev/null, so a kill or a
timeout reaches grandchildren too (the original killed only the direct child, and a ``sh -c``
pipeline kept running).
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import signal
import subprocess
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import trio

log = logging.getLogger(__name__)

TAIL_BYTES = 2 * 1024 * 1024  # per stream, newest kept
RESULT_CAP = 64 * 1024  # per stream in a synchronous system.run result
EVENT_TAIL_CHARS = 4000
KEEP_COMPLETED = 200
KILL_GRACE_S = 1.5
MAX_YIELD_MS = 3_600_000
DEFAULT_YIELD_MS = 10_000


def now_ms() -> int:
    """Wall-clock milliseconds."""
    return int(time.time() * 1000)


class Tail:
    """A byte tail: keeps the newest ``cap`` bytes and counts everything."""

    def __init__(self, cap: int = TAIL_BYTES) -> None:
        self.cap = cap
        self.buf = bytearray()
        self.total = 0

    def feed(self, data: bytes) -> None:
        """Append ``data``, dropping the oldest bytes beyond the cap."""
        self.total += len(data)
        self.buf += data
        if len(self.buf) > self.cap:
            del self.buf[: len(self.buf) - self.cap]

    def text(self, limit: int | None = None) -> str:
        """The last ``limit`` bytes, decoded leniently."""
        data = bytes(self.buf if limit is None else self.buf[-limit:])
        return data.decode("utf-8", "replace")

    @property
    def truncated(self) -> bool:
        """True once output went past the tail."""
        return self.total > self.cap


class JobError(Exception):
    """A command failure with a node error code (BAD_INPUT, NOT_FOUND, ...)."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


class Job:
    """One process and its metadata."""

    def __init__(self, meta: dict[str, Any], directory: Path) -> None:
        self.meta = meta
        self.dir = directory
        self.out = Tail()
        self.err = Tail()
        self.done = trio.Event()
        self.process: trio.Process | None = None

    @property
    def running(self) -> bool:
        """True while the process runs under this agent."""
        return bool(self.meta.get("running")) and self.process is not None

    def kill_group(self, sig: int) -> None:
        """Signal the job's whole process group."""
        if self.process is None or self.done.is_set():
            return
        try:
            os.killpg(self.process.pid, sig)
        except (ProcessLookupError, PermissionError):
            pass


def _write_json_atomic(path: Path, data: dict[str, Any]) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(data, indent=2) + "\n")
    os.replace(tmp, path)


def _load_all(jobs_dir: Path) -> list[tuple[Path, dict[str, Any]]]:
    out = []
    if not jobs_dir.is_dir():
        return out
    for d in jobs_dir.iterdir():
        try:
            meta = json.loads((d / "meta.json").read_text())
        except (OSError, ValueError):
            continue
        if isinstance(meta, dict):
            if meta.get("running"):
                meta.update(running=False, orphaned=True)
                _write_json_atomic(d / "meta.json", meta)
            out.append((d, meta))
    return out


def child_env(extra: Any) -> dict[str, str]:
    """The agent's environment minus every ARGUS_* secret, plus string-valued ``extra``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("ARGUS_")}
    if isinstance(extra, dict):
        env.update({str(k): v for k, v in extra.items() if isinstance(v, str)})
    return env


class JobStore:
    """All jobs of one agent; ``emit`` receives ``node.process.exited`` payloads."""

    def __init__(
        self,
        state_dir: Path,
        node_id: str,
        session_id: str | None,
        emit: Callable[[dict[str, Any]], None],
    ) -> None:
        self.state_dir = state_dir
        self.jobs_dir = state_dir / "jobs"
        self.node_id = node_id
        self.session_id = session_id
        self.emit = emit
        self.jobs: dict[str, Job] = {}
        self.nursery: trio.Nursery | None = None

    async def load(self) -> None:
        """Load jobs from disk, marking leftovers orphaned, and prune."""
        await trio.to_thread.run_sync(lambda: self.jobs_dir.mkdir(parents=True, exist_ok=True))
        for d, meta in await trio.to_thread.run_sync(_load_all, self.jobs_dir):
            job = Job(meta, d)
            job.done.set()
            self.jobs[str(meta.get("jobId") or d.name)] = job
        await self._prune()

    async def serve(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Own the jobs' tasks; on stop, mark still-running jobs orphaned."""
        try:
            async with trio.open_nursery() as nursery:
                self.nursery = nursery
                task_status.started()
                await trio.sleep_forever()
        finally:
            with trio.CancelScope(shield=True):
                for job in self.jobs.values():
                    if job.meta.get("running"):
                        job.meta.update(running=False, orphaned=True)
                        await self._save(job)

    async def _save(self, job: Job) -> None:
        await trio.to_thread.run_sync(_write_json_atomic, job.dir / "meta.json", dict(job.meta))

    async def _prune(self) -> None:
        done = [
            j for j in self.jobs.values() if j.meta.get("endedAtMs") and not j.meta.get("running")
        ]
        done.sort(key=lambda j: j.meta.get("endedAtMs") or 0, reverse=True)
        for job in done[KEEP_COMPLETED:]:
            self.jobs.pop(str(job.meta.get("jobId")), None)
            await trio.to_thread.run_sync(lambda d=job.dir: shutil.rmtree(d, ignore_errors=True))

    def get(self, params: Any, command: str) -> Job:
        """The job named by ``params.jobId``, or BAD_INPUT / NOT_FOUND."""
        job_id = str((params or {}).get("jobId") or "").strip() if isinstance(params, dict) else ""
        if not job_id:
            raise JobError("BAD_INPUT", f"{command} requires jobId")
        job = self.jobs.get(job_id)
        if job is None:
            raise JobError("NOT_FOUND", f"unknown jobId: {job_id}")
        return job

    # -- system.run ------------------------------------------------------------------------

    async def run(self, params: Any, frame_timeout_ms: int | None) -> dict[str, Any]:
        """``system.run``: start, wait up to the effective ``yieldMs``, report."""
        p = params if isinstance(params, dict) else {}
        argv = p.get("argv")
        if not (isinstance(argv, list) and argv and all(isinstance(a, str) for a in argv)):
            raise JobError("BAD_INPUT", "system.run requires argv: string[]")
        cwd = p.get("cwd") if isinstance(p.get("cwd"), str) and p["cwd"].strip() else None
        if cwd is not None and not await trio.to_thread.run_sync(os.path.isdir, cwd):
            raise JobError("BAD_INPUT", f"cwd does not exist: {cwd}")
        timeout_ms = p.get("timeoutMs")
        timeout_ms = timeout_ms if type(timeout_ms) in (int, float) and timeout_ms > 0 else None
        yield_ms = p.get("yieldMs")
        yield_ms = int(yield_ms) if type(yield_ms) in (int, float) else DEFAULT_YIELD_MS
        yield_ms = max(0, min(MAX_YIELD_MS, yield_ms))
        if frame_timeout_ms:
            # Answer before the gateway stops waiting, else the result would be lost.
            yield_ms = max(0, min(yield_ms, frame_timeout_ms - 1000))
        notify = p.get("notifyOnExit")
        mode = "always" if notify is True else "never" if notify is False else "auto"
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
            "yieldMs": yield_ms,
            "notifyOnExit": mode == "always",
            "notifyOnExitMode": mode,
            "exitCode": None,
            "signal": None,
            "timedOut": False,
            "stdoutBytes": 0,
            "stderrBytes": 0,
            "stdoutTruncated": False,
            "stderrTruncated": False,
        }
        try:
            process = await trio.lowlevel.open_process(
                argv,
                cwd=cwd,
                env=child_env(p.get("env")),
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                start_new_session=True,
            )
        except (OSError, ValueError) as exc:
            raise JobError("SPAWN_FAILED", f"spawn {argv[0]}: {exc}") from None
        job = Job(meta, self.jobs_dir / job_id)
        job.process = process
        meta.update(pid=process.pid, startedAtMs=now_ms())
        await trio.to_thread.run_sync(lambda: job.dir.mkdir(parents=True, exist_ok=True))
        await self._save(job)
        self.jobs[job_id] = job
        assert self.nursery is not None
        self.nursery.start_soon(self._supervise, job, timeout_ms)
        if yield_ms > 0:
            with trio.move_on_after(yield_ms / 1000):
                await job.done.wait()
        if job.done.is_set():
            return self._completed(job)
        if mode == "auto":
            meta["notifyOnExit"] = True
            await self._save(job)
        return {
            "jobId": job_id,
            "running": True,
            "argv": argv,
            "cwd": cwd,
            "timeoutMs": timeout_ms,
            "yieldMs": yield_ms,
            "pid": process.pid,
            "stdoutTail": job.out.text()[-EVENT_TAIL_CHARS:],
            "stderrTail": job.err.text()[-EVENT_TAIL_CHARS:],
            "stdoutBytes": job.out.total,
            "stderrBytes": job.err.total,
        }

    def _completed(self, job: Job) -> dict[str, Any]:
        m = job.meta
        out = {k: m[k] for k in ("jobId", "argv", "cwd", "timeoutMs", "yieldMs", "pid")}
        out.update(
            running=False, exitCode=m["exitCode"], signal=m["signal"], timedOut=m["timedOut"]
        )
        out.update(
            stdout=job.out.text(RESULT_CAP),
            stderr=job.err.text(RESULT_CAP),
            stdoutBytes=job.out.total,
            stderrBytes=job.err.total,
            stdoutTruncated=job.out.total > RESULT_CAP,
            stderrTruncated=job.err.total > RESULT_CAP,
        )
        return out

    async def _supervise(self, job: Job, timeout_ms: float | None) -> None:
        process = job.process
        assert process is not None

        async def pump(stream: Any, tail: Tail) -> None:
            while data := await stream.receive_some(65536):
                tail.feed(data)

        async def deadline() -> None:
            await trio.sleep(timeout_ms / 1000)  # type: ignore[operator]
            job.meta["timedOut"] = True
            await self._kill(job)

        async with trio.open_nursery() as nursery:
            if timeout_ms:
                nursery.start_soon(deadline)
            async with trio.open_nursery() as pumps:
                pumps.start_soon(pump, process.stdout, job.out)
                pumps.start_soon(pump, process.stderr, job.err)
            code = await process.wait()
            nursery.cancel_scope.cancel()
        m = job.meta
        m.update(running=False, endedAtMs=now_ms())
        m["exitCode"] = code if code >= 0 else None
        m["signal"] = signal.Signals(-code).name if code < 0 else None
        m.update(
            stdoutBytes=job.out.total,
            stderrBytes=job.err.total,
            stdoutTruncated=job.out.truncated,
            stderrTruncated=job.err.truncated,
        )
        with trio.CancelScope(shield=True):
            await self._save(job)

            def write_logs() -> None:
                (job.dir / "stdout.log").write_bytes(bytes(job.out.buf))
                (job.dir / "stderr.log").write_bytes(bytes(job.err.buf))

            await trio.to_thread.run_sync(write_logs)
        job.done.set()
        if m.get("notifyOnExit"):
            self.emit(self.exit_event(job))
        await self._prune()

    def exit_event(self, job: Job) -> dict[str, Any]:
        """The ``node.process.exited`` payload."""
        m = job.meta
        return {
            "nodeId": self.node_id,
            "sessionId": self.session_id,
            **{k: m.get(k) for k in ("jobId", "argv", "cwd", "exitCode", "signal", "timedOut")},
            "startedAtMs": m.get("startedAtMs"),
            "endedAtMs": m.get("endedAtMs"),
            "stdoutTail": job.out.text()[-EVENT_TAIL_CHARS:],
            "stderrTail": job.err.text()[-EVENT_TAIL_CHARS:],
        }

    async def _kill(self, job: Job) -> str:
        job.kill_group(signal.SIGTERM)
        with trio.move_on_after(KILL_GRACE_S):
            await job.done.wait()
            return "SIGTERM"
        job.kill_group(signal.SIGKILL)
        return "SIGKILL"

    # -- process.* -------------------------------------------------------------------------

    def list(self) -> dict[str, Any]:
        """``process.list``: running first, then newest first."""
        keys = ("jobId", "running", "orphaned", "pid", "argv", "cwd", "createdAtMs")
        keys += ("startedAtMs", "endedAtMs", "exitCode", "signal", "timedOut")
        jobs = [{k: j.meta.get(k) for k in keys} for j in self.jobs.values()]
        jobs.sort(key=lambda j: (not j["running"], -(j["startedAtMs"] or j["createdAtMs"] or 0)))
        return {"jobs": jobs}

    def describe(self, job: Job) -> dict[str, Any]:
        """``process.get``: the meta, with live byte counts for a running job."""
        meta = dict(job.meta)
        if job.running:
            meta.update(stdoutBytes=job.out.total, stderrBytes=job.err.total)
        return {"job": meta}

    async def logs(self, job: Job, params: Any) -> dict[str, Any]:
        """``process.logs``: the last ``tailBytes`` (1 KiB..2 MiB, default 64 KiB) per stream."""
        raw = params.get("tailBytes") if isinstance(params, dict) else None
        tail = int(raw) if type(raw) in (int, float) else 64 * 1024
        tail = max(1024, min(TAIL_BYTES, tail))
        m = job.meta
        if job.running:
            return {
                "jobId": m["jobId"],
                "running": True,
                "stdout": job.out.text(tail),
                "stderr": job.err.text(tail),
                "stdoutBytes": job.out.total,
                "stderrBytes": job.err.total,
                "stdoutTruncated": job.out.truncated,
                "stderrTruncated": job.err.truncated,
            }

        def read(name: str) -> str:
            try:
                with open(job.dir / name, "rb") as f:
                    size = f.seek(0, os.SEEK_END)
                    f.seek(max(0, size - tail))
                    return f.read().decode("utf-8", "replace")
            except OSError:
                return ""

        out = await trio.to_thread.run_sync(read, "stdout.log")
        err = await trio.to_thread.run_sync(read, "stderr.log")
        return {
            "jobId": m["jobId"],
            "running": False,
            "stdout": out,
            "stderr": err,
            "stdoutBytes": m.get("stdoutBytes"),
            "stderrBytes": m.get("stderrBytes"),
            "stdoutTruncated": bool(m.get("stdoutTruncated")),
            "stderrTruncated": bool(m.get("stderrTruncated")),
        }

    async def kill(self, job: Job) -> dict[str, Any]:
        """``process.kill``: SIGTERM to the group, SIGKILL after the grace period."""
        if not job.running or job.done.is_set():
            raise JobError("NOT_RUNNING", f"job not running: {job.meta.get('jobId')}")
        sent = await self._kill(job)
        return {"jobId": job.meta["jobId"], "signal": sent}
