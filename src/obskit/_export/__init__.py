"""The export layer: the pipeline (counting, backend health, quiet filters) and one module per backend.

Imports from ``obskit._core`` and ``obskit._recording``; a new backend is a module here plus its
entry in ``obskit._export.backends``. docs/design.md.
"""
