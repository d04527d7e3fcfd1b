"""
Who is asking: the owner recorded in the jobs a caller creates, and the only
one who may read, cancel or list them.

Three modes (``DOWNLOADJOBS_API_AUTH_MODE``): ``none`` for development (everyone
is ``anonymous``), ``token`` (static bearer tokens from a Secret, each mapped to
an owner) and ``header`` (an authenticating proxy in front of the API sets a
header; the API must then be reachable only through that proxy, and the proxy may
also prove itself with a shared secret in another header).

Nothing ambiguous identifies anyone: a repeated identity header, a comma-joined one
(what a proxy that appends instead of replacing makes of a client's own header), a
repeated ``Authorization`` header are 401, never "the first one wins". The name
``anonymous`` belongs to none mode: no token or header may claim it, so the jobs
created without authentication are nobody's once authentication is on.
"""

import hashlib
import hmac

from starlette.datastructures import Headers
from starlette.types import ASGIApp, Receive, Scope, Send

from downloadjobs import model
from downloadjobs_api.middleware import send_error
from downloadjobs_api.settings import ApiSettings, AuthMode

ANONYMOUS = model.ANONYMOUS
MAX_OWNER_LENGTH = model.MAX_OWNER_LENGTH
#: Where the resolved identity is kept in the request's state (``scope["state"]``).
IDENTITY_STATE = "identity"
#: Every route under this prefix needs an identity (the job routes, /check).
PROTECTED_PREFIX = "/v1/"
#: The challenge of a 401.
CHALLENGE = [(b"www-authenticate", b'Bearer realm="downloadjobs"')]


def reserved(owner: str) -> bool:
    """Whether ``owner`` is the name of none mode's callers (in any case)."""
    return owner.strip().casefold() == ANONYMOUS


class Unauthenticated(Exception):
    """No acceptable credentials (401)."""


class Identity:
    def __init__(self, settings: ApiSettings) -> None:
        self.mode = settings.auth_mode
        self.header = settings.identity_header.lower()
        self.secret_header = settings.proxy_secret_header.lower()
        secret = settings.the_proxy_secret() if self.mode is AuthMode.HEADER else ""
        self._secret = hashlib.sha256(secret.encode()).digest() if secret else None
        tokens = settings.all_tokens() if self.mode is AuthMode.TOKEN else {}
        # Compare digests, so a lookup takes the same time whatever the token.
        self._tokens = {
            hashlib.sha256(token.encode()).digest(): owner for token, owner in tokens.items()
        }
        if self.mode is AuthMode.TOKEN and not self._tokens:
            raise ValueError("auth mode 'token' needs DOWNLOADJOBS_API_TOKENS or _TOKENS_FILE")
        if any(reserved(owner) for owner in self._tokens.values()):
            raise ValueError(f"the owner name {ANONYMOUS!r} is reserved for auth mode 'none'")

    def owner(self, headers: Headers) -> str:
        """The caller's owner name, or :class:`Unauthenticated`."""
        if self.mode is AuthMode.NONE:
            return ANONYMOUS
        if self.mode is AuthMode.HEADER:
            return self._header_owner(headers)
        return self._token_owner(headers)

    def _header_owner(self, headers: Headers) -> str:
        if self._secret is not None:
            sent = headers.getlist(self.secret_header)
            digest = hashlib.sha256(sent[0].encode()).digest() if len(sent) == 1 else b""
            if not hmac.compare_digest(digest, self._secret):
                raise Unauthenticated(f"the {self.secret_header} header is wrong or missing")
        values = headers.getlist(self.header)
        if not values:
            raise Unauthenticated(f"the {self.header} header (set by the proxy) is missing")
        if len(values) > 1 or "," in values[0]:
            raise Unauthenticated(f"the {self.header} header must be one value, set by the proxy")
        owner = values[0].strip()
        if not owner or len(owner) > MAX_OWNER_LENGTH or not owner.isprintable():
            raise Unauthenticated(f"the {self.header} header (set by the proxy) is not a name")
        if reserved(owner):
            raise Unauthenticated(f"the name {ANONYMOUS!r} is reserved")
        return owner

    def _token_owner(self, headers: Headers) -> str:
        values = headers.getlist("authorization")
        if len(values) > 1:
            raise Unauthenticated("send one Authorization header")
        scheme, _, token = (values[0] if values else "").partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise Unauthenticated("send Authorization: Bearer <token>")
        digest = hashlib.sha256(token.strip().encode()).digest()
        found = None
        for known, owner in self._tokens.items():
            if hmac.compare_digest(known, digest):
                found = owner
        if found is None:
            raise Unauthenticated("the bearer token is not valid")
        return found

    def resolve(self, scope: Scope) -> "str | Unauthenticated":
        """
        The caller's owner, or why there is none, worked out once per request and
        kept in the request's state for every layer that asks (rate limits, the
        authentication guard, the routes' ``Owner`` dependency).
        """
        state = scope.setdefault("state", {})
        found: str | Unauthenticated | None = state.get(IDENTITY_STATE)
        if found is None:
            try:
                found = self.owner(Headers(scope=scope))
            except Unauthenticated as exc:
                found = exc
            state[IDENTITY_STATE] = found
        return found

    def client_key(self, scope: Scope) -> str:
        """
        What rate limits count by: the resolved owner when the credentials are
        good (however the header is spelled, and whichever of an owner's tokens),
        the client's address otherwise: bad credentials share the address's count.
        """
        if self.mode is not AuthMode.NONE:
            found = self.resolve(scope)
            if isinstance(found, str):
                return f"owner:{found}"
        client = scope.get("client")
        return f"ip:{client[0] if client else 'unknown'}"


class AuthenticationMiddleware:
    """
    Every ``/v1/`` request without acceptable credentials is 401 here, before
    anything reads its body, path or query: FastAPI parses a route's body before
    it runs the route's dependencies, so the ``Owner`` dependency alone would let
    a stranger's malformed request cost a parse and earn a 400 instead. The
    dependency stays, and reads the identity this layer resolved.
    """

    def __init__(self, app: ASGIApp, identity: Identity) -> None:
        self.app = app
        self.identity = identity

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            scope["type"] == "http"
            and self.identity.mode is not AuthMode.NONE
            and scope["path"].startswith(PROTECTED_PREFIX)
            and scope["method"] != "OPTIONS"
        ):
            found = self.identity.resolve(scope)
            if isinstance(found, Unauthenticated):
                await send_error(scope, send, 401, "UNAUTHENTICATED", str(found), CHALLENGE)
                return
        await self.app(scope, receive, send)
