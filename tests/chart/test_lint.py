"""helm lint --strict, and values.schema.json refusing what it should."""

import pytest

from tests.chart.helpers import CHART, RENDERINGS, find_tool, run


@pytest.mark.parametrize("rendering", RENDERINGS)
def test_helm_lint_strict_passes(rendering: str) -> None:
    args = [find_tool("helm"), "lint", "--strict", str(CHART)]
    for path in RENDERINGS[rendering]:
        args += ["--values", str(path)]
    result = run(args)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 chart(s) failed" in result.stdout


@pytest.mark.parametrize(
    ("setting", "complaint"),
    [
        ("unknownKey=1", "additional properties 'unknownKey' not allowed"),
        ("api.replicas=two", "/api/replicas"),
        ("s3.pathStyle=maybe", "/s3/pathStyle"),
        ("s3.presignExpirySeconds=10", "/s3/presignExpirySeconds"),
        # Credentials are never values: only the name of an existing Secret is.
        ("s3.accessKeyId=AKIAEXAMPLE", "additional properties 'accessKeyId' not allowed"),
        ("s3.secretAccessKey=secret", "additional properties 'secretAccessKey' not allowed"),
        ("worker.compression=zstd", "/worker/compression"),
        ("image.digest=latest", "/image/digest"),
        # The restricted Pod Security Standard cannot be switched off.
        ("containerSecurityContext.allowPrivilegeEscalation=true", "allowPrivilegeEscalation"),
        ("containerSecurityContext.readOnlyRootFilesystem=false", "readOnlyRootFilesystem"),
        ("podSecurityContext.runAsNonRoot=false", "runAsNonRoot"),
        ("api.resources=null", "resources"),
        ("api.livenessProbe=null", "livenessProbe"),
        # Replicas sharing one fixed priority would all freeze.
        ("operator.peering.enabled=true,operator.peering.priority=100", "equal priority"),
    ],
)
def test_values_schema_refuses(setting: str, complaint: str) -> None:
    result = run([find_tool("helm"), "template", "x", str(CHART), "--set", setting])
    assert result.returncode != 0, f"--set {setting} was accepted"
    assert complaint in result.stderr, result.stderr
