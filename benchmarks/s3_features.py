"""
Whether an S3 server of ``s3servers.py`` answers the calls the worker makes, as S3 does.

Starts the server, then makes each request the worker (``job-image/downloadjobs_worker``)
and the API make, with the headers they send: HEAD, GET with ``If-Match`` and a
``Range``, a checkpoint PUT and DELETE, a multipart upload with a full-object CRC-32
(``ChecksumType=FULL_OBJECT``) whose parts carry their CRC-32, ``ListParts`` page by
page, CompleteMultipartUpload (timed: S3 does not copy the parts), an abort, and a
presigned GET. Prints one line per check, then one JSON object of the answers.

Usage: ``python benchmarks/s3_features.py [--s3 moto|seaweedfs] [--parts N]``.
"""

import argparse
import base64
import concurrent.futures
import json
import os
import tempfile
import time
import urllib.request
import zlib
from pathlib import Path
from typing import Any

from botocore.exceptions import ClientError
from s3servers import SERVERS, serve

from downloadjobs import s3
from downloadjobs.settings import S3Settings
from downloadjobs_embedded import s3server

MiB = 1024 * 1024


def error_code(call: Any) -> str:
    """The S3 error code of a call expected to fail, or ``accepted``."""
    try:
        call()
    except ClientError as exc:
        return str(exc.response.get("Error", {}).get("Code"))
    return "accepted"


def check(client: Any, parts: int) -> dict[str, Any]:
    found: dict[str, Any] = {}
    client.create_bucket(Bucket="src")
    client.create_bucket(Bucket="dst")
    body = os.urandom(3 * MiB + 17)
    client.put_object(Bucket="src", Key="a.zip", Body=body)
    etag = client.head_object(Bucket="src", Key="a.zip")["ETag"]
    answer = client.get_object(Bucket="src", Key="a.zip", IfMatch=etag, Range="bytes=1000-")
    found["ranged_get_if_match"] = (
        answer["ResponseMetadata"]["HTTPStatusCode"] == 206 and answer["Body"].read() == body[1000:]
    )
    found["get_if_match_other_etag"] = error_code(
        lambda: client.get_object(Bucket="src", Key="a.zip", IfMatch='"0"')
    )
    found["head_missing"] = error_code(lambda: client.head_object(Bucket="src", Key="b.zip"))
    found["get_missing"] = error_code(lambda: client.get_object(Bucket="src", Key="b.zip"))
    client.put_object(Bucket="dst", Key="c.zip.checkpoint", Body=b"{}", ContentType="text/json")
    client.delete_object(Bucket="dst", Key="c.zip.checkpoint")

    upload = client.create_multipart_upload(
        Bucket="dst",
        Key="c.zip",
        ContentType="application/zip",
        ChecksumAlgorithm="CRC32",
        ChecksumType="FULL_OBJECT",
    )["UploadId"]
    part = os.urandom(8 * MiB)

    def put(number: int) -> dict[str, Any]:
        answer = client.upload_part(
            Bucket="dst",
            Key="c.zip",
            UploadId=upload,
            PartNumber=number,
            Body=part,
            ContentLength=len(part),
            ChecksumAlgorithm="CRC32",
        )
        return {"PartNumber": number, "ETag": answer["ETag"], "crc": answer.get("ChecksumCRC32")}

    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        uploaded = list(pool.map(put, range(1, parts + 1)))
    found["upload_part_returns_crc32"] = all(p["crc"] for p in uploaded)
    listed: list[dict[str, Any]] = []
    marker = 0
    while True:
        page = client.list_parts(
            Bucket="dst", Key="c.zip", UploadId=upload, PartNumberMarker=marker, MaxParts=50
        )
        listed += page.get("Parts", [])
        if not page.get("IsTruncated"):
            break
        marker = int(page["NextPartNumberMarker"])
    found["list_parts_paged"] = [p["PartNumber"] for p in listed] == list(range(1, parts + 1))
    found["list_parts_returns_crc32"] = all(p.get("ChecksumCRC32") for p in listed)

    crc = 0
    for _ in range(parts):
        crc = zlib.crc32(part, crc)
    whole = base64.b64encode(crc.to_bytes(4, "big")).decode()
    # as a resumed worker sends them: parts from ListParts, with or without their CRC-32
    sent = [{"PartNumber": p["PartNumber"], "ETag": p["ETag"]} for p in listed]

    def complete(checksum: str) -> Any:
        return client.complete_multipart_upload(
            Bucket="dst",
            Key="c.zip",
            UploadId=upload,
            MultipartUpload={"Parts": sent},
            ChecksumCRC32=checksum,
            ChecksumType="FULL_OBJECT",
        )

    started = time.monotonic()
    found["complete_with_wrong_crc32"] = error_code(lambda: complete("AAAAAQ=="))
    found["complete_with_wrong_crc32_s"] = round(time.monotonic() - started, 2)
    if found["complete_with_wrong_crc32"] != "accepted":
        started = time.monotonic()
        complete(whole)
        found["complete_s"] = round(time.monotonic() - started, 2)
    head = client.head_object(Bucket="dst", Key="c.zip", ChecksumMode="ENABLED")
    found["object_crc32_is_full_object"] = (
        head.get("ChecksumCRC32") == whole and head.get("ChecksumType") == "FULL_OBJECT"
    )
    found["size"] = head["ContentLength"] == parts * len(part)
    boundary = f"bytes={len(part) - 5}-{len(part) + 4}"
    across = client.get_object(Bucket="dst", Key="c.zip", Range=boundary)["Body"].read()
    found["range_across_parts"] = across == part[-5:] + part[:5]
    found["list_parts_after_complete"] = error_code(
        lambda: client.list_parts(Bucket="dst", Key="c.zip", UploadId=upload)
    )
    other = client.create_multipart_upload(Bucket="dst", Key="d.zip")["UploadId"]
    client.abort_multipart_upload(Bucket="dst", Key="d.zip", UploadId=other)
    found["list_parts_after_abort"] = error_code(
        lambda: client.list_parts(Bucket="dst", Key="d.zip", UploadId=other)
    )
    url = client.generate_presigned_url(
        "get_object", Params={"Bucket": "src", "Key": "a.zip"}, ExpiresIn=60
    )
    with urllib.request.urlopen(url) as response:
        found["presigned_get"] = response.read() == body
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--s3", choices=SERVERS, default="seaweedfs")
    parser.add_argument("--parts", type=int, default=128, help="8 MiB parts (128: 1 GiB)")
    args = parser.parse_args()
    with (
        tempfile.TemporaryDirectory(prefix="s3-features-") as tmp,
        serve(args.s3, Path(tmp)) as endpoint,
    ):
        settings = S3Settings(endpoint_url=endpoint, path_style=True)
        client = s3.client(settings, credentials=s3server.BOTO_CREDENTIALS, max_pool_connections=12)
        found = check(client, args.parts)
    for name, value in found.items():
        print(f"{name}: {value}")
    print(json.dumps({"s3": args.s3, "parts": args.parts, **found}))


if __name__ == "__main__":
    main()
