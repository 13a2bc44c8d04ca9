"""The runtime layer: ``configure()``/``shutdown()`` wiring every layer below, and the doctor.

The only layer that knows them all; nothing below imports it. docs/design.md.
"""
