"""Log through Django's and the project's loggers with obskit configured; print the loggers' state."""

import json
import logging
import sys

import djproj.wsgi  # noqa: F401  (Django set up, obskit configured with the handler or by MIDDLEWARE)
from django.test import Client

client = Client(raise_request_exception=False)
if "--middleware" not in sys.argv:
    import obskit

    obskit.configure(client.handler, service_name="djproj")
client.get("/fail/")
logging.getLogger("django").warning("a django warning")
logging.getLogger("djproj").warning("a project warning")
logging.getLogger("djproj").debug("a project debug line")
state = {
    name: [logging.getLogger(name).level, logging.getLogger(name).disabled]
    for name in ("django", "djproj", "obskit")
}
print("STATE " + json.dumps(state), file=sys.stderr)
