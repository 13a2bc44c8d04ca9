"""The bottom layer: settings, the one mutable global, errors, context, redaction, the resource, exit.

Imports nothing else from obskit (``obskit.environment_variables`` is part of it). docs/design.md.
"""
