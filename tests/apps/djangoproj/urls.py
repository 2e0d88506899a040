from django.urls import path

from . import views

urlpatterns = [
    path("", views.index),
    path("echo", views.echo),
    path("stream", views.stream),
    path("file", views.file),
    path("fail", views.fail),
    path("json", views.as_json),
]
