"""
The baseline of ``benchmarks/bundle.py``: the same bytes, copied as plainly as boto3 allows.

Each source is read with a streaming GET and its bytes are cut into parts of
one multipart upload, ``--concurrency`` part uploads at a time, with the same
S3 client set-up as the worker. No ZIP, no checksums of its own, no status:
what this process achieves is the limit of the machine and the S3 endpoint.
It runs as its own process so that its time and peak RSS are measured exactly
like the worker's. Prints one JSON line: the bytes copied.

Usage (the benchmark calls it): ``python benchmarks/copy_baseline.py --key K
--part-size N --concurrency C FILE_ID...``, S3 settings from ``DOWNLOADJOBS_S3_*``.
"""

import argparse
import concurrent.futures
import json
import threading
from typing import Any

from botocore.exceptions import ClientError

from downloadjobs import s3
from downloadjobs.settings import S3Settings

CHUNK = 1024 * 1024


def copy(client: Any, settings: S3Settings, key: str, ids: list[int], part: int, conc: int) -> int:
    bucket = settings.bundle_bucket
    upload = client.create_multipart_upload(Bucket=bucket, Key=key)["UploadId"]
    slots = threading.BoundedSemaphore(conc + 1)  # parts in memory: uploading, plus one waiting
    pool = concurrent.futures.ThreadPoolExecutor(conc)

    def put(number: int, body: bytes) -> dict[str, Any]:
        try:
            answer = client.upload_part(
                Bucket=bucket, Key=key, UploadId=upload, PartNumber=number, Body=body
            )
            return {"PartNumber": number, "ETag": answer["ETag"]}
        finally:
            slots.release()

    futures: list[concurrent.futures.Future[dict[str, Any]]] = []

    def send(body: bytes) -> None:
        slots.acquire()
        futures.append(pool.submit(put, len(futures) + 1, body))

    buffer = bytearray()
    total = 0
    for file_id in ids:
        try:
            source_key = settings.source_key(file_id)
            source = client.get_object(Bucket=settings.source_bucket, Key=source_key)
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("404", "NoSuchKey"):
                continue
            raise
        for chunk in source["Body"].iter_chunks(CHUNK):
            total += len(chunk)
            buffer += chunk
            while len(buffer) >= part:
                send(bytes(memoryview(buffer)[:part]))
                del buffer[:part]
    if buffer or not futures:
        send(bytes(buffer))
    parts = [future.result() for future in futures]
    pool.shutdown()
    client.complete_multipart_upload(
        Bucket=bucket, Key=key, UploadId=upload, MultipartUpload={"Parts": parts}
    )
    return total


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--key", required=True)
    parser.add_argument("--part-size", type=int, required=True)
    parser.add_argument("--concurrency", type=int, required=True)
    parser.add_argument("file_ids", type=int, nargs="+")
    args = parser.parse_args()
    settings = S3Settings.from_environment()
    client = s3.client(settings, max_pool_connections=args.concurrency + 8)
    total = copy(client, settings, args.key, args.file_ids, args.part_size, args.concurrency)
    print(json.dumps({"bytes": total}))


if __name__ == "__main__":
    main()
