"""Automation: every turn the daemon starts by itself, and the state it keeps for them.

Modules, top to bottom (each imports only those below it; ``make lint`` checks it):
``service`` (the ``Automation`` the daemon builds) and ``node_events``; ``api`` (the
``argus/*`` and ``/automation`` operations); ``scheduler`` (watchdog, heartbeat, cron
loops); ``cron_api``; ``engine`` (lanes, workers, gateway turns); ``turn_input`` and
``importer``; the pure pieces ``lanes``, ``heartbeat``, ``cronspec``, ``prompts``,
``legacy_state``.
"""
