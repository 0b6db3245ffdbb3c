from django.urls import path

from sales import views

urlpatterns = [
    path("checkout", views.CheckoutView.as_view(), name="checkout"),
    path("purchase", views.PurchaseView.as_view(), name="purchase"),
    path("sales/current", views.SaleCurrentView.as_view(), name="sale-current"),
    path("sales/<int:sale_id>", views.SaleDetailView.as_view(), name="sale-detail"),
    path("sales/<int:sale_id>/items", views.SaleItemsView.as_view(), name="sale-items"),
]
