"""ASGI entry point: configure(application) unless obskit's middleware is in MIDDLEWARE."""

import os

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "djproj.settings")

from django.core.asgi import get_asgi_application

import obskit

application = get_asgi_application()
if os.environ.get("DJPROJ_MIDDLEWARE") != "1":
    obskit.configure(application, service_name="djproj")
