import os

import pytest
import torch

# Under pytest-xdist each worker gets one core: two workers × two threads would oversubscribe 2 cores.
if os.environ.get("PYTEST_XDIST_WORKER"):
    torch.set_num_threads(1)

os.environ.setdefault("MPLBACKEND", "Agg")


@pytest.fixture
def gen():
    """A seeded CPU generator: randomness in genlab is always explicit."""
    return torch.Generator().manual_seed(0)
