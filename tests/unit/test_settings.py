"""Settings read from the environment: conversion, bounds, and errors that name the variable."""

import pytest

from downloadjobs.settings import KubeSettings, S3Settings, SettingsError
from downloadjobs_worker import main
from downloadjobs_worker.settings import WorkerSettings


def test_variables_are_converted_and_matched_in_any_case() -> None:
    settings = S3Settings.from_environment(
        {
            "DOWNLOADJOBS_S3_PATH_STYLE": "true",
            "downloadjobs_s3_max_attempts": "3",
            "DOWNLOADJOBS_S3_ENDPOINT_URL": "http://s3:9000",
            "DOWNLOADJOBS_S3_UNKNOWN": "ignored",
            "DOWNLOADJOBS_NAMESPACE": "other prefix: ignored",
        }
    )
    assert settings == S3Settings(path_style=True, max_attempts=3, endpoint_url="http://s3:9000")
    assert KubeSettings.from_environment({"DOWNLOADJOBS_NAMESPACE": "ns"}).namespace == "ns"


def test_the_environment_the_operator_gives_a_worker_reads_back_the_same() -> None:
    settings = S3Settings(endpoint_url="http://s3:9000", path_style=True, presign_expiry_seconds=60)
    assert S3Settings.from_environment(settings.environment()) == settings


@pytest.mark.parametrize(
    ("environ", "message"),
    [
        (
            {"DOWNLOADJOBS_S3_PRESIGN_EXPIRY_SECONDS": "10"},
            "DOWNLOADJOBS_S3_PRESIGN_EXPIRY_SECONDS",
        ),
        ({"DOWNLOADJOBS_S3_MAX_ATTEMPTS": "many"}, "DOWNLOADJOBS_S3_MAX_ATTEMPTS"),
        ({"DOWNLOADJOBS_S3_PATH_STYLE": "maybe"}, "DOWNLOADJOBS_S3_PATH_STYLE"),
    ],
)
def test_a_bad_value_is_refused_naming_its_variable(environ: dict[str, str], message: str) -> None:
    with pytest.raises(SettingsError, match=message):
        S3Settings.from_environment(environ)


def test_worker_settings_need_a_job_and_check_their_bounds() -> None:
    with pytest.raises(SettingsError, match="DOWNLOADJOBS_JOB_NAME is required and not set"):
        WorkerSettings.from_environment({})
    with pytest.raises(SettingsError, match="DOWNLOADJOBS_WORKER_UPLOAD_CONCURRENCY"):
        WorkerSettings.from_environment(
            {"DOWNLOADJOBS_JOB_NAME": "j", "DOWNLOADJOBS_WORKER_UPLOAD_CONCURRENCY": "17"}
        )
    with pytest.raises(SettingsError, match="must be >= worker_delay_min_ms"):
        WorkerSettings.from_environment(
            {"DOWNLOADJOBS_JOB_NAME": "j", "DOWNLOADJOBS_WORKER_DELAY_MIN_MS": "5"}
        )
    settings = WorkerSettings.from_environment(
        {"DOWNLOADJOBS_JOB_NAME": "j", "DOWNLOADJOBS_WORKER_PROGRESS_INTERVAL": "0.5"}
    )
    assert (settings.job_name, settings.worker_progress_interval) == ("j", 0.5)


def test_a_worker_with_invalid_settings_fails_for_good_without_a_traceback(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr("signal.signal", lambda *args: None)  # keep pytest's SIGTERM
    monkeypatch.delenv("DOWNLOADJOBS_JOB_NAME", raising=False)
    monkeypatch.setenv("DOWNLOADJOBS_S3_MAX_ATTEMPTS", "0")
    assert main.run() == main.EXIT_PERMANENT
    assert "DOWNLOADJOBS_JOB_NAME is required and not set" in caplog.text
