"""
The container shim: runs one container's process and records how it ended.

The node agent starts ``python -m downloadjobs_embedded.shim DIR``; the shim
reads ``DIR/container.json`` (argv, environment, working directory), starts the
process in a process group of its own, writes its pid to ``DIR/pid`` and, when it
exits, its exit code to ``DIR/exit`` (128 + the signal when a signal ended it,
as a container runtime reports it). Like containerd's shim, it outlives a node
agent that dies, so a restarted agent adopts the running containers instead of
losing them.
"""

import json
import signal
import subprocess
import sys
from pathlib import Path


def exit_code(returncode: int) -> int:
    return 128 - returncode if returncode < 0 else returncode


def main(argv: list[str]) -> int:
    directory = Path(argv[0])
    spec = json.loads((directory / "container.json").read_text())
    # The node agent signals the container's group, never the shim's.
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    with (directory / "container.log").open("ab") as log:
        try:
            process = subprocess.Popen(
                spec["argv"],
                env=spec["env"],
                cwd=spec["cwd"],
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        except OSError as exc:  # no such executable: what a runtime calls StartError
            log.write(f"cannot start {spec['argv'][0]!r}: {exc}\n".encode())
            (directory / "exit").write_text("128")
            return 0
        (directory / "pid").write_text(str(process.pid))
        code = exit_code(process.wait())
    partial = directory / "exit.partial"
    partial.write_text(str(code))
    partial.replace(directory / "exit")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
