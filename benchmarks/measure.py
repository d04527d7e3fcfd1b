"""
Run one command to its end; print its wall time, exit code and peak RSS as JSON.

Why a process of its own: on Linux a child's ``ru_maxrss`` includes the peak
RSS of the process it was forked from (exec records the high-water mark of
the memory it replaces). The benchmark itself holds hundreds of MiB while it
seeds S3, which would leak into every figure; this launcher stays at a few
MiB, below anything it measures.

Usage: ``python benchmarks/measure.py LOG COMMAND...`` (output of COMMAND goes to LOG).
"""

import json
import os
import subprocess
import sys
import time


def main() -> None:
    log, command = sys.argv[1], sys.argv[2:]
    with open(log, "wb") as out:
        started = time.monotonic()
        process = subprocess.Popen(
            command, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL
        )
        _, wait_status, usage = os.wait4(process.pid, 0)
        seconds = time.monotonic() - started
    process.returncode = os.waitstatus_to_exitcode(wait_status)
    figures = {
        "started": started,  # CLOCK_MONOTONIC: comparable with other processes' readings
        "seconds": seconds,
        "exit": process.returncode,
        "rss_mib": usage.ru_maxrss / 1024,
        "cpu_seconds": usage.ru_utime + usage.ru_stime,
    }
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
