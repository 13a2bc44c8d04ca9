"""ASGI entry point: ``uvicorn --app-dir examples/django_app shop.asgi:application``."""

import os

from django.core.asgi import get_asgi_application

import obskit

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "shop.settings")

application = get_asgi_application()
obskit.configure(application, service_name="shop")
