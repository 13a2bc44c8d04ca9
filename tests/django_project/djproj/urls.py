"""path(), re_path() and include(), a project URL shadowing obskit's metrics path when asked."""

import os

from django.urls import include, path, re_path

from djproj import views

api = [
    path("items/<int:item_id>/", views.item),
    re_path(r"^archive/(?P<year>[0-9]{4})/(?P<month>[0-9]{2})/$", views.archive),
]

urlpatterns = [
    path("", views.index),
    path("api/", include(api)),
    re_path(r"^legacy/(?P<slug>[a-z]+)/$", views.legacy),
    path("async/<str:name>/", views.async_view),
    path("stream/", views.stream),
    path("fields/", views.fields),
    path("slow/", views.slow),
    path("astream/", views.astream),
    path("stream-fail/", views.stream_fail),
    path("fail/", views.fail),
    path("async-fail/", views.async_fail),
    path("query/", views.query),
    path("outgoing/", views.outgoing),
]
if os.environ.get("DJPROJ_OWN_METRICS") == "1":
    urlpatterns.append(path("metrics", views.own_metrics))
