"""The command line (private): ``portarun`` and ``python -m portarun`` (:mod:`.main`), what
``portarun info`` reports (:mod:`.report`) and ``portarun launch`` (:mod:`.launch`).
``portarun monitor`` lives with the monitor (:mod:`portarun.monitor.cli`).
"""
