"""A sweep over many processes: keras-tuner's chief oracle over gRPC, plus a heartbeat.

keras-tuner already splits a search into one oracle (the chief) and workers that ask it for
trials over gRPC (KERASTUNER_TUNER_ID / ORACLE_IP / ORACLE_PORT). Its protocol has no idea
of a worker that dies: the trial it held stays "ongoing" forever and the chief never ends.
So the chief's gRPC server answers one more method, Beat, on the same port. Every worker
calls it every `heartbeat` seconds from a thread of its own (so a long epoch never looks like
death). The reply tells a joining worker the sweep's parent run and config fingerprint, and
every worker whether to go on. A worker silent for `timeout` seconds is dropped and its trial
goes back to the oracle's retry queue, where the next worker that asks picks it up.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import threading
import time
import uuid
from concurrent import futures
from typing import Any, Callable

import grpc
import keras_tuner as kt

from fmnist.config import DistributedConfig
from fmnist.errors import DistributedError
from fmnist.search import ktapi  # keras-tuner's private API; importing it silences a stray print

BEAT = "/fmnist.Sweep/Beat"
IDLE_PAUSE = 1.0  # seconds a worker with nothing to do waits between asks


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


class Servicer(ktapi.OracleServicer):
    """keras-tuner's servicer, printing a line as trials are handed out and come back."""

    def CreateTrial(self, request, context):
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

    def EndTrial(self, request, context):
        trial = ktapi.Trial.from_proto(request.trial)
        print(f"[chief] trial {trial.trial_id} ended: {trial.status}", flush=True)
        response = super().EndTrial(request, context)
        save(self.oracle)  # keras-tuner saved before it forgot the ongoing trial: a resume would rerun it
        return response


class Chief:
    """Serves the oracle and the heartbeat until every trial has ended and every live worker
    has been told to stop; drops workers that fall silent."""

    def __init__(self, oracle: kt.Oracle, cfg: DistributedConfig, info: dict[str, str]) -> None:
        self.oracle, self.cfg, self.info = oracle, cfg, info
        self.servicer = Servicer(oracle)
        self.seen: dict[str, tuple[str, float]] = {}  # tuner_id -> (session, last beat)
        self.told: set[str] = set()  # sessions that heard "stop" or "evicted"
        self.evicted: set[str] = set()  # sessions whose trial went to another worker
        self.stopping = False
        self.lock = threading.Lock()

    def beat(self, request: bytes, context) -> bytes:
        msg = json.loads(request)
        tid, session = msg["tuner_id"], msg["session"]
        with self.lock:
            if session in self.evicted:
                state = "evicted"
            elif msg.get("leaving"):
                self.seen.pop(tid, None)
                state = "bye"
                trial = requeue(self.oracle, tid)
                print(f"[chief] {tid} left" + (f"; trial {trial} goes to the next worker" if trial else ""), flush=True)
            else:
                if tid not in self.seen:
                    print(f"[chief] {tid} joined", flush=True)
                self.seen[tid] = (session, time.monotonic())
                state = "stop" if self.stopping else "run"
            if state in ("stop", "evicted"):
                self.told.add(session)
        return json.dumps({**self.info, "state": state}).encode()

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

    def serve(self) -> None:
        """Blocks until the search is over (or KeyboardInterrupt, after telling workers to stop)."""
        server = grpc.server(futures.ThreadPoolExecutor(max_workers=8))
        ktapi.protos.get_service_grpc().add_OracleServicer_to_server(self.servicer, server)
        server.add_generic_rpc_handlers([grpc.method_handlers_generic_handler("fmnist.Sweep", {
            "Beat": grpc.unary_unary_rpc_method_handler(self.beat)})])
        if not server.add_insecure_port(self.cfg.address):
            raise DistributedError(f"cannot listen on {self.cfg.address}")
        server.start()
        print(f"[chief] serving the oracle on {self.cfg.address}", flush=True)
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
    worker's trial to someone else ("evicted"), or stays silent for `timeout` ("lost")."""

    def __init__(self, cfg: DistributedConfig, tuner_id: str, on_end: Callable[[str], None]) -> None:
        super().__init__(name="heartbeat", daemon=True)
        self.cfg, self.tuner_id, self.on_end = cfg, tuner_id, on_end
        self.session = uuid.uuid4().hex
        self.stub = grpc.insecure_channel(cfg.address).unary_unary(BEAT)

    def call(self, **extra: Any) -> dict[str, str]:
        msg = {"tuner_id": self.tuner_id, "session": self.session, **extra}
        return json.loads(self.stub(json.dumps(msg).encode(), timeout=max(self.cfg.heartbeat, 5.0)))

    def join_chief(self) -> dict[str, str]:
        """The chief's reply (parent run, fingerprint), waiting up to `wait` seconds for it."""
        deadline, said = time.monotonic() + self.cfg.wait, 0.0
        while True:
            try:
                return self.call()
            except grpc.RpcError as e:
                if time.monotonic() > deadline:
                    raise DistributedError(f"no chief answered at {self.cfg.address} within "
                                           f"{self.cfg.wait:g} s ({e.code().name})") from None
            if time.monotonic() - said > 30:
                said = time.monotonic()
                print(f"{self.tuner_id}: waiting for the chief at {self.cfg.address} (not up yet); "
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
            except grpc.RpcError:
                state = "lost" if time.monotonic() - last_ok > self.cfg.timeout else "run"
            if state != "run":
                self.on_end(state)
                return
