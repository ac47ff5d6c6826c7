"""Running an aiohttp application (or a bare request handler) as a long-lived server that drains
gracefully on SIGTERM.

Kubernetes sends SIGTERM and waits ``terminationGracePeriodSeconds``; a server that exits at once cuts every
open stream. Here SIGTERM (or SIGINT) stops the listener first, so new connections are refused, then waits
up to ``shutdown_timeout`` for requests in flight to finish before the process exits.
"""

from __future__ import annotations

import asyncio
import collections
import errno
import functools
import logging
import os
import signal
import socket
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from aiohttp import http_exceptions, web, web_protocol, web_server

from hearth.common import logs, netaddr

log = logging.getLogger(__name__)

#: aiohttp's own default (the kernel's classic SOMAXCONN): far too small for a burst of clients.
DEFAULT_BACKLOG = 128
SOMAXCONN = Path("/proc/sys/net/core/somaxconn")

#: New connections taken per event-loop iteration (see :class:`_Listener`).
ACCEPT_STEP = 8
#: How long accepting pauses when the process is out of descriptors or memory (asyncio's own delay).
ACCEPT_RETRY_SECONDS = 1.0

#: Called once the listener is bound, with the base URLs it answers on (port 0 resolved).
StartedHook = Callable[[list[str]], Awaitable[None] | None]
#: A request handler served without an Application (no router, no middlewares): the gateway's hot path.
BareHandler = Callable[[web.BaseRequest], Awaitable[web.StreamResponse]]


class ListenError(Exception):
    """The listen address cannot be bound (in use, not an address of this host, not permitted): a
    setting to fix, reported in one line by the command rather than as a traceback."""


async def serve(
    app: web.Application | BareHandler,
    *,
    address: netaddr.ListenAddress,
    shutdown_timeout: float,
    name: str,
    stop: asyncio.Event | None = None,
    on_started: StartedHook | None = None,
    before_shutdown: Callable[[], Awaitable[None]] | None = None,
    header_deadline: float | None = None,
    backlog: int = DEFAULT_BACKLOG,
    accept_step: int = ACCEPT_STEP,
    **server_options: Any,
) -> None:
    """Serve *app* (an Application, or one bare handler for every request) on *address* until
    SIGTERM/SIGINT (or *stop* is set), then drain and return.

    *before_shutdown* runs after the signal while the listener is still open (e.g. to fail readiness and
    keep serving until the endpoint is gone); *header_deadline* bounds how long a request's head may take;
    *backlog* is the listen backlog asked for (:func:`listen_backlog` caps it); *accept_step* is how many new
    connections are taken per event-loop iteration (:class:`_Listener`); *server_options* go to aiohttp's
    request handler (limits).
    """
    # The listening sockets carry SO_KEEPALIVE, which accepted sockets inherit (see _bind): aiohttp's own
    # per-connection setsockopt would only repeat it, on the path a burst of connections takes.
    server_options.setdefault("tcp_keepalive", False)
    runner: web.BaseRunner
    if isinstance(app, web.Application):
        runner = web.AppRunner(
            app, shutdown_timeout=shutdown_timeout, handle_signals=False, access_log=None, **server_options
        )
        await runner.setup()
        if header_deadline is not None and runner.server is not None:
            # aiohttp builds its Server inside setup() with no hook for the handler class; swap the class
            # of that one instance (same state, one overridden factory method).
            runner.server.__class__ = _HeaderDeadlineServer
            runner.server.header_deadline = header_deadline  # type: ignore[attr-defined]
    else:
        bare: web_server.Server
        if header_deadline is not None:
            bare = _HeaderDeadlineServer(app, access_log=None, **server_options)
            bare.header_deadline = header_deadline
        else:
            bare = web_server.Server(app, access_log=None, **server_options)
        runner = web.ServerRunner(bare, shutdown_timeout=shutdown_timeout, handle_signals=False)
        await runner.setup()
    listener: _Listener | None = None
    try:
        try:
            sockets = await _bind(address, listen_backlog(backlog, component=name))
        except OSError as error:
            raise ListenError(f"cannot listen on {address}: {_reason(error)}") from None
        assert runner.server is not None  # setup() above built it
        listener = _Listener(sockets, runner.server, step=accept_step)
        listener.start()
        urls = [_url(each.getsockname()) for each in sockets]
        log.info("listening", extra=logs.fields(component=name, urls=",".join(urls)))
        if on_started is not None:
            result = on_started(urls)
            if result is not None:
                await result
        stop_event = stop or asyncio.Event()
        signal_received = _install_signal_handlers(stop_event)
        await stop_event.wait()
        log.info(
            "shutting down: refusing new connections, draining requests in flight",
            extra=logs.fields(
                component=name, signal=signal_received.get("name", "none"), timeout_s=shutdown_timeout
            ),
        )
        if before_shutdown is not None:
            await before_shutdown()
    finally:
        if listener is not None:
            listener.close()  # new connections are refused from here on
            await listener.wait_closed()
        await runner.cleanup()
        log.info("stopped", extra=logs.fields(component=name))


def _reason(error: OSError) -> str:
    # The errno's own text, without the address repeated (a name lookup's error has its own text).
    if isinstance(error, socket.gaierror) and error.strerror:
        return error.strerror.lower()
    return (os.strerror(error.errno) if error.errno else str(error)).lower()


async def _bind(address: netaddr.ListenAddress, backlog: int) -> list[socket.socket]:
    """Listening sockets for *address*, bound as ``loop.create_server`` binds them: every address the host
    resolves to (no host: every interface, IPv4 and IPv6, one socket each, IPv6 ones IPv6-only),
    SO_REUSEADDR; a family the host cannot open is skipped, an address that cannot be bound fails.

    SO_KEEPALIVE and TCP_NODELAY are set here, once, instead of on every accepted connection: Linux
    clones an accepted socket from its listener (``sk_clone_lock`` copies the listener's ``struct sock``,
    flags and TCP options included; ``tcp_create_openreq_child`` then arms the keepalive timer when
    SOCK_KEEPOPEN is set), as the BSDs copy ``so_options`` in ``sonewconn``. tests/common checks it.
    """
    infos = await asyncio.get_running_loop().getaddrinfo(
        address.host, address.port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
    )
    sockets: list[socket.socket] = []
    try:
        for family, kind, proto, _, sockaddr in dict.fromkeys(infos):  # duplicates dropped, order kept
            try:
                listener = socket.socket(family, kind, proto)
            except OSError:
                continue  # a family this host has no support for (no IPv6): as create_server does
            sockets.append(listener)
            listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if family == socket.AF_INET6:
                # Linux would otherwise make [::] dual-stack, colliding with the 0.0.0.0 socket.
                listener.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            listener.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
            listener.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            listener.bind(sockaddr)
        for listener in sockets:
            listener.listen(backlog)
            listener.setblocking(False)
    except BaseException:
        for listener in sockets:
            listener.close()
        raise
    if not sockets:
        raise OSError(errno.EAFNOSUPPORT, os.strerror(errno.EAFNOSUPPORT))
    return sockets


class _Listener:
    """Takes new connections from listening sockets at most *step* per event-loop iteration.

    The loop's own server (uvloop's and asyncio's alike) accepts every pending connection when its
    listener is readable and makes each one's protocol in the same iteration: a burst of thousands of
    new connections becomes one iteration of ~100 ms (aiohttp's connection_made, then each first
    request's handler), and requests on connections already open, other models' warm requests, wait it
    out. Here the listener is watched like any socket; each time it is readable, a few connections are
    accepted and handed to the loop (``connect_accepted_socket``), and the rest stay in the kernel's
    accept queue (the listen backlog) until the next iteration, so established connections are served
    between slices.
    """

    def __init__(
        self, sockets: list[socket.socket], factory: Callable[[], asyncio.Protocol], *, step: int
    ) -> None:
        if step < 1:
            raise ValueError("accept_step is at least one connection")
        self._sockets = sockets
        self._factory = factory
        self._step = step
        self._loop = asyncio.get_running_loop()
        #: Hand-overs not finished yet (the loop keeps only weak references to tasks).
        self._handing: set[asyncio.Task[Any]] = set()
        self._retry: asyncio.TimerHandle | None = None
        self._closed = False

    def start(self) -> None:
        for listener in self._sockets:
            self._loop.add_reader(listener.fileno(), self._accept, listener)

    def close(self) -> None:
        """Stop accepting and close the listening sockets: new connections are refused, and those still
        in the accept queue are reset. Connections already accepted keep being handed over."""
        if self._closed:
            return
        self._closed = True
        if self._retry is not None:
            self._retry.cancel()
        for listener in self._sockets:
            self._loop.remove_reader(listener.fileno())
            listener.close()

    async def wait_closed(self) -> None:
        """Until every accepted connection has its protocol (so the server's shutdown sees them all)."""
        while self._handing:
            await asyncio.gather(*self._handing, return_exceptions=True)

    def _accept(self, listener: socket.socket) -> None:
        for _ in range(self._step):
            try:
                connection, _ = listener.accept()
            except (BlockingIOError, InterruptedError, ConnectionAbortedError):
                return  # the queue is empty (or that client gave up first)
            except OSError as error:
                if error.errno not in (errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM):
                    log.warning("accept failed", extra=logs.fields(error=str(error)))
                    return
                # Linux keeps reporting the listener readable: pause instead of spinning (asyncio's way).
                log.error(
                    "accept failed: out of descriptors or memory; accepting again in a second",
                    extra=logs.fields(error=str(error)),
                )
                self._pause()
                return
            connection.setblocking(False)
            task = self._loop.create_task(self._loop.connect_accepted_socket(self._factory, connection))
            self._handing.add(task)
            task.add_done_callback(functools.partial(self._handed, connection))

    def _handed(self, connection: socket.socket, task: asyncio.Task[Any]) -> None:
        self._handing.discard(task)
        if task.cancelled() or task.exception() is not None:
            # Failed before a transport took the socket (uvloop's own failures after that close the
            # transport, which detaches the socket; asyncio's close this same socket object): close it.
            connection.close()

    def _pause(self) -> None:
        for listener in self._sockets:
            self._loop.remove_reader(listener.fileno())
        self._retry = self._loop.call_later(ACCEPT_RETRY_SECONDS, self._resume)

    def _resume(self) -> None:
        self._retry = None
        if not self._closed:
            self.start()


def listen_backlog(requested: int, *, component: str, somaxconn: Path = SOMAXCONN) -> int:
    """*requested*, or the kernel's cap on any listen backlog when that is lower (then logged: the kernel
    silently truncates, so a burst larger than the cap would overflow without a trace). The cap is the
    sysctl ``net.core.somaxconn``, raised with e.g. ``sysctl -w net.core.somaxconn=8192`` (in a pod: the
    namespaced sysctl in its securityContext)."""
    try:
        cap = int(somaxconn.read_text().strip())
    except (OSError, ValueError):
        return requested  # not Linux, or no /proc: the kernel applies whatever cap it has
    if requested <= cap:
        return requested
    log.warning(
        "listen backlog capped by the kernel (net.core.somaxconn)",
        extra=logs.fields(component=component, requested=requested, somaxconn=cap),
    )
    return cap


class _MalformedRequestFilter(logging.Filter):
    """aiohttp logs every unparsable request with a traceback at ERROR; a client (or attacker) sending
    garbage would flood the log. Keep one line per interval, with the count of what was refused."""

    def __init__(self, interval: float = 10.0) -> None:
        super().__init__()
        self._interval = interval
        self._last = 0.0
        self.refused = 0

    def filter(self, record: logging.LogRecord) -> bool:
        error = record.exc_info[1] if record.exc_info else None
        if not isinstance(error, http_exceptions.HttpProcessingError):
            return True
        self.refused += 1
        now = time.monotonic()
        if now - self._last < self._interval:
            return False
        self._last = now
        record.msg, record.args, record.exc_info, record.exc_text = (
            "refused malformed requests",
            (),
            None,
            None,
        )
        record.levelno, record.levelname = logging.WARNING, "WARNING"
        # The reason is the error's message (str() starts with "400, message:" and puts it on the next line).
        reason = str(getattr(error, "message", "") or error).strip().splitlines() or ["unknown"]
        record.fields = {"total": self.refused, "status": error.code, "last_error": reason[0][:200]}
        return True


MALFORMED_REQUESTS = _MalformedRequestFilter()
logging.getLogger("aiohttp.server").addFilter(MALFORMED_REQUESTS)


#: First requests of new connections taken in per event-loop iteration (:class:`Intake`).
INTAKE_STEP = 8


class Intake:
    """Takes the first requests of new connections in a few per event-loop iteration.

    A burst of clients connects, then sends: their requests arrive together, are read in one poll and
    handled in one loop iteration, so a request on a connection already serving (another model's warm
    traffic behind a shared gateway, issue 24) waits for the whole burst. Here the bytes of a connection
    that has not had a request yet are handled at once while this iteration has room (``step``); beyond
    that the connection's reading is paused and its bytes wait, first come first served, for a later
    iteration. Kept-alive connections never wait here. Nothing is refused and no timer changes (the header
    deadline runs from the connection's arrival).
    """

    def __init__(self, step: int = INTAKE_STEP) -> None:
        self._step = step
        self._taken = 0
        self._waiting: collections.deque[tuple[_HeaderDeadlineHandler, bytes]] = collections.deque()
        self._scheduled = False

    @property
    def waiting(self) -> int:
        return len(self._waiting)

    def admit(self, handler: _HeaderDeadlineHandler, data: bytes) -> bool:
        """Whether *handler* may handle *data* now; if not, they are kept for a later iteration."""
        if self._taken < self._step and not self._waiting:
            self._taken += 1
            self._schedule()
            return True
        transport = handler.transport
        if transport is None:
            return True
        if isinstance(transport, asyncio.Transport):
            transport.pause_reading()
        self._waiting.append((handler, data))
        self._schedule()
        return False

    def _schedule(self) -> None:
        if not self._scheduled:
            self._scheduled = True
            asyncio.get_running_loop().call_soon(self._next_iteration)

    def _next_iteration(self) -> None:
        self._scheduled = False
        self._taken = 0
        while self._waiting and self._taken < self._step:
            handler, data = self._waiting.popleft()
            transport = handler.transport
            if transport is None or transport.is_closing():
                continue  # the client left while it waited
            self._taken += 1
            handler.take(data)
            if isinstance(transport, asyncio.Transport) and not transport.is_closing():
                transport.resume_reading()
        if self._waiting or self._taken:
            self._schedule()


class _HeaderDeadlineHandler(web_protocol.RequestHandler):
    """aiohttp's connection handler plus a deadline for receiving a request's head (like Go's
    ReadHeaderTimeout): a client that opens a connection, or starts a request, and then trickles its
    headers gets ``408 Request Timeout`` and is disconnected instead of holding a slot forever. A request
    line or header field over the size limit gets ``431 Request Header Fields Too Large`` (as Go answers a
    head over its limit) instead of aiohttp's generic 400."""

    def __init__(self, *args: Any, header_deadline: float, intake: Intake, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._header_deadline = header_deadline
        self._header_timer: asyncio.TimerHandle | None = None
        self._intake = intake

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        self._arm()

    def data_received(self, data: bytes) -> None:
        if self._request_count == 0 and not self._intake.admit(self, data):
            return  # a new connection's first bytes, beyond this iteration's intake: handled later
        self.take(data)

    def take(self, data: bytes) -> None:
        """Handle received bytes (now, or when the intake lets them in)."""
        requests_before = self._request_count
        super().data_received(data)
        if self._request_count > requests_before:
            if self._header_timer is not None:  # checked here: this runs for every request
                self._disarm()  # a complete request head arrived
        elif data and self._header_timer is None and self._payload_parser is None:
            self._arm()  # the head of a new (pipelined or keep-alive) request has started

    def connection_lost(self, exc: BaseException | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def handle_error(
        self,
        request: web.BaseRequest,
        status: int = 500,
        exc: BaseException | None = None,
        message: str | None = None,
    ) -> web.StreamResponse:
        if isinstance(exc, http_exceptions.LineTooLong):
            status, message = 431, "request header fields too large"
        return super().handle_error(request, status, exc, message)

    def _arm(self) -> None:
        self._disarm()
        self._header_timer = asyncio.get_running_loop().call_later(self._header_deadline, self._expire)

    def _disarm(self) -> None:
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None

    def _expire(self) -> None:
        self._header_timer = None
        if self._current_request is not None or self._messages:
            return  # a request is being served; its response owns the connection
        transport = self.transport
        if transport is not None and not transport.is_closing():
            transport.write(b"HTTP/1.1 408 Request Timeout\r\nConnection: close\r\nContent-Length: 0\r\n\r\n")
            transport.close()


class _HeaderDeadlineServer(web_server.Server):
    """Makes :class:`_HeaderDeadlineHandler` connections (set on a runner's server after setup)."""

    header_deadline: float = 10.0
    #: One per server (made on first use: the class is also swapped onto an existing instance).
    intake: Intake | None = None

    def __call__(self) -> web_protocol.RequestHandler:
        if self.intake is None:
            self.intake = Intake()
        return _HeaderDeadlineHandler(
            self, loop=self._loop, header_deadline=self.header_deadline, intake=self.intake, **self._kwargs
        )


def _install_signal_handlers(stop: asyncio.Event) -> dict[str, str]:
    received: dict[str, str] = {}
    loop = asyncio.get_running_loop()

    def on_signal(signum: signal.Signals) -> None:
        received["name"] = signum.name
        stop.set()

    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, on_signal, signum)
    return received


def _url(bound: object) -> str:
    # getsockname() gives (host, port) for IPv4 and (host, port, flow, scope) for IPv6.
    if isinstance(bound, tuple) and len(bound) >= 2:
        host, port = str(bound[0]), int(bound[1])
        if ":" in host:
            host = f"[{host}]"
        return f"http://{host}:{port}"
    return str(bound)
