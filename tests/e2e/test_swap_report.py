"""The pool swap's report (e2e P1, issue 32): the budget is judged on the time the swap adds until the
requester's pod is scheduled (against a plain cold start's), beyond the kubelet's own stop of a bare pod;
the end-to-end difference and the strict +1 s are reported beside it."""

from __future__ import annotations

from hearth.e2e import pools


def _path(sent: float, scheduled: float | None, first_token: float) -> pools._Path:
    marks = [("scaled to 1", sent + 0.1)]
    if scheduled is not None:
        marks.append(("pod scheduled", sent + scheduled))
    return pools._Path(sent=sent, marks=marks, first_token=sent + first_token)


def test_a_swap_within_the_kubelets_stop_and_a_second_meets_the_budget() -> None:
    report = pools._swap_report(_path(100.0, 0.2, 8.7), _path(200.0, 2.2, 11.2), kubelet_stop=1.3)
    assert "the swap adds 2.00s until the requester's pod is scheduled (2.20s against a plain" in report
    assert "budget: the kubelet's own stop of a bare pod (1.30s) + 1s: met" in report
    assert "without the kubelet's stop (+1s alone): 1.00s over" in report
    # The probes' phase may put the end-to-end difference well over a second: reported, not judged.
    assert "first token 11.20s (+2.50s end to end)" in report


def test_a_swap_whose_pod_is_scheduled_later_misses_it_by_how_much() -> None:
    report = pools._swap_report(_path(0.0, 0.2, 8.7), _path(50.0, 2.9, 9.0), kubelet_stop=1.0)
    assert "+ 1s: NOT met, 0.70s over" in report


def test_a_swap_within_a_second_alone_meets_both() -> None:
    report = pools._swap_report(_path(0.0, 0.2, 8.7), _path(50.0, 0.9, 9.0), kubelet_stop=1.0)
    assert "+ 1s: met; without the kubelet's stop (+1s alone): met" in report


def test_a_step_not_seen_is_not_judged() -> None:
    report = pools._swap_report(_path(0.0, None, 8.7), _path(50.0, 2.9, 9.0), kubelet_stop=1.0)
    assert "not judged: a pod's scheduling was not seen" in report
