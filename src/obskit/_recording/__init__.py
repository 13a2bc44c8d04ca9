"""The recording layer: the metric store and its handles, tracing, jobs, health, log handling.

What the instrumentation API records into. Imports only from ``obskit._core`` (and the public
``obskit.logging``, part of this layer). docs/design.md.
"""
