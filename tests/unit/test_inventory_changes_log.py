"""What the inventory change listener remembers of each notification (read/changes.py): the
ids a generation named, until it is forgotten; a generation nobody named, or one forgotten,
means "read everything again". No database: the listener's bookkeeping alone."""

from inventory.read import changes


def told(*interfaces: int, nodes: tuple[int, ...] = ()) -> changes.Changed:
    return changes.Changed(frozenset(interfaces), frozenset(nodes))


def test_payloads_name_interfaces_nodes_or_everything():
    assert changes.parse("i:1,22") == told(1, 22)
    assert changes.parse("n:7") == told(nodes=(7,))
    for everything in ("", "i:", "i:1,x", "q:1", "n:1.5", "garbage"):
        assert changes.parse(everything) is None, everything


def test_the_generations_between_two_are_the_union_of_what_they_named():
    listener = changes.Listener()
    start = listener.generation
    listener._bump(changed=told(1, 2))
    listener._bump(changed=told(nodes=(9,)))
    listener._bump(changed=told(2, 3))
    now = listener.generation
    assert listener.changed_between(start, now) == told(1, 2, 3, nodes=(9,))
    assert listener.changed_between(start + 2, now) == told(2, 3)
    assert listener.changed_between(now, now) == told()
    assert listener.changed_between(now, start) is None  # backwards: nothing known


def test_a_generation_that_named_nothing_means_everything():
    listener = changes.Listener()
    start = listener.generation
    listener._bump(changed=told(1))
    listener._bump()  # a reconnect, a failure, a silence, an unreadable payload
    listener._bump(changed=told(2))
    now = listener.generation
    assert listener.changed_between(start, now) is None
    assert listener.changed_between(now - 1, now) == told(2)


def test_old_generations_are_forgotten_by_count_and_by_ids(monkeypatch):
    monkeypatch.setattr(changes, "LOG_GENERATIONS", 3)
    monkeypatch.setattr(changes, "LOG_IDS", 5)
    listener = changes.Listener()
    start = listener.generation
    for i in range(4):
        listener._bump(changed=told(i))
    now = listener.generation
    assert listener.changed_between(start, now) is None  # the first was forgotten
    assert listener.changed_between(start + 1, now) == told(1, 2, 3)
    listener._bump(changed=told(10, 11, 12, 13))
    latest = listener.generation
    assert listener.changed_between(now, latest) == told(10, 11, 12, 13)
    # 7 ids would pass 5: the two oldest generations left are forgotten, the newest kept.
    assert listener.changed_between(now - 1, latest) == told(3, 10, 11, 12, 13)
    assert listener.changed_between(now - 2, latest) is None
