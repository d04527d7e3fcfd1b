"""What every action needs, built once at start-up."""

import dataclasses
from typing import Any

from downloadjobs.settings import S3Settings
from downloadjobs_operator.cluster import Cluster
from downloadjobs_operator.settings import OperatorSettings


@dataclasses.dataclass
class Context:
    """Everything the actions need, built once at start-up."""

    cluster: Cluster
    s3: Any  # boto3 S3 client
    s3_settings: S3Settings
    settings: OperatorSettings
    #: resume events this process posted or found posted (saves a 409 per reconcile)
    announced: set[str] = dataclasses.field(default_factory=set)
