"""The run monitor: what the machine did during training, as a timeline, a plot and advice.

>>> with rt.monitor() as mon:
...     for batch in mon.wrap(loader):
...         train(batch)
>>> print(mon.report())           # summary, advice, and a PNG beside the timeline

See docs/monitor.md. psutil (and nvidia-ml-py for GPUs) come with the ``monitor`` extra,
matplotlib with ``plot``; nothing here is imported by ``import portarun`` or ``detect()``.
"""
from __future__ import annotations

from .budgets import Budget
from .monitor import DEFAULT_INTERVAL, DISK_WARN, RAM_WARN, SHM_WARN, Alert, Monitor
from .report import Report, build_report
from .timeline import Timeline, TimelineError, read_timeline

__all__ = ["Alert", "Budget", "DEFAULT_INTERVAL", "DISK_WARN", "Monitor", "RAM_WARN", "Report", "SHM_WARN",
           "Timeline", "TimelineError", "build_report", "read_timeline"]
