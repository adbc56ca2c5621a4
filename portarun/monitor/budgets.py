"""Budgets: what a host allows or charges per session, week or hour, and what a run used of it.

A provider publishes its figures through :meth:`portarun.provider.Provider.budgets` as
:class:`Budget` records, each with the source it was read from and the date it was read; the
default is none ("unknown"): portarun never invents a quota or a price. ``PORTARUN_PRICE_PER_HOUR``
(a number, in US dollars) adds the price you pay on any host, for hosts whose price portarun
cannot know (the instance type you rented). Every figure computed here is an estimate and is
labelled so: hosts count their quotas their own way (Kaggle from the moment the accelerator
starts, whether it computes or not).
"""
from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import Any, Literal, NamedTuple

#: ``accelerator_hours``: hours of a session with the accelerator attached, per ``unit`` period;
#: ``price_per_hour``: what an hour of this machine costs, in ``unit`` (``USD/h``).
BudgetKind = Literal["accelerator_hours", "price_per_hour"]


class Budget(NamedTuple):
    """One published figure: ``name`` ("Kaggle weekly GPU quota"), its ``kind``, which
    ``accelerator`` it applies to (``gpu``, ``tpu`` or ``any``), the ``amount`` in ``unit``
    (``h/week``, ``USD/h``), the ``source`` (a URL or reference) and the date ``checked`` (ISO)
    when the source was read."""

    name: str
    kind: BudgetKind
    accelerator: str
    amount: float
    unit: str
    source: str
    checked: str


def price_override(value: str | None) -> Budget | None:
    """The ``PORTARUN_PRICE_PER_HOUR`` budget, or ``None`` when unset or not a positive number."""
    if not value:
        return None
    try:
        amount = float(value)
    except ValueError:
        return None
    if not math.isfinite(amount) or amount <= 0:
        return None
    return Budget("your price (PORTARUN_PRICE_PER_HOUR)", "price_per_hour", "any", amount, "USD/h",
                  "PORTARUN_PRICE_PER_HOUR", "set for this run")


def as_record(budget: Budget) -> dict[str, Any]:
    """A budget as a JSON-ready dict (the timeline's start record holds them)."""
    return dict(budget._asdict())


def from_record(data: Mapping[str, Any]) -> Budget | None:
    """A budget read back from a timeline, or ``None`` when the record is not one."""
    try:
        return Budget(str(data["name"]), data["kind"], str(data["accelerator"]), float(data["amount"]),
                      str(data["unit"]), str(data["source"]), str(data["checked"]))
    except (KeyError, TypeError, ValueError):
        return None


def _hours(seconds: float) -> str:
    return f"{seconds / 3600:.2f} h"


def usage_lines(budgets: Iterable[Budget], seconds: float, gpus: int, tpu: bool) -> list[str]:
    """What a run of ``seconds`` with ``gpus`` GPUs (and a TPU or not) used of each budget, one
    line each, labelled as estimates. A budget for an accelerator the run did not have is left
    out."""
    lines: list[str] = []
    accelerator = "tpu" if tpu else ("gpu" if gpus else None)
    if gpus:
        lines.append(f"this run used {seconds / 3600 * gpus:.2f} GPU-hours ({_hours(seconds)} x {gpus} GPU"
                     f"{'s' if gpus > 1 else ''})")
    for b in budgets:
        if b.kind == "accelerator_hours" and b.accelerator == accelerator and b.amount > 0:
            share = seconds / 3600 / b.amount * 100
            lines.append(f"≈ {share:.1f}% of the {b.name} of {b.amount:g} {b.unit} ({_hours(seconds)} with the "
                         f"{accelerator.upper()} attached; estimate, source: {b.source}, read {b.checked})")
        elif b.kind == "price_per_hour" and b.accelerator in ("any", accelerator):
            cost = seconds / 3600 * b.amount
            lines.append(f"≈ ${cost:.2f} at {b.name} of {b.amount:g} {b.unit} (estimate, source: {b.source}, "
                         f"read {b.checked})")
    return lines
