import threading

import pytest

from ccframe.io.prefetch import prefetch


def test_prefetch_keeps_order_and_items():
    assert list(prefetch(iter(range(100)), depth=3)) == list(range(100))


def test_prefetch_reraises_producer_errors():
    def broken():
        yield 1
        raise ValueError("producer failed")

    it = prefetch(broken())
    assert next(it) == 1
    with pytest.raises(ValueError, match="producer failed"):
        next(it)


def test_prefetch_stops_producer_when_consumer_closes():
    produced = []

    def endless():
        i = 0
        while True:
            produced.append(i)
            yield i
            i += 1

    it = prefetch(endless(), depth=2)
    assert next(it) == 0
    it.close()
    n = len(produced)
    assert not any(t.name == "ccframe-prefetch" for t in threading.enumerate())
    assert len(produced) == n
