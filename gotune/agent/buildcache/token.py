"""The build cache's write token: who may put outputs that other machines will link.

gotune makes the token on the control machine (``new_token``) and deploys it to the
builders only; the site keeps its SHA-256 (``digest``), never the token itself, so a
copy of the site's disk grants no writes. A PUT carries ``Authorization: Bearer
<token>`` and is accepted when the digest of what it carries matches, compared in
constant time. Standard library only.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import re
import secrets
import threading
import time
from pathlib import Path

# 256 random bits: beyond guessing, even at a million tries a second for years.
TOKEN_BYTES = 32
# The site re-reads its digest file at most this often (a rotated token takes effect
# within a second, without a restart; a PUT costs no stat()).
RECHECK_SECONDS = 1.0
_DIGEST = re.compile(r"^[0-9a-f]{64}$")


def new_token() -> str:
    """A fresh token (URL-safe text, 43 characters)."""
    return secrets.token_urlsafe(TOKEN_BYTES)


def digest(token: str) -> str:
    """What the site keeps of a token: its SHA-256, in hex."""
    return hashlib.sha256(token.strip().encode()).hexdigest()


def bearer(header: str | None) -> str | None:
    """The token of an ``Authorization: Bearer TOKEN`` header, or None."""
    if not header:
        return None
    scheme, _, value = header.strip().partition(" ")
    return value.strip() or None if scheme.lower() == "bearer" else None


class TokenCheck:
    """The site's side: the digest file (re-read when it changes) and the comparison.

    + path: the file holding the token's digest (None, missing or garbled: no writes)
    """

    def __init__(self, path: Path | None) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._stamp: tuple[float, int] | None = None
        self._checked = float("-inf")
        self._digest: str | None = None
        self._refresh()

    def _refresh(self) -> str | None:
        if self.path is None:
            return None
        now = time.monotonic()
        with self._lock:
            if now - self._checked < RECHECK_SECONDS:
                return self._digest
            self._checked = now
            try:
                st = os.stat(self.path)
                stamp: tuple[float, int] | None = (st.st_mtime, st.st_size)
            except OSError:
                stamp = None
            if stamp != self._stamp:
                self._stamp = stamp
                try:
                    text = self.path.read_text(encoding="ascii").strip()
                except (OSError, UnicodeDecodeError):
                    text = ""
                self._digest = text if _DIGEST.match(text) else None
            return self._digest

    @property
    def writable(self) -> bool:
        """Whether any token can write (a digest is configured)."""
        return self._refresh() is not None

    def allows(self, token: str | None) -> bool:
        """Whether ``token`` is the one whose digest the site keeps."""
        want = self._refresh()
        if want is None or token is None:
            return False
        return hmac.compare_digest(digest(token), want)
