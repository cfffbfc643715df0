"""aifdata's thread pools run each task as whom submitted it: a service's request acts as
its caller (``acting_as``) in the workers that plan, read, ingest or stage for it too."""

from __future__ import annotations

from aifdata._threads import ThreadPool
from aifdata.catalog import Principal, acting_as, current_principal


def test_a_pool_task_acts_as_the_principal_that_submitted_it(who):
    who("nobody")  # the process's own user
    alice = Principal("alice", ("lab",))
    with acting_as(alice), ThreadPool(2) as pool:
        assert pool.submit(current_principal).result() == alice
        assert list(pool.map(lambda _: current_principal(), range(4))) == [alice] * 4
    with ThreadPool(1) as pool:
        assert pool.submit(current_principal).result().user == "nobody"


def test_each_task_keeps_the_principal_of_its_own_submission(who):
    who("nobody")
    with ThreadPool(2) as pool:
        with acting_as(Principal("alice")):
            first = pool.submit(current_principal)
        with acting_as(Principal("bob")):
            second = pool.submit(current_principal)
        assert (first.result().user, second.result().user) == ("alice", "bob")
