"""
Settings shared by the API, the operator and the worker, read from the environment.

Every variable starts with ``DOWNLOADJOBS_``; S3 credentials are never settings
here: botocore finds them itself (``AWS_ACCESS_KEY_ID``/``AWS_SECRET_ACCESS_KEY``
from a Secret, or the pod's identity through IRSA or workload identity).

These are msgspec Structs rather than pydantic-settings models because a worker pod
reads them before its first S3 request, and pydantic with pydantic-settings took a
third of that time to load (issue 18, ``benchmarks/worker_start.py``). msgspec
converts the strings as pydantic-settings does (``"5"`` is 5, ``"true"`` is True),
checks the bounds, and names the variable at fault. The API's and the operator's own
settings, read once per server, stay on pydantic-settings.
"""

import os
import re
from collections.abc import Mapping
from typing import Annotated, ClassVar, Self

import msgspec
from msgspec import Meta


class SettingsError(ValueError):
    """A variable is missing or invalid; the message names it."""


class EnvironmentSettings(msgspec.Struct, kw_only=True):
    """
    Settings whose field ``name`` is the variable ``<PREFIX><NAME>`` (in any case, as
    pydantic-settings matches them). Constructed directly, they take what they are
    given; :meth:`from_environment` reads and checks them.
    """

    PREFIX: ClassVar[str] = "DOWNLOADJOBS_"

    @classmethod
    def from_environment(cls, environ: Mapping[str, str] | None = None) -> Self:
        environ = os.environ if environ is None else environ
        fields = set(cls.__struct_fields__)
        values = {}
        for variable, value in environ.items():
            name = variable.upper().removeprefix(cls.PREFIX).lower()
            if variable.upper().startswith(cls.PREFIX) and name in fields:
                values[name] = value
        try:
            return msgspec.convert(values, cls, strict=False)
        except msgspec.ValidationError as exc:
            raise SettingsError(_name_variable(str(exc), cls.PREFIX)) from exc


def _name_variable(message: str, prefix: str) -> str:
    """msgspec's "... - at `$.part_size`" as "... - at DOWNLOADJOBS_PART_SIZE"."""
    missing = re.fullmatch(r"Object missing required field `(\w+)`", message)
    if missing:
        return f"{prefix}{missing[1].upper()} is required and not set"
    return re.sub(r"`\$\.(\w+)`", lambda m: prefix + m[1].upper(), message)


class S3Settings(EnvironmentSettings, kw_only=True):
    """Where the source files are and where bundles go."""

    PREFIX: ClassVar[str] = "DOWNLOADJOBS_S3_"

    #: S3 endpoint the pods use; unset means AWS.
    endpoint_url: str | None = None
    #: S3 endpoint a browser reaches, for presigned URLs; unset: endpoint_url.
    public_endpoint_url: str | None = None
    region: str = "us-east-1"
    #: Path-style addressing (MinIO, moto).
    path_style: bool = False
    source_bucket: str = "downloads-source"
    source_prefix: str = "files"
    bundle_bucket: str = "downloads-bundles"
    bundle_prefix: str = "bundles"
    presign_expiry_seconds: Annotated[int, Meta(ge=60, le=7 * 24 * 3600)] = 900
    #: botocore retries per S3 call.
    max_attempts: Annotated[int, Meta(ge=1)] = 5

    def source_key(self, file_id: int) -> str:
        return f"{self.source_prefix}/{file_id}.zip"

    def bundle_key(self, namespace: str, job_id: str) -> str:
        return f"{self.bundle_prefix}/{namespace}/{job_id}.zip"

    def environment(self) -> dict[str, str]:
        """These settings as the ``DOWNLOADJOBS_S3_*`` variables that read them back."""
        return {
            f"{self.PREFIX}{name.upper()}": str(value).lower()
            if isinstance(value, bool)
            else str(value)
            for name, value in msgspec.structs.asdict(self).items()
            if value is not None
        }


class KubeSettings(EnvironmentSettings, kw_only=True):
    """How to reach the Kubernetes API, and which namespace is ours."""

    namespace: str = "default"
