"""Fixtures shared by the unit tests."""

from collections.abc import Callable, Iterator
from typing import Any

import boto3
import pytest
from fastapi.testclient import TestClient
from moto import mock_aws

from downloadjobs.settings import S3Settings
from downloadjobs_api.app import create_app
from downloadjobs_api.jobs import JobService
from downloadjobs_api.settings import ApiSettings
from downloadjobs_api.storage import Storage
from tests.unit.fakes import FakeCustomObjects


@pytest.fixture
def s3(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """An in-process moto S3 with the buckets ``src`` and ``out``."""
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "test")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "test")
    with mock_aws():
        client = boto3.client("s3", region_name="us-east-1")
        client.create_bucket(Bucket="src")
        client.create_bucket(Bucket="out")
        yield client


MakeClient = Callable[..., tuple[TestClient, FakeCustomObjects]]


@pytest.fixture
def make_client(monkeypatch: pytest.MonkeyPatch) -> Iterator[MakeClient]:
    """
    The API app on a fake Kubernetes client and moto's S3: ``make(**settings)`` gives a
    test client and the fake (optionally a given fake, and the client's address).
    """
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "test")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "test")
    with mock_aws():
        s3 = S3Settings()
        boto3.client("s3", region_name="us-east-1").create_bucket(Bucket=s3.source_bucket)

        def make(
            api: FakeCustomObjects | None = None,
            client: tuple[str, int] = ("testclient", 50000),
            **settings: Any,
        ) -> tuple[TestClient, FakeCustomObjects]:
            api = api or FakeCustomObjects()
            storage = Storage(s3)
            api_settings = ApiSettings(**settings)
            jobs = JobService(api, "default", storage, settings=api_settings)
            jobs.cache.synced.set()
            jobs.cache.mark_connected(True)
            return TestClient(create_app(jobs, storage, api_settings), client=client), api

        yield make
