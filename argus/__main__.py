"""The ``argus`` command: pick the program first, then load only that program's modules.

Why a dispatcher in front of ``cli``: ``argus bridge`` and ``argus node-host`` run once per
session, beside every runtime. Loading the gateway (Quart, hypercorn, pydantic, the Docker
SDK) into each of them would cost about 30 MiB and 200 ms per process. So the program is
chosen by name here and imported by name (``importlib``): a bridge imports the bridge and
Argus's leaves, nothing else. Everything that is not a separate program is the gateway's
``cli``.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Sequence

#: Programs with an entry point of their own, ``main(argv) -> int``.
PROGRAMS = {
    "bridge": "argus.bridge.server",
    "node-host": "argus.node_host.host",
    "demo-runtime": "argus.demo_runtime",
}


def main(argv: Sequence[str] | None = None) -> int:
    """Console-script entry point: run one program with the rest of the arguments."""
    args = list(sys.argv[1:] if argv is None else argv)
    if args and args[0] in PROGRAMS:
        return importlib.import_module(PROGRAMS[args[0]]).main(args[1:])
    return importlib.import_module("argus.cli").main(args)


if __name__ == "__main__":
    raise SystemExit(main())
