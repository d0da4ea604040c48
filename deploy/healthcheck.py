"""Container HEALTHCHECK: GET http://127.0.0.1:<port>/healthz with the standard library only.

The port comes from $HEALTHCHECK_PORT, else from the `python -m services.<name>` process
running in the container, looked up in the service registry (shared/registry.py). Exit 0 = healthy,
1 = unhealthy.
"""

import os
import sys
import urllib.request
from pathlib import Path

from shared.registry import SERVICES

PORTS = {s.name: s.port for s in SERVICES}


def service_port() -> int | None:
    if os.environ.get("HEALTHCHECK_PORT"):
        return int(os.environ["HEALTHCHECK_PORT"])
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            argv = cmdline.read_bytes().split(b"\0")
        except OSError:
            continue
        for arg in argv:
            name = arg.decode(errors="replace").removeprefix("services.")
            if arg.startswith(b"services.") and name in PORTS:
                return PORTS[name]
    return None


def main() -> int:
    port = service_port()
    if port is None:
        print("healthcheck: no service process found and HEALTHCHECK_PORT unset", file=sys.stderr)
        return 1
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=4) as resp:
            return 0 if resp.status == 200 else 1
    except Exception as exc:
        print(f"healthcheck: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
