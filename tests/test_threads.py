"""fastnn.set_num_threads sets every thread pool together."""
import os

import pytest

import fastnn


def test_set_num_threads_limits_every_pool():
    from threadpoolctl import threadpool_info

    before = fastnn.get_num_threads()
    try:
        fastnn.set_num_threads(1)
        assert fastnn.get_num_threads() == 1
        pools = threadpool_info()
        assert pools and all(p["num_threads"] == 1 for p in pools), pools
        if "numba" in fastnn.backends.available():
            import numba

            assert numba.get_num_threads() == 1
    finally:
        fastnn.set_num_threads(before)
    assert all(p["num_threads"] == before for p in threadpool_info())


@pytest.mark.parametrize("n,exc", [(0, ValueError), (-1, ValueError), (1.5, TypeError), ((os.cpu_count() or 1) + 1, ValueError)])
def test_bad_thread_counts(n, exc):
    with pytest.raises(exc):
        fastnn.set_num_threads(n)
