"""Server side of UconDB's HTTP Digest authentication (RFC 2617, MD5, qop=auth) as the real
server (3.9.7) does it (docs/ucondb-local-server.md, "What it reproduces").

Builds the challenge, parses the ``Authorization`` header (split on commas, like the real
server), looks up the password through the ``'*'`` rules, and checks the response hash.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
from typing import Mapping, Optional

#: Fields a digest header must carry; a missing one is a server error (500) in UconDB 3.9.7.
REQUIRED_FIELDS = ("username", "nonce", "uri", "nc", "cnonce", "qop", "response")

#: The ``Authorization`` configuration: realm (or ``'*'``) → user (or ``'*'``) → password.
Authorization = Mapping[str, Mapping[str, str]]


class DigestHeaderError(Exception):
    """A ``Digest`` header without one of the fields the check needs."""

    def __init__(self, field: str):
        super().__init__(f"Digest authorization header without '{field}'")


def make_nonce(now: Optional[float] = None) -> str:
    """The real server's nonce: the Python repr of base64(epoch seconds), e.g. ``b'MTc…'``."""
    seconds = str(int(now if now is not None else time.time())).encode()
    return repr(base64.b64encode(seconds))


def challenge(realm: str) -> str:
    """The ``WWW-Authenticate`` value of a 401 that asks for credentials."""
    return f'Digest realm="{realm}", nonce="{make_nonce()}", algorithm=MD5, qop="auth"'


def is_digest(header: Optional[str]) -> bool:
    return bool(header) and header.strip().lower().startswith("digest ")


def parse_header(header: str) -> dict[str, str]:
    """Split a ``Digest k=v, k="v"`` header on commas (values must not contain commas)."""
    fields: dict[str, str] = {}
    for part in header.strip()[len("digest "):].split(","):
        name, sep, value = part.strip().partition("=")
        if not sep:
            continue
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] == '"':
            value = value[1:-1]
        fields[name.strip().lower()] = value
    return fields


def lookup_password(authorization: Authorization, realm: str, user: str) -> Optional[str]:
    """Password of ``user`` in ``realm``: realm entry else ``'*'``; user else ``'*'``."""
    users = authorization.get(realm)
    if users is None:
        users = authorization.get("*")
    if users is None:
        return None
    password = users.get(user)
    if password is None:
        password = users.get("*")
    return password


def _md5(text: str) -> str:
    return hashlib.md5(text.encode("utf-8")).hexdigest()


def expected_response(fields: Mapping[str, str], method: str, realm: str, password: str) -> str:
    ha1 = _md5(f"{fields['username']}:{realm}:{password}")
    ha2 = _md5(f"{method}:{fields['uri']}")
    parts = [ha1, fields["nonce"], fields["nc"], fields["cnonce"], fields["qop"], ha2]
    return _md5(":".join(parts))


def verify(header: str, method: str, realm: str, authorization: Authorization) -> bool:
    """True when the digest header proves a known user's password for ``realm``.

    Raises DigestHeaderError when a required field is missing (the caller answers 500).
    Nonce age and reuse are not checked, and ``uri`` is not compared with the request path.
    """
    fields = parse_header(header)
    for name in REQUIRED_FIELDS:
        if name not in fields:
            raise DigestHeaderError(name)
    password = lookup_password(authorization, realm, fields["username"])
    if password is None:
        return False
    expected = expected_response(fields, method, realm, password)
    return hmac.compare_digest(expected, fields["response"].lower())
