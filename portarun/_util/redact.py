"""Masking of credentials, the one place that decides what may be printed.

* :func:`shown_value`: a ``NAME=value`` whose name looks like a credential shows ``***``.
* :func:`shown_location`: a path or URL as it may be printed or used as a name: the
  ``user:password@`` part of every ``scheme://`` URL in it and the values of credential-looking
  query parameters (``?token=``, ``X-Amz-Signature=``, ``sig=``) become ``***``.
* :func:`redact`: free text (an error message, an evidence line) with both applied.
* :func:`location_key`: a folder-name-safe key for a location that holds no credential but still
  tells two locations apart that differ only in their credentials.

Every place that prints a location (``portarun info``, ``rt.explain()``, reprs, error messages,
log lines) or derives a name from it goes through these functions, so a credential typed into
``PORTARUN_CHECKPOINTS_DIR=s3://key:secret@bucket/run`` is never shown or written to disk.
"""
from __future__ import annotations

import os
import re

_SECRET_NAME = re.compile(
    r"KEY|TOKEN|SECRET|PASSWORD|PASSWD|PWD$|CREDENTIAL|AUTH|COOKIE|SESSION_ID|PRIVATE|SIGNATURE",
    re.IGNORECASE,
)
# Query parameters that carry a credential although their names match none of the words above:
# an Azure SAS signature is ``sig=`` (https://learn.microsoft.com/en-us/rest/api/storageservices/create-service-sas)
# and OAuth's authorization code is ``code=`` (RFC 6749 §4.1.2).
_SECRET_PARAM = re.compile(r"^(sig|code|pass|pw)$", re.IGNORECASE)
MASK = "***"

# ``scheme://`` up to the end of the URL (whitespace or a quote ends it inside free text). The
# scheme is matched on its last 32 characters at most (fsspec's longest protocol name has 13):
# an unbounded one made every start position in a long run of letters scan to its end, which is
# quadratic; a longer scheme still matches, from a later start, and its URL is masked the same.
_URL = re.compile(r"[A-Za-z][A-Za-z0-9+.\-]{0,31}://[^\s'\"<>]*")
_ASSIGNMENT = re.compile(r"\b([A-Za-z_][A-Za-z0-9_]*)=(\S+)")


# C0 and C1 controls (newlines, ESC and CSI start terminal escape sequences) and the bidi
# overrides that reorder what a terminal shows.
_CONTROL = {i: f"\\x{i:02x}" if i < 256 else f"\\u{i:04x}"
            for i in (*range(32), *range(127, 160), *range(0x202A, 0x202F), *range(0x2066, 0x206A))}


def printable(text: str) -> str:
    """``text`` with control characters and bidi overrides shown as ``\\xNN``/``\\uNNNN`` escapes:
    what a terminal shows of it is what it holds, on one line (a folder name, an evidence line
    or a plugin's message could otherwise set the title, clear the screen or forge a line)."""
    return text.translate(_CONTROL)


def is_secret_name(name: str) -> bool:
    """Whether a variable of this name may hold a credential (``*KEY*``, ``*TOKEN*``, …)."""
    return bool(_SECRET_NAME.search(name)) and name.upper() not in {"PWD", "OLDPWD"}


def shown_value(name: str, value: str) -> str:
    """The value as it may be printed: masked when the name looks like a credential."""
    return MASK if is_secret_name(name) and value else value


def _userinfo_end(rest: str) -> int:
    """Length of the ``user:password@`` prefix of ``rest`` (the URL after ``://``), 0 if none.

    Standard URLs end the authority at the first ``/``; its last ``@`` ends the userinfo
    (passwords may hold a raw ``@``, ``#`` or ``?``). Secret access keys often hold a raw ``/`` too
    (``s3://AKIA…:ab/cd@bucket``), which would end the authority early and leak the key's tail,
    so a ``:`` followed later by an ``@`` also counts as userinfo up to that ``@``. Masking a
    little too much (a path segment like ``a:b@c``) is the safe side of that ambiguity.
    """
    head = re.split(r"[?#]", rest, maxsplit=1)[0]
    authority = rest.split("/", 1)[0]  # not cut at '?' or '#': a raw one may sit in a password
    end = authority.rfind("@") + 1
    colon = head.find(":")
    if colon >= 0:
        at = head.find("@", colon)
        if at >= 0:
            end = max(end, at + 1)
    return end


def _mask_query(query: str) -> str:
    parts = []
    for part in re.split(r"([&;])", query):
        name, sep, value = part.partition("=")
        if sep and value and (is_secret_name(name) or _SECRET_PARAM.match(name)):
            part = f"{name}={MASK}"
        parts.append(part)
    return "".join(parts)


def _mask_url(url: str) -> str:
    scheme, _, rest = url.partition("://")
    end = _userinfo_end(rest)
    if end:
        rest = MASK + "@" + rest[end:]
    base, q, query = rest.partition("?")
    if q:
        query, h, fragment = query.partition("#")
        rest = base + "?" + _mask_query(query) + h + fragment
    return f"{scheme}://{rest}"


def shown_location(location: str | os.PathLike[str]) -> str:
    """``location`` as it may be printed or used in a name: the userinfo of every URL in it
    (``s3://key:secret@bucket/run`` → ``s3://***@bucket/run``, chained fsspec URLs included) and
    credential-looking query values (``?X-Amz-Signature=…``) replaced by ``***``. Local paths
    come back unchanged (as ``str``)."""
    text = os.fspath(location)
    return _URL.sub(lambda m: _mask_url(m.group(0)), text) if "://" in text else text


def shown_input(value: str, limit: int = 120) -> str:
    """A variable's or an option's text as a message quotes it: ``repr`` (control characters and
    undecodable bytes escaped), locations masked as :func:`shown_location` does, and cut to about
    ``limit`` characters, so a 100 kB value never fills an error line."""
    text = repr(shown_location(value))  # masked whole first: a cut could split a URL's credentials
    return text if len(text) <= limit else text[:limit - 25] + "…" + text[-20:]


def redact(text: str) -> str:
    """Free text with every URL masked as :func:`shown_location` does and the values of
    secret-looking ``NAME=value`` pairs replaced by ``***``, except the placeholder ``...`` of
    advice such as ``export HF_TOKEN=...``."""
    text = shown_location(text)
    return _ASSIGNMENT.sub(lambda m: m.group(0) if m.group(2).rstrip(".,;:)") == "" else
                           f"{m.group(1)}={shown_value(m.group(1), m.group(2))}", text)


def redact_start(text: str, length: int) -> str:
    """:func:`redact` of the first ``length`` characters of ``text``, followed by ``…`` when there
    was more, without scanning the rest: a URL that the cut leaves open (its ``user:password@``
    may run past the cut, where its ``@`` is lost) keeps only its ``scheme://``, so no part of a
    password shows."""
    if len(text) <= length:
        return redact(text)
    start = text[:length]
    last = None
    for last in _URL.finditer(start):
        pass
    if last is not None and last.end() == len(start):
        start = start[:last.start()] + last.group(0).partition("://")[0] + "://"
    return redact(start) + "…"


def location_key(location: str | os.PathLike[str], length: int = 12) -> str:
    """A short hex digest of the full location, credentials included, so two locations that
    differ only in their credentials (two users of one bucket) get different keys. Shown next
    to :func:`shown_location`, it reveals nothing: SHA-256 is one-way."""
    import hashlib  # here, not at the top: detect() imports this module and never needs it

    return hashlib.sha256(os.fspath(location).encode("utf-8", "surrogateescape")).hexdigest()[:length]
