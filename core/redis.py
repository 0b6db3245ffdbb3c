"""Redis clients for the cache aliases: one server (django-redis's own factory) or a Redis
Cluster (this factory, chosen by `REDIS_CLUSTER`).

With a cluster, `get_redis_connection(alias)` returns a redis-py `RedisCluster`, which routes
each command to the master owning its key's slot and follows the cluster when a replica is
promoted. A sale's keys share the hash tag `{sale:ID}`, so every stock script and the rebuild's
transaction touch one slot; the rate limiter's counters are single keys in a non-transactional
pipeline, which the cluster client splits by node.
"""

import threading
from typing import Any

from django.conf import settings
from django_redis.pool import ConnectionFactory
from redis.cluster import ClusterNode, RedisCluster
from redis.exceptions import RedisClusterException, RedisError

from core.process import PerProcess


class ClusterUnavailable(RedisError):
    """The cluster client gave up without a Redis error (no node covers the slot, no node
    answers the topology query): callers that fall back on `RedisError` fall back on this."""


class _Cluster(RedisCluster):
    def execute_command(self, *args: Any, **kwargs: Any) -> Any:
        try:
            return super().execute_command(*args, **kwargs)
        except RedisClusterException as exc:
            raise ClusterUnavailable(str(exc)) from exc


def _close_all(clients: dict[str, RedisCluster]) -> None:
    for client in clients.values():
        client.close()


# One cluster client per location, shared by the process's threads: it holds a pool per node
# and the slot map, which are worth building once.
_clients: PerProcess[dict[str, RedisCluster]] = PerProcess(dict, close=_close_all)
_creating = threading.Lock()


class ClusterConnectionFactory(ConnectionFactory):
    """django-redis's connection factory for a Redis Cluster (`REDIS_CLUSTER`)."""

    def connect(self, url: str) -> RedisCluster:  # type: ignore[override]
        clients = _clients.get()
        with _creating:
            if url not in clients:
                clients[url] = self._create(url)
            return clients[url]

    def _create(self, url: str) -> RedisCluster:
        nodes = [ClusterNode(*node.rsplit(":", 1)) for node in settings.REDIS_CLUSTER_NODES]
        try:
            return _Cluster(
                url=url,
                startup_nodes=nodes,
                socket_timeout=self.options.get("SOCKET_TIMEOUT"),
                socket_connect_timeout=self.options.get("SOCKET_CONNECT_TIMEOUT"),
            )
        except RedisClusterException as exc:  # no startup node answered
            raise ClusterUnavailable(str(exc)) from exc

    def disconnect(self, connection: RedisCluster) -> None:  # type: ignore[override]
        connection.disconnect_connection_pools()
