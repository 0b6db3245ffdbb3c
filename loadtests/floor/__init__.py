"""The floor: what a minimal Django app does for the project's ping, checkout and ticket while
keeping the same promise, served the same way, as the yardstick of `BENCH_FLOOR=1 make bench`.

No middleware, no DRF, one function view per endpoint. `/checkout` runs the project's own Redis
script (`sales/stock/checkout.lua`) and answers once its attempt row is committed; `/ticket`
answers 202 once the raw body is committed. Rows of concurrent requests are committed by one
statement per batch (`groupcommit.py`). Its tables are its own, made at start-up in the database
`DATABASE_URL` names; `REDIS_URL` is a Redis of its own.
"""
