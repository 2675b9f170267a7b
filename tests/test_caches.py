"""The answer path's bounded cache."""

from callgate.caches import ClearingCache


def test_a_clearing_cache_keeps_at_most_its_size_and_empties_when_full():
    cache = ClearingCache(2)
    assert cache.put("a", 1) == 1 and cache.put("b", 2) == 2
    assert cache == {"a": 1, "b": 2}
    cache.put("b", 3)                       # full: even a known key's new value starts over
    assert cache == {"b": 3}
    cache.put("c", 4)
    assert cache == {"b": 3, "c": 4} and cache.get("a") is None and len(cache) <= cache.size
