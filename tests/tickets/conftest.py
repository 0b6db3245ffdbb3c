import pytest


@pytest.fixture(autouse=True)
def spool_dir(settings, tmp_path):
    settings.TICKET_SPOOL_DIR = tmp_path / "spool"
    return settings.TICKET_SPOOL_DIR
