"""Outgoing HTTP calls through ``httpx`` and ``requests``: the first libraries obskit instrumented.

How every library is instrumented (lazily, on import, in the stable semantic conventions) is in
:mod:`obskit._web.libraries`; ``instrument_http_clients=False`` takes these two out of the
``instrument_libraries`` list. This module keeps the names the doctor and older code use.
"""

from __future__ import annotations

from obskit._web.libraries import HTTP_CLIENTS, LIBRARIES, SEMCONV_OPT_IN, _installed, instrument

__all__ = ["CLIENTS", "SEMCONV_OPT_IN", "instrument", "missing"]

#: client library -> (instrumentation module, instrumentor class), as :data:`LIBRARIES` says.
CLIENTS = {name: (LIBRARIES[name].module, LIBRARIES[name].instrumentor) for name in HTTP_CLIENTS}


def missing() -> list[str]:
    """Installed client libraries whose instrumentation is not: ``pip install "obskit[http-clients]"``."""
    return [lib for lib in HTTP_CLIENTS if _installed(lib) and not _installed(LIBRARIES[lib].module)]
