"""``/automation/*``: the admin HTTP surface of the automation engine.

Every route is behind the admin token (a session token never opens it). Request bodies are
validated before any side effect: a missing ``text`` is a 400 even for a session that
does not exist yet, and an unknown ``sessionId`` is a 404, never a new session.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from quart import request
from quart_trio import QuartTrio

from ..automation import api, cron_api
from ..automation.engine import START_ERRORS
from ..automation.service import Automation
from ..protocol import codes
from ..sessions.hooks import GatewayMethodError
from ..sessions.manager import SessionManager
from ..store import cron_records, records
from .shared import error, json_body

STATUS = {codes.INVALID_PARAMS: (400, "invalid_params"), codes.QUEUE_FULL: (409, "queue_full")}


def add_automation_routes(
    app: QuartTrio, admin: Callable[..., Any], manager: SessionManager, engine: Automation
) -> None:
    """Register the automation routes on ``app``."""

    async def body() -> Any:
        """The JSON object sent, or an error response (400 with a stable code)."""
        data, problem = await json_body()
        if problem is not None:
            return error(400, *problem)
        if not isinstance(data, dict):
            return error(400, "invalid_json", "Expected a JSON object")
        return data

    def failure(exc: BaseException) -> Any:
        if isinstance(exc, GatewayMethodError):
            status, code = STATUS.get(exc.code, (400, "bad_request"))
            return error(status, code, exc.message)
        return error(502, "runtime_error", str(exc) or type(exc).__name__)

    def session_of(data: dict[str, Any]) -> Any:
        session_id = data.get("sessionId")
        if not isinstance(session_id, str) or not session_id.strip():
            return None, error(400, "invalid_params", "Missing 'sessionId'")
        session = manager.get(session_id.strip())
        if session is None:
            return None, error(404, "session_not_found", "Session not found")
        return session, None

    @app.get("/automation/state")
    @admin
    async def state() -> Any:
        persisted = await engine.store.run(records.overview)
        jobs = await cron_api.list_jobs(engine, None)
        lanes = [
            {
                "sessionId": lane.session_id,
                "threadId": lane.thread_id,
                "busy": lane.busy,
                "kind": lane.kind if lane.busy else None,
                "activeTurnId": lane.active_turn_id,
            }
            for lane in engine.lanes.lanes.values()
        ]
        lanes.sort(key=lambda lane: (lane["sessionId"], lane["threadId"]))
        redacted_jobs = [
            {
                k: job.get(k)
                for k in (
                    "jobId",
                    "sessionId",
                    "mode",
                    "expr",
                    "tz",
                    "enabled",
                    "lastRunAtMs",
                    "nextRunAtMs",
                    "failures",
                )
            }
            for job in jobs
        ]
        return {
            "ok": True,
            "persisted": persisted,
            "runtime": {"lanes": lanes},
            "cron": {"jobs": redacted_jobs},
        }

    @app.get("/automation/cron/jobs")
    @admin
    async def cron_list() -> Any:
        session_id = request.args.get("sessionId") or None
        return {"ok": True, "jobs": await cron_api.list_jobs(engine, session_id)}

    @app.post("/automation/cron/jobs")
    @admin
    async def cron_add() -> Any:
        data = await body()
        if not isinstance(data, dict):
            return data
        session, problem = session_of(data)
        if problem:
            return problem
        try:
            job = await cron_api.add_job(engine, session.id, data)
        except GatewayMethodError as exc:
            return failure(exc)
        return {"ok": True, "sessionId": session.id, "job": job}

    @app.delete("/automation/cron/jobs/<job_id>")
    @admin
    async def cron_delete(job_id: str) -> Any:
        if not await cron_api.remove_job(engine, None, job_id):
            return error(404, "job_not_found", "Job not found")
        return {"ok": True, "jobId": job_id}

    @app.get("/automation/cron/jobs/<job_id>/runs")
    @admin
    async def cron_runs(job_id: str) -> Any:
        if await engine.store.run(cron_records.get_job, job_id) is None:
            return error(404, "job_not_found", "Job not found")
        return {
            "ok": True,
            "jobId": job_id,
            "runs": await engine.store.run(cron_records.list_runs, job_id, 50),
        }

    @app.post("/automation/systemEvent/enqueue")
    @admin
    async def system_event() -> Any:
        data = await body()
        if not isinstance(data, dict):
            return data
        try:
            api.required_text(data)
        except GatewayMethodError as exc:
            return failure(exc)
        session, problem = session_of(data)
        if problem:
            return problem
        try:
            result = await api.enqueue_system_event(engine, session, data)
        except (GatewayMethodError, *START_ERRORS) as exc:
            return failure(exc)
        return {**result, "sessionId": session.id}

    @app.post("/automation/heartbeat/now")
    @admin
    async def heartbeat_now() -> Any:
        data: Any = {}
        if (await request.get_data()).strip():
            data = await body()
            if not isinstance(data, dict):
                return data
        session_id = data.get("sessionId")
        if session_id is not None and (
            not isinstance(session_id, str) or not manager.get(session_id)
        ):
            return error(404, "session_not_found", "Session not found")
        return api.request_heartbeat(engine, session_id)
