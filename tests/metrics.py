"""Reading this process's Prometheus samples, so that a test asserts by how much an operation
moved a metric (a counter left unincremented fails it)."""

from prometheus_client import REGISTRY


def sample(name: str, **labels: str) -> float:
    """The sample's value now; 0 for a labelled child not created yet."""
    return REGISTRY.get_sample_value(name, labels) or 0.0
