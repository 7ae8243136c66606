"""`python -m stack up | down | status`: the local stack (`make up`, `make down`, `make status`).

python -m stack up   [--run-dir runs/NAME] [--device cpu|cuda:0] [--no-orchestrator] [--free-ports]
python -m stack down [--run-dir runs/current]
python -m stack status
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

from stack.local import RUNS, Ports, Stack, StackConfig, StackError, healthy
from stack.process import live_group_members


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("command", choices=["up", "down", "status"])
    parser.add_argument("--run-dir", type=Path, default=None)
    parser.add_argument("--device", default="cpu", help="device of the model servers: cpu or cuda:N")
    parser.add_argument("--no-orchestrator", action="store_true")
    parser.add_argument("--free-ports", action="store_true", help="any free ports instead of the documented ones")
    args = parser.parse_args(argv)
    if args.command == "up":
        run_dir = args.run_dir or RUNS / time.strftime("%Y%m%d-%H%M%S")
        current = RUNS / "current"
        if (
            args.run_dir is None
            and current.exists()
            and any(live_group_members(s["pid"]) for s in json.loads((current / "stack.json").read_text())["services"])
        ):
            print(f"error: a stack is already running ({current.resolve()}); run `make down` first", file=sys.stderr)
            return 1
        print(f"starting the stack; logs in {run_dir}/", flush=True)
        ports = Ports.free() if args.free_ports else Ports()
        try:
            Stack(run_dir, StackConfig(ports=ports, device=args.device, orchestrator=not args.no_orchestrator)).up()
        except (StackError, subprocess.CalledProcessError) as error:
            print(f"error: {error}", file=sys.stderr)
            return 1
        print(f"stack up: orchestrator on 127.0.0.1:{ports.orchestrator}; `make down` stops it", flush=True)
        return 0
    run_dir = args.run_dir or RUNS / "current"
    if not (run_dir / "stack.json").exists():
        print(f"no stack recorded in {run_dir}", file=sys.stderr)
        return 0 if args.command == "down" else 1
    stack = Stack.load(run_dir)
    if args.command == "status":
        if not stack.started:
            print(f"nothing running from {run_dir.resolve()}")
        for service in stack.started:
            alive = bool(live_group_members(service.pid))
            state = ("healthy" if healthy(service.health) else "running, not healthy") if alive else "stopped"
            print(f"{service.name:12s} pid {service.pid:7d}  {state}  log {service.log}")
        return 0
    stack.down()
    print(f"stopped the stack of {run_dir.resolve()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
