"""Fixtures shared by the golden tests."""

import pytest


@pytest.fixture(scope="module")
def one_thread():
    """Tiny networks run several times faster on one torch thread than on two contending with
    other jobs; one thread count throughout also keeps every float sum of a module the same.
    Use with ``pytestmark = pytest.mark.usefixtures("one_thread")``."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
