"""
Install the Debian packages whose commands the tests drive.

Reads ``tools/system-packages.txt`` (``<command> <package>`` per line) and runs
``apt-get install -y`` for the packages whose command is not on PATH. Without
root it only says what is missing: the tests then skip, or fail under CI=true.
Usage: ``python tools/install_system_packages.py tools/system-packages.txt``.
"""

import os
import shutil
import subprocess
import sys
from pathlib import Path


def missing_packages(listing: Path) -> list[str]:
    packages = []
    for line in listing.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        command, package = line.split()
        if shutil.which(command) is None:
            packages.append(package)
    return sorted(set(packages))


def main(listing: Path) -> None:
    packages = missing_packages(listing)
    if not packages:
        return
    if os.geteuid() != 0 or shutil.which("apt-get") is None:
        print(f"missing system packages (install them to run every test): {' '.join(packages)}")
        return
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    subprocess.run(["apt-get", "update", "-qq"], check=True, env=env)
    subprocess.run(
        ["apt-get", "install", "-y", "-qq", "--no-install-recommends", *packages],
        check=True,
        env=env,
    )


if __name__ == "__main__":
    main(Path(sys.argv[1]))
