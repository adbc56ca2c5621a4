"""Masking of credential-like values: names matching these patterns never have their values
printed (``portarun info``, evidence strings, reprs, errors)."""
from __future__ import annotations

import re

_SECRET_NAME = re.compile(
    r"KEY|TOKEN|SECRET|PASSWORD|PASSWD|PWD$|CREDENTIAL|AUTH|COOKIE|SESSION_ID|PRIVATE|SIGNATURE",
    re.IGNORECASE,
)
MASK = "***"


def is_secret_name(name: str) -> bool:
    """Whether a variable of this name may hold a credential (``*KEY*``, ``*TOKEN*``, …)."""
    return bool(_SECRET_NAME.search(name)) and name.upper() not in {"PWD", "OLDPWD"}


def shown_value(name: str, value: str) -> str:
    """The value as it may be printed: masked when the name looks like a credential."""
    return MASK if is_secret_name(name) and value else value
