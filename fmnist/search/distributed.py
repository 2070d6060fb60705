"""A sweep over many processes: keras-tuner's chief oracle over gRPC, plus a heartbeat.

keras-tuner already splits a search into one oracle (the chief) and workers that ask it for
trials over gRPC (KERASTUNER_TUNER_ID / ORACLE_IP / ORACLE_PORT). Its protocol has no idea
of a worker that dies: the trial it held stays "ongoing" forever and the chief never ends.
So the chief's gRPC server answers one more method, Beat, on the same port. Every worker
calls it every `heartbeat` seconds from a thread of its own (so a long epoch never looks like
death). The reply tells a joining worker the sweep's parent run and config fingerprint, and
every worker whether to go on. A worker silent for `timeout` seconds is dropped and its trial
goes back to the oracle's retry queue, where the next worker that asks picks it up.

Nothing here trusts the network. Every call carries the sweep's shared token ($FMNIST_SWEEP_TOKEN)
and the caller's tuner id and session (one random id per worker process) as gRPC metadata; the
chief refuses a call without the token before any handler runs. A tuner id belongs to the live
process that joined with it; only that process may beat, leave, ask for trials or report and end
the trial it holds under that id. Beats carry the parent run a worker joined, so a chief of
another sweep on the same port tells it to go ("moved").
"""

from __future__ import annotations

import errno
import hmac
import json
import os
import signal
import socket
import threading
import time
import uuid
from concurrent import futures
from typing import Any, Callable, NamedTuple

import grpc
import keras_tuner as kt

from fmnist.config import TOKEN_ENV, DistributedConfig
from fmnist.errors import DistributedError
from fmnist.search import ktapi  # keras-tuner's private API; importing it silences a stray print

BEAT = "/fmnist.Sweep/Beat"
IDLE_PAUSE = 1.0  # seconds a worker with nothing to do waits between asks
LIVE_BEATS = 3  # a process that beat within this many heartbeats is live: its tuner id is not free
TOKEN_KEY, TUNER_KEY, SESSION_KEY = "fmnist-token", "fmnist-tuner-id", "fmnist-session"  # call metadata


def split_address(address: str) -> tuple[str, str]:
    host, _, port = address.rpartition(":")
    return host, port


def worker_env(cfg: DistributedConfig, tuner_id: str) -> None:
    """keras-tuner's own switches: with these set, a tuner proxies its oracle to the chief."""
    host, port = split_address(cfg.address)
    os.environ.update(KERASTUNER_TUNER_ID=tuner_id, KERASTUNER_ORACLE_IP=host, KERASTUNER_ORACLE_PORT=port)


def default_tuner_id() -> str:
    """Unique per process, so two workers never share (and both run) one trial by accident."""
    return f"worker-{socket.gethostname()}-{os.getpid()}"


def sweep_token() -> str:
    """The shared secret, from the environment only: as a setting it would be logged to MLflow
    with the rest of the config, and as a command-line override it shows in every user's `ps`."""
    return os.environ[TOKEN_ENV]


class CallDetails(NamedTuple):
    """grpc.ClientCallDetails as a value an interceptor can copy with other metadata."""

    method: str
    timeout: float | None
    metadata: Any
    credentials: Any
    wait_for_ready: bool | None
    compression: Any


class WithMetadata(grpc.UnaryUnaryClientInterceptor):
    """Adds the token and this worker's identity to every call: keras-tuner's OracleClient makes
    its stub calls itself, with no way to pass metadata, so it is given a channel that does."""

    def __init__(self, metadata: tuple[tuple[str, str], ...]) -> None:
        self.metadata = metadata

    def intercept_unary_unary(self, continuation, details, request):
        ours = CallDetails(details.method, details.timeout, (*(details.metadata or ()), *self.metadata),
                           details.credentials, details.wait_for_ready, details.compression)
        return continuation(ours, request)


def worker_channel(address: str, tuner_id: str, session: str) -> grpc.Channel:
    """The one channel a worker talks to the chief on, heartbeat and keras-tuner's calls alike."""
    metadata = ((TOKEN_KEY, sweep_token()), (TUNER_KEY, tuner_id), (SESSION_KEY, session))
    return grpc.intercept_channel(grpc.insecure_channel(address), WithMetadata(metadata))


class RequireToken(grpc.ServerInterceptor):
    """Refuses (UNAUTHENTICATED) a call without the sweep's token before any handler runs."""

    def __init__(self, token: str) -> None:
        self.token = token.encode()
        self.refusal = grpc.unary_unary_rpc_method_handler(self.refuse)

    def intercept_service(self, continuation, details):
        given = dict(details.invocation_metadata or ()).get(TOKEN_KEY, "")
        return continuation(details) if hmac.compare_digest(given.encode(), self.token) else self.refusal

    @staticmethod
    def refuse(request: bytes, context) -> None:
        context.abort(grpc.StatusCode.UNAUTHENTICATED, f"wrong or missing sweep token (${TOKEN_ENV})")


def check_port(address: str) -> None:
    """Fail in one line if the chief cannot listen at `address` (another chief has the port):
    gRPC's own bind failure first logs a line of its C core and names no cause."""
    host, port = split_address(address)
    try:
        for family, kind, proto, _, where in socket.getaddrinfo(host.strip("[]"), int(port), type=socket.SOCK_STREAM,
                                                               flags=socket.AI_PASSIVE):
            with socket.socket(family, kind, proto) as probe:
                probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as gRPC: a TIME_WAIT is no conflict
                probe.bind(where)
    except OSError as e:
        taken = "; another chief (or another program) has that port" if e.errno == errno.EADDRINUSE else ""
        raise DistributedError(f"cannot listen on {address}: {e.strerror or e}{taken}") from None


def interrupt_on_sigterm() -> None:
    """`kill` (SIGTERM) ends a chief or worker the way Ctrl-C does: through its cleanup."""
    def interrupt(*_):
        raise KeyboardInterrupt
    signal.signal(signal.SIGTERM, interrupt)


def ignore_signals() -> None:
    """While cleaning up after one signal, a second must not cut the cleanup short."""
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, signal.SIG_IGN)


@kt.synchronized
def requeue(oracle: kt.Oracle, tuner_id: str) -> str | None:
    """Forget a worker; its ongoing trial, if any, goes back to the queue. Under the oracle's lock."""
    oracle.tuner_ids.discard(tuner_id)
    trial = oracle.ongoing_trials.pop(tuner_id, None)
    if trial is None:
        return None
    ktapi.requeue(oracle, trial.trial_id)
    oracle.save()
    return trial.trial_id


@kt.synchronized
def hold(oracle: kt.Oracle, tuner_id: str) -> bool:
    """While other trials still run, keep `tuner_id` on the oracle's books (its STOPPED answer
    took it off), so the chief does not end before this worker has heard the real STOPPED."""
    if not oracle.ongoing_trials:
        return False
    oracle.tuner_ids.add(tuner_id)
    return True


@kt.synchronized
def save(oracle: kt.Oracle) -> None:
    oracle.save()


@kt.synchronized
def holder(oracle: kt.Oracle, trial_id: str) -> str | None:
    """The tuner id whose ongoing trial is `trial_id`; None if no worker holds it."""
    return next((tid for tid, trial in oracle.ongoing_trials.items() if trial.trial_id == trial_id), None)


class Servicer(ktapi.OracleServicer):
    """keras-tuner's servicer, printing a line as trials are handed out and come back, and
    serving a trial, its results and its end only to the live process that holds it."""

    def __init__(self, oracle: kt.Oracle, chief: Chief) -> None:
        super().__init__(oracle)
        self.chief = chief

    def CreateTrial(self, request, context):
        with self.chief.lock:  # no reap between the check and the hand-out: a trial never goes to a dropped process
            self.chief.admit(context, request.tuner_id, f"a trial for {request.tuner_id}")
            response = super().CreateTrial(request, context)
        trial = ktapi.Trial.from_proto(response.trial)
        if trial.status == ktapi.TrialStatus.RUNNING:
            print(f"[chief] trial {trial.trial_id} -> {request.tuner_id}", flush=True)
        if trial.status == ktapi.TrialStatus.STOPPED and hold(self.oracle, request.tuner_id):
            # No new trials, but another worker's may yet come back to the queue if that worker
            # dies: keep this one waiting (IDLE: keras-tuner asks again at once, hence the pause).
            time.sleep(IDLE_PAUSE)
            trial.status = ktapi.TrialStatus.IDLE
            return ktapi.protos.get_service().CreateTrialResponse(trial=trial.to_proto())
        return response

    def UpdateTrial(self, request, context):
        with self.chief.lock:
            self.chief.admit(context, holder(self.oracle, request.trial_id), f"results of trial {request.trial_id}")
            return super().UpdateTrial(request, context)

    def EndTrial(self, request, context):
        trial = ktapi.Trial.from_proto(request.trial)
        with self.chief.lock:
            self.chief.admit(context, holder(self.oracle, trial.trial_id), f"the end of trial {trial.trial_id}")
            response = super().EndTrial(request, context)
            save(self.oracle)  # keras-tuner saved before it forgot the ongoing trial: a resume would rerun it
        print(f"[chief] trial {trial.trial_id} ended: {trial.status}", flush=True)
        return response


class Chief:
    """Serves the oracle and the heartbeat until every trial has ended and every live worker
    has been told to stop; drops workers that fall silent."""

    def __init__(self, oracle: kt.Oracle, cfg: DistributedConfig, info: dict[str, str]) -> None:
        self.oracle, self.cfg, self.info = oracle, cfg, info
        self.servicer = Servicer(oracle, self)
        self.seen: dict[str, tuple[str, float]] = {}  # tuner_id -> (session, last beat)
        self.told: set[str] = set()  # sessions that heard "stop" or "evicted"
        self.evicted: set[str] = set()  # sessions whose trial went to another worker
        self.stopping = False
        self.lock = threading.Lock()

    def admit(self, context, tuner_id: str | None, what: str) -> None:
        """Refuse (PERMISSION_DENIED) `what` unless the caller is the live process of `tuner_id`
        (the trial's holder; None: no one holds it). Called with `lock` held."""
        metadata = dict(context.invocation_metadata())
        caller = metadata.get(TUNER_KEY, "?")
        if caller != tuner_id or self.seen.get(caller, ("",))[0] != metadata.get(SESSION_KEY):
            why = f"refused {what} from {caller}: " + (f"only the process that joined as {tuner_id} and beats may"
                                                       if tuner_id else "no worker holds that trial")
            print(f"[chief] {why}", flush=True)
            context.abort(grpc.StatusCode.PERMISSION_DENIED, why)

    def beat(self, request: bytes, context) -> bytes:
        msg = json.loads(request)
        with self.lock:
            state = self.answer(msg["tuner_id"], msg["session"], msg, context)
            if state in ("stop", "evicted"):
                self.told.add(msg["session"])
        return json.dumps({**self.info, "state": state}).encode()

    def answer(self, tid: str, session: str, msg: dict[str, Any], context) -> str:
        """A beat's answer; a beat from a process other than the live one holding `tid` changes nothing."""
        if msg.get("parent_run_id", self.info["parent_run_id"]) != self.info["parent_run_id"]:
            return "moved"  # it joined another sweep, served earlier on this port
        if session in self.evicted:
            return "evicted"
        held = self.seen.get(tid)
        if msg.get("leaving"):
            if held and held[0] == session:
                del self.seen[tid]
                trial = requeue(self.oracle, tid)
                print(f"[chief] {tid} left" + (f"; trial {trial} goes to the next worker" if trial else ""), flush=True)
            return "bye"
        if held and held[0] != session:
            self.take_over(tid, held, context)
        elif not held:
            print(f"[chief] {tid} joined", flush=True)
        self.seen[tid] = (session, time.monotonic())
        return "stop" if self.stopping else "run"

    def take_over(self, tid: str, held: tuple[str, float], context) -> None:
        """A new process for `tid` (a restart) replaces one that has stopped beating, keeping its
        trial; while the old one still beats, the new one is refused (ALREADY_EXISTS)."""
        silent = time.monotonic() - held[1]
        if silent < LIVE_BEATS * self.cfg.heartbeat:
            context.abort(grpc.StatusCode.ALREADY_EXISTS, f"{tid} is taken by a live worker (it beat {silent:.1f} s "
                          f"ago); a restarted one joins once that one has missed {LIVE_BEATS} beats")
        self.evicted.add(held[0])
        print(f"[chief] {tid} joined again (a new process); the old one is dropped", flush=True)

    def reap(self) -> None:
        now = time.monotonic()
        with self.lock:
            silent = {t: s for t, (s, last) in self.seen.items() if now - last > self.cfg.timeout}
            for tid, session in silent.items():
                del self.seen[tid]
                self.evicted.add(session)
                trial = requeue(self.oracle, tid)
                print(f"[chief] {tid} silent for {self.cfg.timeout:g} s"
                      + (f": trial {trial} goes to the next worker" if trial else ""), flush=True)

    def done(self) -> bool:
        o = self.oracle
        return self.servicer.stop_triggered and not (o.ongoing_trials or ktapi.retry_queue(o) or o.tuner_ids)

    def start(self) -> grpc.Server:
        """Listen at `address`, alone: gRPC turns SO_REUSEPORT on by default, and a second chief
        on the port would then start silently and take some of the workers' calls."""
        check_port(self.cfg.address)
        server = grpc.server(futures.ThreadPoolExecutor(max_workers=8), interceptors=[RequireToken(sweep_token())],
                             options=[("grpc.so_reuseport", 0)])
        ktapi.protos.get_service_grpc().add_OracleServicer_to_server(self.servicer, server)
        server.add_generic_rpc_handlers([grpc.method_handlers_generic_handler("fmnist.Sweep", {
            "Beat": grpc.unary_unary_rpc_method_handler(self.beat)})])
        try:
            bound = server.add_insecure_port(self.cfg.address)
        except RuntimeError:  # recent grpcio raises where older ones return 0
            bound = 0
        if not bound:  # another chief bound the port since check_port
            raise DistributedError(f"cannot listen on {self.cfg.address}; another chief has that port")
        server.start()
        print(f"[chief] serving the oracle on {self.cfg.address}", flush=True)
        return server

    def serve(self) -> None:
        """Blocks until the search is over (or KeyboardInterrupt, after telling workers to stop)."""
        server = self.start()
        try:
            while not self.done():
                time.sleep(0.5)
                self.reap()
        except KeyboardInterrupt:
            ignore_signals()
            self.stop_workers()
            raise
        finally:
            server.stop(grace=1)

    def stop_workers(self) -> None:
        """Answer "stop" to heartbeats until every live worker has heard it (or a timeout passes)."""
        self.stopping = True
        deadline = time.monotonic() + self.cfg.timeout
        print("[chief] stopping; telling the workers", flush=True)
        while time.monotonic() < deadline:
            with self.lock:
                now = time.monotonic()
                live = [s for s, last in self.seen.values() if now - last < 3 * self.cfg.heartbeat]
                if all(session in self.told for session in live):
                    return
            time.sleep(0.2)


class Heartbeat(threading.Thread):
    """A worker's line to the chief. `join_chief` waits for the chief to answer; `start` then
    beats in the background and calls `on_end(state)` when the chief says stop, hands this
    worker's trial to someone else ("evicted"), serves another sweep or refuses the token
    ("moved"), or stays silent for `timeout` ("lost"). `channel` carries the token and this
    process's identity: the worker's keras-tuner calls go over it too."""

    def __init__(self, cfg: DistributedConfig, tuner_id: str, on_end: Callable[[str], None]) -> None:
        super().__init__(name="heartbeat", daemon=True)
        self.cfg, self.tuner_id, self.on_end = cfg, tuner_id, on_end
        self.session = uuid.uuid4().hex
        self.channel = worker_channel(cfg.address, tuner_id, self.session)
        self.stub = self.channel.unary_unary(BEAT)
        self.joined: dict[str, str] = {}  # {"parent_run_id": ...} once joined: beats name the sweep

    def call(self, **extra: Any) -> dict[str, str]:
        msg = {"tuner_id": self.tuner_id, "session": self.session, **self.joined, **extra}
        return json.loads(self.stub(json.dumps(msg).encode(), timeout=max(self.cfg.heartbeat, 5.0)))

    def join_chief(self) -> dict[str, str]:
        """The chief's reply (parent run, fingerprint), waiting up to `wait` seconds for it; a
        chief that refuses the token fails the worker at once."""
        deadline, said = time.monotonic() + self.cfg.wait, 0.0
        while True:
            try:
                info = self.call()
                self.joined = {"parent_run_id": info["parent_run_id"]}
                return info
            except grpc.RpcError as e:
                if e.code() == grpc.StatusCode.UNAUTHENTICATED:
                    raise DistributedError(f"the chief at {self.cfg.address} refused this worker's token: "
                                           f"set ${TOKEN_ENV} to the chief's") from None
                if time.monotonic() > deadline:
                    raise DistributedError(f"no chief answered at {self.cfg.address} within "
                                           f"{self.cfg.wait:g} s ({e.code().name})") from None
                why = e.details() if e.code() == grpc.StatusCode.ALREADY_EXISTS else "not up yet"
            if time.monotonic() - said > 30:
                said = time.monotonic()
                print(f"{self.tuner_id}: waiting for the chief at {self.cfg.address} ({why}); "
                      f"retrying every {self.cfg.heartbeat:g} s for up to {self.cfg.wait:g} s", flush=True)
            time.sleep(self.cfg.heartbeat)

    def leave(self) -> None:
        """Tell the chief this worker is going, so its trial goes to another one now."""
        try:
            self.call(leaving=True)
        except grpc.RpcError:
            pass

    def run(self) -> None:
        last_ok = time.monotonic()
        while True:
            time.sleep(self.cfg.heartbeat)
            try:
                state = self.call()["state"]
                last_ok = time.monotonic()
            except grpc.RpcError as e:  # UNAUTHENTICATED: a chief with another token now has the port
                silent = time.monotonic() - last_ok > self.cfg.timeout
                state = "moved" if e.code() == grpc.StatusCode.UNAUTHENTICATED else "lost" if silent else "run"
            if state != "run":
                self.on_end(state)
                return
