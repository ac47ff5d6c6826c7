"""The fault scenarios' own logic: how a held client's stream ended, the tally, and the fault hook."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import cast

import pytest
from aiohttp import test_utils, web

from hearth.cmd import params
from hearth.e2e import faults, runner
from hearth.kube.client import KubeClient


def test_a_stream_ending_with_done_was_answered() -> None:
    assert faults.classify([b": heartbeat", b'data: {"x": 1}', b"data: [DONE]"]) == faults.ANSWERED


def test_a_stream_ending_with_an_error_event_names_its_code() -> None:
    event = b'event: error\ndata: {"error": {"message": "bye", "type": "x", "code": "shutting_down"}}'
    assert faults.classify([b": heartbeat", event]) == "error shutting_down"


def test_a_stream_ending_with_neither_was_cut() -> None:
    assert faults.classify([b": heartbeat", b'data: {"x": 1}']) == "cut after 2 events"
    assert faults.classify([]) == "cut after 0 events"


def test_an_unreadable_error_event_is_said_so() -> None:
    assert faults.classify([b"event: error\ndata: {not json"]) == "error unreadable"


def test_tally_counts_answers_and_names_each_other_end() -> None:
    seen = [
        faults.Seen("a", faults.ANSWERED, held=True, first_token_s=6.0),
        faults.Seen("a", "error shutting_down", held=True, first_token_s=None),
        faults.Seen("b", "error shutting_down", held=True, first_token_s=None),
        faults.Seen("b", "cut: ClientPayloadError", held=False, first_token_s=None),
    ]
    assert faults.tally(seen) == "1 of 4 answered (cut: ClientPayloadError: 1, error shutting_down: 2)"
    assert faults.tally(seen[:1]) == "1 of 1 answered"


def test_without_a_fault_hook_the_control_plane_faults_are_not_promised() -> None:
    with pytest.raises(runner.ScenarioNotPromisedError, match="HEARTH_E2E_FAULT_HOOK"):
        faults.hook_fault(runner.Options(stub_image="stub"), "restart", "kubelet")


async def test_the_hook_runs_with_the_fault_after_its_own_words_and_says_what_it_did(tmp_path: Path) -> None:
    said = tmp_path / "args"
    script = f"import sys; open({str(said)!r}, 'w').write(' '.join(sys.argv[1:]))"
    options = runner.Options(stub_image="stub", fault_hook=(sys.executable, "-c", script, "fault"))
    told = await faults.hook_fault(options, "pause", "etcd", "10")()
    assert said.read_text() == "fault pause etcd 10"
    assert told.startswith("pause etcd 10 (")
    assert told.endswith("s until healthy)")


async def test_a_hook_that_fails_fails_the_scenario_with_its_output() -> None:
    script = "import sys; print('etcd did not come back'); sys.exit(3)"
    options = runner.Options(stub_image="stub", fault_hook=(sys.executable, "-c", script))
    with pytest.raises(runner.ScenarioFailedError, match=r"exited 3.*etcd did not come back"):
        await faults.hook_fault(options, "pause", "etcd", "10")()


def test_the_hook_flag_is_split_as_a_shell_would() -> None:
    assert params.COMMAND.convert("bash '/a b/cluster.sh' fault", None, None) == (
        "bash",
        "/a b/cluster.sh",
        "fault",
    )


async def test_a_cut_stream_still_says_it_was_held() -> None:
    async def held_then_cut(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        await response.write(b': hearth {"v": 1, "phase": "loading", "elapsed_s": 1.0}\n\n')
        assert request.transport is not None
        request.transport.abort()  # a killed gateway: no [DONE], no error event
        return response

    app = web.Application()
    app.router.add_post("/v1/chat/completions", held_then_cut)
    server = test_utils.TestServer(app, host="127.0.0.1")
    await server.start_server()
    session = runner.Run(cast(KubeClient, None), runner.Options(stub_image="stub"), report=lambda _: None)
    try:
        pod = runner.GatewayPod("gateway-0", str(server.make_url("")).rstrip("/"))
        seen = await faults._held_client(session, pod)
    finally:
        await session.http.close()
        await server.close()
    assert seen.result.startswith("cut: ")
    assert seen.held
    assert seen.first_token_s is None
