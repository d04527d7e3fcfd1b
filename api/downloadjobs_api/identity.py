"""
Who is asking: the owner recorded in the jobs a caller creates, and the only
one who may read, cancel or list them.

Three modes (``DOWNLOADJOBS_API_AUTH_MODE``): ``none`` for development (everyone
is ``anonymous``), ``token`` (static bearer tokens from a Secret, each mapped to
an owner) and ``header`` (an authenticating proxy in front of the API sets a
header; the API must then be reachable only through that proxy).
"""

import hashlib
import hmac

from starlette.datastructures import Headers

from downloadjobs_api.settings import ApiSettings, AuthMode

ANONYMOUS = "anonymous"
MAX_OWNER_LENGTH = 253


class Unauthenticated(Exception):
    """No acceptable credentials (401)."""


class Identity:
    def __init__(self, settings: ApiSettings) -> None:
        self.mode = settings.auth_mode
        self.header = settings.identity_header.lower()
        # Compare digests, so a lookup takes the same time whatever the token.
        self._tokens = {
            hashlib.sha256(token.encode()).digest(): owner
            for token, owner in settings.all_tokens().items()
        }
        if self.mode is AuthMode.TOKEN and not self._tokens:
            raise ValueError("auth mode 'token' needs DOWNLOADJOBS_API_TOKENS or _TOKENS_FILE")

    def owner(self, headers: Headers) -> str:
        """The caller's owner name, or :class:`Unauthenticated`."""
        if self.mode is AuthMode.NONE:
            return ANONYMOUS
        if self.mode is AuthMode.HEADER:
            owner = headers.get(self.header, "").strip()
            if not owner or len(owner) > MAX_OWNER_LENGTH or not owner.isprintable():
                raise Unauthenticated(f"the {self.header} header (set by the proxy) is missing")
            return owner
        scheme, _, token = headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise Unauthenticated("send Authorization: Bearer <token>")
        digest = hashlib.sha256(token.strip().encode()).digest()
        for known, owner in self._tokens.items():
            if hmac.compare_digest(known, digest):
                return owner
        raise Unauthenticated("the bearer token is not valid")

    def client_key(self, headers: Headers, client_host: str | None) -> str:
        """
        What rate limits count by: the resolved owner when the credentials are
        good (however the header is spelled, and whichever of an owner's tokens),
        the client's address otherwise: bad credentials share the address's count.
        """
        if self.mode is not AuthMode.NONE:
            try:
                return f"owner:{self.owner(headers)}"
            except Unauthenticated:
                pass
        return f"ip:{client_host or 'unknown'}"
