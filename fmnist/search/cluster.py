"""`python -m fmnist.sweep cluster.workers=N ...`: a chief and N workers on this machine.

The same command line, run as `distributed.role=chief` and N times as `role=worker` on a
free loopback port. Workers take the GPUs round robin (CUDA_VISIBLE_DEVICES), several to a GPU
when N is larger, each then with its share of the GPU's memory; and each gets its share of the
CPU threads, so N workers do not fight over the same cores. One small model cannot keep a
GPU busy, several trials at once can: `cluster.workers=auto` (the default) runs
`cluster.per_gpu` workers on each GPU, and none (the sweep in this process) without a GPU.
The launcher prefixes each process's output with its name, starts a worker that dies again
(it resumes its own trial, keeping its tuner id), and on Ctrl-C or SIGTERM stops the chief,
which tells the workers to stop. It hands its chief and workers the sweep's shared token in
$FMNIST_SWEEP_TOKEN (environment, not argv, which every local user can read): the one already
set, so that workers elsewhere can join, or a new random one. A launcher killed outright (SIGKILL) takes its children
with it: each gets SIGHUP from the kernel and ends as on Ctrl-C, its runs KILLED.
"""

from __future__ import annotations

import ctypes
import os
import secrets
import signal
import socket
import subprocess
import sys
import threading
import time

import keras
from threadpoolctl import threadpool_limits

from fmnist.config import TOKEN_ENV, Config
from fmnist.errors import EXIT_USAGE
from fmnist.search.distributed import ignore_signals, interrupt_on_sigterm
from fmnist.training.tracking import use_store


def limit_threads(threads: int | None) -> None:
    """This process's share of the CPU: the backend's op thread pools and OpenMP / BLAS pools."""
    if not threads:
        return
    threadpool_limits(threads)
    if keras.backend.backend() == "tensorflow":
        import tensorflow as tf

        tf.config.threading.set_intra_op_parallelism_threads(threads)
        tf.config.threading.set_inter_op_parallelism_threads(min(threads, 2))


def gpu_ids() -> list[str]:
    """GPUs this process may hand out: $CUDA_VISIBLE_DEVICES if set, else those nvidia-smi lists."""
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible is not None:
        return [g.strip() for g in visible.split(",") if g.strip() not in ("", "-1")]
    try:
        out = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True, timeout=30).stdout
    except (OSError, subprocess.TimeoutExpired):
        return []
    return [str(i) for i, line in enumerate(out.splitlines()) if line.startswith("GPU ")]


def worker_count(cfg: Config) -> int:
    """`cluster.workers`, with auto resolved: per_gpu on each GPU, 0 without one. A chief or
    worker process (`distributed.role`) starts no cluster of its own."""
    if cfg.distributed.role != "none":
        return 0
    return cfg.cluster.per_gpu * len(gpu_ids()) if cfg.cluster.workers == "auto" else cfg.cluster.workers


def share(i: int, n: int, gpus: list[str]) -> tuple[dict[str, str], list[str]]:
    """Worker i's environment and overrides: its GPU (shared round robin, memory split between
    the workers on it; JAX would otherwise take 75% of it at start and TensorFlow all of it)
    and 1/n of the CPU threads."""
    threads = max(1, len(os.sched_getaffinity(0)) // n)
    cpu = {"OMP_NUM_THREADS": str(threads)}, [f"distributed.threads={threads}"]
    if not gpus:
        return {"CUDA_VISIBLE_DEVICES": "", **cpu[0]}, cpu[1]
    sharing = len(range(i % len(gpus), n, len(gpus)))  # workers on this one's GPU
    memory = {"XLA_PYTHON_CLIENT_PREALLOCATE": "false", "XLA_PYTHON_CLIENT_MEM_FRACTION": f"{0.9 / sharing:.2f}",
              "TF_FORCE_GPU_ALLOW_GROWTH": "true"}
    return {"CUDA_VISIBLE_DEVICES": gpus[i % len(gpus)], **memory, **cpu[0]}, cpu[1]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


LAUNCHER_PID = "FMNIST_LAUNCHER_PID"
PR_SET_PDEATHSIG = 1  # linux/prctl.h


def follow_launcher() -> None:
    """In a chief or worker the launcher started: SIGHUP when the launcher dies, however it
    dies, ending this process as Ctrl-C would, so a `kill -9` on the launcher leaves no sweep
    running unseen. Linux only (prctl); elsewhere a vanished chief still ends its workers
    after distributed.timeout."""
    launcher = os.environ.get(LAUNCHER_PID)
    if not launcher or not sys.platform.startswith("linux"):
        return
    signal.signal(signal.SIGHUP, orphaned)
    # The kernel signals again each time it re-parents us (first to the launcher's other threads).
    ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGHUP, 0, 0, 0)
    if os.getppid() != int(launcher):  # it died before prctl took effect
        os.kill(os.getpid(), signal.SIGHUP)


def orphaned(*_) -> None:
    """The launcher died, and with it the pipe our output went to: a print would now raise
    and cut the cleanup short, so the output goes nowhere while the runs are ended."""
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    quiet = os.open(os.devnull, os.O_WRONLY)
    for stream in (sys.stdout, sys.stderr):
        os.dup2(quiet, stream.fileno())
    raise KeyboardInterrupt


class Child:
    """One process of the cluster, its output relayed line by line behind its name."""

    def __init__(self, name: str, argv: list[str], env: dict[str, str]) -> None:
        self.name, self.argv = name, argv
        self.env = {**os.environ, "PYTHONUNBUFFERED": "1", LAUNCHER_PID: str(os.getpid()), **env}
        self.start()

    def start(self) -> None:
        # A session of its own: Ctrl-C reaches the launcher only, which stops the chief first.
        self.proc = subprocess.Popen(self.argv, env=self.env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                     text=True, start_new_session=True)
        threading.Thread(target=self._relay, args=(self.proc,), daemon=True).start()

    def _relay(self, proc: subprocess.Popen) -> None:
        for line in proc.stdout:
            print(f"{self.name:>9} | {line}", end="", flush=True)

    def alive(self) -> bool:
        return self.proc.poll() is None


def supervise(chief: Child, workers: list[Child], restarts: int) -> None:
    """Until the chief exits, start again a worker that died (not one that finished: exit 0,
    nor one with a usage error: exit 2), `restarts` times in all."""
    while chief.alive():
        time.sleep(1)
        for w in workers:
            rc = w.proc.poll()
            if rc not in (None, 0, EXIT_USAGE) and restarts > 0:
                restarts -= 1
                print(f"cluster: {w.name} exited ({rc}); starting it again", flush=True)
                w.start()


def wind_down(chief: Child, workers: list[Child], grace: float) -> None:
    """Stop the chief (it tells the workers), then give the workers `grace` seconds to go."""
    if chief.alive():
        chief.proc.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + grace
    for child in (chief, *workers):
        try:
            child.proc.wait(max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            print(f"cluster: {child.name} did not stop; terminating it", flush=True)
            child.proc.terminate()
            child.proc.wait()


def launch(cfg: Config, argv: list[str]) -> int:
    """Run `argv` (this command's overrides) as a chief and `cluster.workers` workers here;
    returns the chief's exit status."""
    n, gpus = worker_count(cfg), gpu_ids()
    address = f"127.0.0.1:{cfg.cluster.port or free_port()}"
    ours = ("cluster.", "distributed.address=", "distributed.tuner_id=", "distributed.threads=")
    base = [sys.executable, "-m", "fmnist.sweep", *(a for a in argv if not a.startswith(ours)),
            f"distributed.address={address}"]
    interrupt_on_sigterm()
    use_store(cfg.mlflow)  # one process creates a new store's tables: the chief and workers at once collide
    where = f"on GPU {', '.join(share(i, n, gpus)[0]['CUDA_VISIBLE_DEVICES'] for i in range(n))}, " if gpus else ""
    print(f"cluster: chief at {address}, {n} worker(s), each {where}with {share(0, n, gpus)[1][0].split('=')[1]} "
          "CPU thread(s)", flush=True)
    token = {TOKEN_ENV: os.environ.get(TOKEN_ENV) or secrets.token_urlsafe()}
    chief = Child("chief", [*base, "distributed.role=chief"], token)
    workers = []
    for i in range(n):
        env, overrides = share(i, n, gpus)
        workers.append(Child(f"worker-{i}", [*base, "distributed.role=worker", f"distributed.tuner_id=worker-{i}",
                                             *overrides], {**env, **token}))
    try:
        supervise(chief, workers, cfg.cluster.restarts)
    except KeyboardInterrupt:
        ignore_signals()
        print("cluster: interrupted; stopping the chief and its workers", flush=True)
    wind_down(chief, workers, cfg.distributed.timeout + 10)
    return chief.proc.returncode
