"""One Dask cluster per test module: a LocalCluster of 2 worker processes, 1 thread each.

Test modules import the ``client`` fixture from here (a ``conftest.py`` in this directory
would shadow the suite's top-level ``conftest`` module, which other tests import). The
workers find the test models (``dist_models``) through ``PYTHONPATH``.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent


@pytest.fixture(scope="module")
def client():
    distributed = pytest.importorskip("distributed")
    old = os.environ.get("PYTHONPATH")
    os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [str(HERE), old]))
    try:
        cluster = distributed.LocalCluster(
            n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0", worker_dashboard_address=":0"
        )
    finally:
        if old is None:
            del os.environ["PYTHONPATH"]
        else:
            os.environ["PYTHONPATH"] = old
    client = distributed.Client(cluster)
    yield client
    client.close()
    cluster.close()
