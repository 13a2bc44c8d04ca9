"""What the telemetry says about the service: the OpenTelemetry resource and the service log fields.

In the bottom layer so that every backend (Azure builds its own exporters' resource) and
``obskit.testing`` take the same one as ``configure()``.
"""

from __future__ import annotations

import os
import socket
from typing import Any

from obskit._core.settings import Settings

__all__ = ["log_fields", "resource_for"]


def resource_for(settings: Settings) -> Any:
    """The OpenTelemetry resource: service name/version/environment, host, pid, user attributes."""
    from opentelemetry.sdk.resources import Resource

    attributes: dict[str, Any] = {
        "telemetry.sdk.language": "python",
        "host.name": socket.gethostname(),
        "process.pid": os.getpid(),
        **settings.resource_attributes,
        "service.name": settings.service_name,
        "deployment.environment.name": settings.environment,
    }
    if settings.service_version:
        attributes["service.version"] = settings.service_version
    return Resource.create(attributes)


def log_fields(settings: Settings) -> dict[str, str]:
    """The service fields every log line carries."""
    fields = {"service": settings.service_name, "environment": settings.environment}
    if settings.service_version:
        fields["service_version"] = settings.service_version
    return fields
