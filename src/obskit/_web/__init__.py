"""The web layer: the HTTP core, ASGI and WSGI middleware, the server span, outgoing clients.

Imports from the layers below (core, recording, export), never from the runtime; a new
framework is a module here, installed by ``obskit._web.install``. docs/design.md.
"""
