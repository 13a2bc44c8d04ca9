"""Routes: path() with a converter, re_path(), include(), sync and async views, a stream."""

from django.urls import include, path, re_path

from shop import views

items = [
    path("<int:item_id>/", views.item),
    re_path(r"^by-sku/(?P<sku>[A-Z]{3}-[0-9]+)/$", views.by_sku),
]

urlpatterns = [
    path("items/", include(items)),
    path("prices/<str:currency>/", views.prices),
    path("export/", views.export),
    path("fail/", views.fail),
]
