"""
A fault-injecting HTTP proxy for S3: a share of requests gets 503 SlowDown or
500 InternalError, the rest go through to the real endpoint untouched.

It stands where a flaky S3 would, so the retries under test are the real ones:
botocore's retry modes for each call, and the Job's back-off for the pod.
"""

import random

import aiohttp
import aiohttp.web
import attrs

ERRORS = [
    (503, "SlowDown", "Please reduce your request rate."),
    (500, "InternalError", "We encountered an internal error. Please try again."),
]
HOP_BY_HOP = {
    "connection",
    "keep-alive",
    "transfer-encoding",
    "te",
    "upgrade",
    "host",
    "content-length",
}


@attrs.define
class FaultyProxy:
    upstream: str
    rate: float
    seed: int = 0
    injected: int = 0
    passed: int = 0
    _random: random.Random = attrs.field(init=False)
    _session: aiohttp.ClientSession | None = attrs.field(default=None, init=False)

    def __attrs_post_init__(self) -> None:
        self._random = random.Random(self.seed)

    async def handle(self, request: aiohttp.web.Request) -> aiohttp.web.StreamResponse:
        body = await request.read()
        if self._random.random() < self.rate:
            self.injected += 1
            status, code, message = self._random.choice(ERRORS)
            xml = (
                f'<?xml version="1.0" encoding="UTF-8"?><Error><Code>{code}</Code>'
                f"<Message>{message}</Message></Error>"
            )
            return aiohttp.web.Response(status=status, text=xml, content_type="application/xml")
        self.passed += 1
        if self._session is None:
            self._session = aiohttp.ClientSession(auto_decompress=False)
        headers = {k: v for k, v in request.headers.items() if k.lower() not in HOP_BY_HOP}
        headers["Host"] = request.host  # signatures cover the host the client signed for
        async with self._session.request(
            request.method,
            self.upstream + request.path_qs,
            headers=headers,
            data=body,
            allow_redirects=False,
        ) as upstream:
            response = aiohttp.web.StreamResponse(status=upstream.status)
            for key, value in upstream.headers.items():
                # Content-Length stays: a HEAD answer without it tells boto3 nothing.
                if key.lower() not in HOP_BY_HOP or key.lower() == "content-length":
                    response.headers[key] = value
            await response.prepare(request)
            async for chunk in upstream.content.iter_chunked(256 * 1024):
                await response.write(chunk)
            await response.write_eof()
            return response

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()

    def app(self) -> aiohttp.web.Application:
        app = aiohttp.web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_route("*", "/{tail:.*}", self.handle)
        return app
