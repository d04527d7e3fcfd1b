"""The control-plane binary answers /version with the Kubernetes version go.mod pins."""

import re

from downloadjobs_embedded import controlplane


def test_the_link_flags_stamp_the_pinned_version() -> None:
    go_mod = (controlplane.SOURCE / "go.mod").read_text()
    (pinned,) = re.findall(r"^\s*k8s\.io/kubernetes (v\d+\.\d+\.\d+)\s*$", go_mod, re.MULTILINE)
    flags = controlplane.version_ldflags()
    major, minor = pinned[1:].split(".")[:2]
    for package in ("k8s.io/component-base/version", "k8s.io/client-go/pkg/version"):
        assert f"-X {package}.gitVersion={pinned}" in flags
        assert f"-X {package}.gitMajor={major}" in flags
        assert f"-X {package}.gitMinor={minor}" in flags
