from rest_framework.pagination import PageNumberPagination


class Pagination(PageNumberPagination):
    """`?page=N`, and `?page_size=N` up to 1,000 for clients that want bigger pages."""

    page_size_query_param = "page_size"
    max_page_size = 1000
