from django.urls import path

from tickets import views

urlpatterns = [
    path("ticket", views.TicketIngestView.as_view(), name="ticket-ingest"),
    path("tickets", views.TicketListView.as_view(), name="ticket-list"),
    path("tickets/<uuid:ticket_id>", views.TicketDetailView.as_view(), name="ticket-detail"),
    path(
        "tickets/<uuid:ticket_id>/reprocess",
        views.TicketReprocessView.as_view(),
        name="ticket-reprocess",
    ),
    path("products", views.ProductListView.as_view(), name="product-list"),
    path("products/<path:product_id>", views.ProductDetailView.as_view(), name="product-detail"),
]
