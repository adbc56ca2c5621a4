"""Plugin machinery (private): loading the built-in and third-party providers through pluggy
(:mod:`.manager`), the light entry-point scan (:mod:`.entrypoints`), running plugin code
isolated and within a time budget (:mod:`.isolation`), the built-in default hook
implementations (:mod:`.defaults`) and portarun's process-wide state (:mod:`.state`).

Plugin authors use the public surface instead: :mod:`portarun.hookspecs`,
:mod:`portarun.provider`, :mod:`portarun.probe` and :mod:`portarun.testing.contract`.
"""
