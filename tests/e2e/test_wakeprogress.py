"""Reading a held stream's progress comments the way a client does (the e2e scenarios' report)."""

from __future__ import annotations

from hearth.e2e import wakeprogress


def _events(*comments: str) -> list[bytes]:
    return [b": heartbeat", *(b": hearth " + c.encode() for c in comments), b"data: {}", b"data: [DONE]"]


def test_the_phases_told_their_order_and_the_first_etas_error() -> None:
    told = wakeprogress.told(
        _events(
            '{"v":1,"phase":"requested","elapsed_s":0.0,"eta_s":21}',
            '{"v":1,"phase":"scheduling","elapsed_s":0.4,"eta_s":21}',
            '{"v":1,"phase":"loading","elapsed_s":3.1,"eta_s":18}',
            '{"v":1,"phase":"loading","elapsed_s":5.0,"eta_s":16}',
            '{"v":1,"phase":"ready","elapsed_s":18.5}',
        )
    )
    assert told.phases == [("requested", 0.0), ("scheduling", 0.4), ("loading", 3.1), ("ready", 18.5)]
    assert told.in_order
    assert told.predicted_s == 21.0
    assert told.eta_error_s == -2.5
    assert told.describe().endswith("ETA said 21s, off by -2.5s")


def test_a_phase_going_back_or_unknown_is_out_of_order_and_other_versions_are_ignored() -> None:
    backwards = wakeprogress.told(
        _events('{"v":1,"phase":"loading","elapsed_s":1}', '{"v":1,"phase":"creating","elapsed_s":2}')
    )
    assert not backwards.in_order
    assert not wakeprogress.told(_events('{"v":1,"phase":"unknown","elapsed_s":0}')).in_order
    future = wakeprogress.told(_events('{"v":2,"stage":"x"}', '{"v":1,"phase":"ready","elapsed_s":4}'))
    assert future.phases == [("ready", 4.0)]
    assert future.predicted_s is None
    assert future.eta_error_s is None
