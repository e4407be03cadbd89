"""The supervisor: owns pods, restarts the ones that crash, and escalates when it must.

``open_supervisor`` is an async context manager. Each pod is described by a typed child
spec (:class:`PodSpec`: the manifest, how it starts, its restart policy, its shutdown
deadline; OTP's child spec is the model) and runs under a supervision task in the
supervisor's nursery (one_for_one): when a pod raises, it is restarted from its last
persisted head according to its restart policy (``permanent`` always, ``transient`` after
a crash, ``temporary`` never), with an ``alert`` event to its subscribers, whose handles
and subscriptions outlive the restart. More than ``max_restarts``
restarts within ``within`` seconds escalate: ``open_supervisor`` raises one
:class:`~podactors.errors.SupervisorEscalated`. Leaving the block shuts pods down in
reverse start order, each given ``shutdown_timeout`` seconds to persist its state.
"""

from __future__ import annotations

import functools
import os
from collections import deque
from collections.abc import AsyncIterator, Collection, Iterable
from contextlib import asynccontextmanager
from typing import Literal

import attrs
import trio

from podactors import protocol as proto
from podactors.agent.hooks import Hooks
from podactors.compaction.summariser import ProviderFactory
from podactors.errors import PodactorsError, SessionNotFound, SupervisorEscalated, single_error
from podactors.fanout import Fanout
from podactors.handle import PodHandle
from podactors.llm import create_provider
from podactors.llm.provider import Provider
from podactors.manifest import Manifest, RestartPolicy
from podactors.runtime.pod import Pod
from podactors.server import WebsocketServer, serve_websocket
from podactors.store import FsStore, Store
from podactors.tools import Tool

Strategy = Literal["one_for_one"]
TOKEN_FILE = "websocket.token"
"""Where ``serve_websocket`` writes a generated token, under the store root."""


@attrs.frozen
class PodSpec:
    """How the supervisor starts a pod and what it does when the pod stops.

    ``start`` is ``new`` (a fresh session at the first turn) or ``restore`` (the session
    its pod ref names). ``restart`` defaults to the manifest's ``pod.restart`` and
    ``shutdown_timeout`` to the supervisor's. ``provider``, ``tools`` and ``hooks`` are
    given to every incarnation as they are (a pod never changes them).
    """

    manifest: Manifest
    start: Literal["new", "restore"] = "new"
    restart: RestartPolicy | None = None
    shutdown_timeout: float | None = None
    provider: Provider | None = None
    tools: tuple[Tool, ...] = ()
    hooks: Hooks | None = None

    @property
    def name(self) -> str:
        """The pod's name."""
        return self.manifest.pod.name

    @property
    def restart_policy(self) -> RestartPolicy:
        """The restart policy in force."""
        return self.restart or self.manifest.pod.restart


@attrs.define
class _Child:
    """One supervised pod: its spec, and where it runs now."""

    spec: PodSpec
    fanout: Fanout
    scope: trio.CancelScope = attrs.field(factory=trio.CancelScope)
    stopped: trio.Event = attrs.field(factory=trio.Event)
    handle: PodHandle | None = None
    stopping: bool = False


class Supervisor:
    """Owns pods in a nursery; obtain one with :func:`open_supervisor`."""

    def __init__(
        self,
        store: Store,
        nursery: trio.Nursery,
        *,
        max_restarts: int,
        within: float,
        shutdown_timeout: float,
        providers: ProviderFactory = create_provider,
    ):
        self.store = store
        self.max_restarts = max_restarts
        self.within = within
        self.shutdown_timeout = shutdown_timeout
        self.providers = providers
        self._nursery = nursery
        self._children: dict[str, _Child] = {}
        self._restarts: deque[float] = deque()

    # --- pods -----------------------------------------------------------------------

    async def spawn(
        self,
        manifest: Manifest,
        *,
        provider: Provider | None = None,
        tools: Iterable[Tool] = (),
        hooks: Hooks | None = None,
    ) -> PodHandle:
        """Start a pod for ``manifest``; its name must not be taken by a live pod."""
        return await self.start(
            PodSpec(manifest, provider=provider, tools=tuple(tools), hooks=hooks)
        )

    async def restore(self, name: str, manifest: Manifest | None = None) -> PodHandle:
        """Start the pod ``name`` again on the session its pod ref records.

        Without ``manifest``, the manifest file the pod was spawned from is read again.
        """
        ref = await self.store.get_pod_ref(name)
        if ref is None:
            raise SessionNotFound(f"pod:{name}")
        if manifest is None:
            if ref.manifest is None:
                raise PodactorsError(f"pod {name} was spawned without a manifest file: pass one")
            manifest = Manifest.from_file(ref.manifest)
        return await self.start(PodSpec(manifest, start="restore"))

    async def start(self, spec: PodSpec) -> PodHandle:
        """Start the pod ``spec`` describes and supervise it; returns its handle."""
        name = spec.name
        if name in self._children:
            raise PodactorsError(f"a pod named {name!r} is already running")
        child = _Child(spec, Fanout(lambda: _stopped_snapshot(name)))
        self._children[name] = child
        try:
            handle: PodHandle = await self._nursery.start(self._supervise, child)
        except BaseException:
            self._children.pop(name, None)
            raise
        return handle

    def get(self, name: str) -> PodHandle:
        """The live pod ``name``; raises ``KeyError`` if there is none."""
        child = self._children[name]
        assert child.handle is not None
        return child.handle

    def lookup(self, name: str) -> PodHandle | None:
        """The live pod ``name`` or ``None``."""
        child = self._children.get(name)
        return None if child is None else child.handle

    def pods(self) -> list[PodHandle]:
        """Live pods in start order."""
        return [c.handle for c in self._children.values() if c.handle is not None]

    # --- supervision ------------------------------------------------------------------

    async def _supervise(self, child: _Child, *, task_status: trio.TaskStatus[PodHandle]) -> None:
        name = child.spec.name
        restore = child.spec.start == "restore"
        try:
            with child.scope:
                restarted_after: str | None = None
                while True:
                    crash = await self._run_once(child, restore, task_status, restarted_after)
                    task_status = trio.TASK_STATUS_IGNORED
                    if not self._should_restart(child, crash):
                        return
                    restarted_after = self._count_restart(name, crash)
                    restore = True
        finally:
            self._children.pop(name, None)
            child.fanout.close()
            child.stopped.set()

    async def _run_once(
        self,
        child: _Child,
        restore: bool,
        task_status: trio.TaskStatus[PodHandle],
        restarted_after: str | None,
    ) -> BaseException | None:
        """Run one incarnation of the pod; returns what crashed it, if anything."""
        pod = await self._build(child, restore)
        try:
            async with trio.open_nursery() as nursery:
                handle: PodHandle = await nursery.start(pod.run)
                if child.handle is None:
                    child.handle = handle
                else:
                    child.handle.rebind(handle)
                task_status.started(child.handle)
                if restarted_after is not None:
                    pod.alert(
                        "warn", "supervisor", f"pod {pod.name} restarted after {restarted_after}"
                    )
        except Exception as exc:
            return single_error(exc)
        return None

    async def _build(self, child: _Child, restore: bool) -> Pod:
        spec = child.spec
        pod = Pod(
            spec.manifest,
            self.store,
            provider=spec.provider,
            tools=spec.tools,
            hooks=spec.hooks,
            fanout=child.fanout,
            providers=self.providers,
        )
        if restore:
            ref = await self.store.get_pod_ref(pod.name)
            if ref is not None:
                pod.adopt(await self.store.restore(ref.session_id))
        return pod

    def _should_restart(self, child: _Child, crash: BaseException | None) -> bool:
        if child.stopping:
            return False
        policy = child.spec.restart_policy
        return policy == "permanent" or (policy == "transient" and crash is not None)

    def _count_restart(self, name: str, crash: BaseException | None) -> str:
        """Record a restart; escalate past the intensity. Returns the reason."""
        now = trio.current_time()
        self._restarts.append(now)
        while self._restarts and self._restarts[0] < now - self.within:
            self._restarts.popleft()
        reason = "stopped" if crash is None else f"{type(crash).__name__}: {crash}"
        if len(self._restarts) > self.max_restarts:
            raise SupervisorEscalated(name, len(self._restarts), self.within, reason)
        return reason

    # --- serving ----------------------------------------------------------------------

    async def serve_websocket(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        token: str | None = None,
        allowed_origins: Collection[str] | None = None,
    ) -> WebsocketServer:
        """Serve this supervisor's pods over websocket until the supervisor closes.

        Without ``token`` one is generated and written to ``<store>/websocket.token``
        (mode 0600). Returns the server's ``url`` and ``token``.
        """
        server: WebsocketServer = await self._nursery.start(
            functools.partial(
                serve_websocket,
                self.lookup,
                host=host,
                port=port,
                token=token,
                token_file=self.store.root / TOKEN_FILE,
                allowed_origins=allowed_origins,
            )
        )
        return server

    # --- shutdown ---------------------------------------------------------------------

    async def aclose(self) -> None:
        """Shut every pod down, last started first, each within ``shutdown_timeout``."""
        for child in reversed(list(self._children.values())):
            await self._stop(child)

    async def _stop(self, child: _Child) -> None:
        """Ask the pod to shut down; cancel it if it cannot hear or takes too long.

        Either way its running turn is cancelled and persisted as interrupted.
        """
        child.stopping = True
        timeout = child.spec.shutdown_timeout
        with trio.move_on_after(self.shutdown_timeout if timeout is None else timeout):
            try:
                if child.handle is not None:
                    await child.handle.shutdown()
            except PodactorsError:  # between incarnations: nobody to ask
                child.scope.cancel()
            await child.stopped.wait()
            return
        child.scope.cancel()


def _stopped_snapshot(name: str) -> proto.Snapshot:
    return proto.Snapshot(
        pod=name, status="stopped", session_id=None, turn_count=0, history=[], last_seq=0
    )


@asynccontextmanager
async def open_supervisor(
    store: Store | str | os.PathLike[str] = "./.podactors",
    *,
    strategy: Strategy = "one_for_one",
    max_restarts: int = 3,
    within: float = 5.0,
    shutdown_timeout: float = 10.0,
    providers: ProviderFactory = create_provider,
) -> AsyncIterator[Supervisor]:
    """A supervisor for the block; pods are shut down gracefully when it ends.

    Raises :class:`~podactors.errors.SupervisorEscalated` (alone, never inside an
    exception group) when a pod restarted too often. ``providers`` builds each pod's
    providers from its model tables (the seam to put a stand-in or a recorder in place
    of a real model).
    """
    if strategy != "one_for_one":
        raise ValueError(f"unknown strategy {strategy!r}: only 'one_for_one' is supported")
    fs_store = FsStore(store) if isinstance(store, str | os.PathLike) else store
    try:
        async with trio.open_nursery() as nursery:
            supervisor = Supervisor(
                fs_store,
                nursery,
                max_restarts=max_restarts,
                within=within,
                shutdown_timeout=shutdown_timeout,
                providers=providers,
            )
            try:
                yield supervisor
            finally:
                with trio.CancelScope(shield=True):
                    await supervisor.aclose()
                nursery.cancel_scope.cancel()  # servers and whatever else remains
    except BaseExceptionGroup as group:
        escalated = group.subgroup(SupervisorEscalated)
        if escalated is not None:
            raise single_error(escalated) from None
        if group.subgroup(lambda leaf: not isinstance(leaf, Exception)) is not None:
            raise  # cancellation or an interrupt: not ours to flatten
        raise single_error(group) from None  # one error; the others are its notes
