from celery import shared_task

from sales.services import sale_open_hourly


@shared_task(ignore_result=True)
def open_hourly_sale() -> int:
    """Open this hour's sale. Idempotent, so a beat that fires twice opens one sale."""
    return sale_open_hourly().pk
