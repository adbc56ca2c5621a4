"""Machine facts (private): readers of the real machine's CPU, memory and shared memory
(:mod:`.sysinfo`), the accelerator inventory read without importing torch
(:mod:`.accelerators`) and accelerator specifications by name (:mod:`.catalog`).

They feed the probe; the records they return are public in :mod:`portarun.facts`.
"""
