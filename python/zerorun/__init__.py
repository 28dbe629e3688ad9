"""Live status from Python trainers to zerorun.

Inside a rank that zerorun started (ZERORUN_COORDINATOR and RANK are set), report() sends the
step, loss, throughput and memory to the job's coordinator, where `zerorun status` and the
Prometheus metrics show them, and a background heartbeat keeps the rank from looking stale
while a long step runs. Outside zerorun everything here is a no-op. Callbacks for HF Trainer
(zerorun.hf) and PyTorch Lightning (zerorun.lightning) call it for you.
"""

import atexit
import os
import signal
import threading
import time

__all__ = ["enabled", "report", "stop_requested", "stop_on_sigterm", "agree", "Reporter"]

_HEARTBEAT_S = 5.0


class Reporter:
    """One rank's connection to the coordinator (thread-safe). report() never raises."""

    def __init__(self, coordinator, token, rank, heartbeat_s=_HEARTBEAT_S, ca_pem=None):
        import grpc  # Only inside zerorun: outside it nothing is imported or connected.

        from zerorun.v1 import coordinator_pb2

        self._pb = coordinator_pb2
        if ca_pem:
            # The job's coordinator serves TLS with a certificate of its own CA, for one name.
            self._channel = grpc.secure_channel(
                coordinator, grpc.ssl_channel_credentials(root_certificates=ca_pem.encode()),
                options=[("grpc.ssl_target_name_override", "zerorun-coordinator")])
        else:
            self._channel = grpc.insecure_channel(coordinator)
        self._call = self._channel.unary_unary(
            "/zerorun.v1.Coordinator/Report",
            request_serializer=coordinator_pb2.RankReport.SerializeToString,
            response_deserializer=coordinator_pb2.ReportReply.FromString,
        )
        self._metadata = [("x-zerorun-secret", token)] if token else []
        self._rank = rank
        self._lock = threading.Lock()
        self._stop = False
        self._last = {}
        self.last_error = None
        self._closed = threading.Event()
        if heartbeat_s > 0:
            thread = threading.Thread(target=self._beat, args=(heartbeat_s,), daemon=True)
            thread.start()

    def report(self, step=None, loss=None, tokens_per_second=None, memory_bytes=None,
               phase=None, total_steps=None):
        """Sends what is given (a call without a step is a heartbeat). Returns True when the job
        is being stopped and the rank should exit."""
        request = self._pb.RankReport(rank=self._rank)
        with self._lock:
            # A step report carries every value: those not given are the last ones reported (an
            # HF step end between two logs keeps the logged loss).
            for name, value in (("loss", loss), ("tokens_per_second", tokens_per_second),
                                ("memory_bytes", memory_bytes), ("total_steps", total_steps)):
                if value is not None:
                    self._last[name] = value
            last = dict(self._last)
        if step is not None:
            request.has_step = True
            request.step = int(step)
            request.loss = float(last.get("loss", 0.0))
            request.tokens_per_second = float(last.get("tokens_per_second", 0.0))
            request.memory_bytes = int(last.get("memory_bytes", 0))
        if phase is not None:
            request.phase = str(phase)
        if last.get("total_steps"):
            request.total_steps = int(last["total_steps"])
        try:
            reply = self._call(request, metadata=self._metadata, timeout=3)
        except Exception as error:  # noqa: BLE001 - status must never break training.
            self.last_error = error
            return self._stop
        with self._lock:
            self._stop = self._stop or reply.stop_requested
            return self._stop

    def stop_requested(self):
        with self._lock:
            return self._stop

    def close(self):
        self._closed.set()
        self._channel.close()

    def _beat(self, period):
        while not self._closed.wait(period):
            self.report()


_reporter = None
_reporter_lock = threading.Lock()
_sigterm = threading.Event()  # Set by stop_on_sigterm's handler.


def enabled():
    """True inside a rank started by zerorun."""
    return bool(os.environ.get("ZERORUN_COORDINATOR")) and os.environ.get("RANK", "").isdigit()


def _get():
    global _reporter
    if not enabled():
        return None
    with _reporter_lock:
        if _reporter is None:
            _reporter = Reporter(os.environ["ZERORUN_COORDINATOR"],
                                 os.environ.get("ZERORUN_JOB_SECRET", ""),
                                 int(os.environ["RANK"]),
                                 ca_pem=os.environ.get("ZERORUN_COORDINATOR_CA"))
            atexit.register(_reporter.close)  # Else gRPC waits for the channel at exit.
        return _reporter


def report(step=None, loss=None, tokens_per_second=None, memory_bytes=None, phase=None,
           total_steps=None):
    """Reports this rank's progress to zerorun (total_steps: how many the run will take, for
    zerorun status' progress and ETA); returns True when the job is being stopped. A no-op
    returning False outside zerorun."""
    reporter = _get()
    if reporter is None:
        return False
    if memory_bytes is None:
        memory_bytes = _rss_bytes()
    stop = reporter.report(step, loss, tokens_per_second, memory_bytes, phase, total_steps)
    return stop or _sigterm.is_set()


def stop_requested():
    """True once zerorun asked the job to stop (seen on the last report, or a SIGTERM caught by
    stop_on_sigterm)."""
    reporter = _get()
    return reporter is not None and (reporter.stop_requested() or _sigterm.is_set())


def stop_on_sigterm():
    """Makes SIGTERM (what `zerorun stop`, Ctrl-C at the launcher and a failure elsewhere send)
    a request to stop at the next step instead of the end of the process: report() returns True
    from then on. A second SIGTERM ends the process as before, and zerorun's SIGKILL after its
    grace period still ends a rank that does not stop. Only for loops that act on report()'s
    return (the HF and Lightning callbacks call it at train start). Main thread only (Python's
    rule for signal handlers); returns False, changing nothing, elsewhere and outside zerorun."""
    if not enabled() or threading.current_thread() is not threading.main_thread():
        return False
    if getattr(signal.getsignal(signal.SIGTERM), "_zerorun", False):
        return True

    def handler(signum, frame):
        if _sigterm.is_set():
            signal.signal(signal.SIGTERM, signal.SIG_DFL)
            os.kill(os.getpid(), signal.SIGTERM)
            return
        _sigterm.set()

    handler._zerorun = True
    signal.signal(signal.SIGTERM, handler)
    return True


def agree(stop):
    """True on every rank when `stop` is True on any (a MAX all-reduce over torch.distributed's
    default group, when it is initialized with more than one rank), so that every rank leaves
    the training loop after the same step instead of some waiting forever in the next
    collective. Collective: every rank must call it at the same point. Outside zerorun, or
    without torch.distributed, returns `stop` unchanged."""
    if not enabled():
        return bool(stop)
    try:
        import torch
        import torch.distributed as dist
    except ImportError:
        return bool(stop)
    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() < 2:
        return bool(stop)
    device = "cpu"
    if dist.get_backend() == "nccl":
        device = torch.device("cuda", torch.cuda.current_device())
    flag = torch.tensor([1 if stop else 0], dtype=torch.int32, device=device)
    dist.all_reduce(flag, op=dist.ReduceOp.MAX)
    return bool(flag.item())


def _rss_bytes():
    """This process's resident memory (Linux), or None."""
    try:
        with open("/proc/self/statm") as statm:
            return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return None


class Throughput:
    """Tokens per second between calls: tick(tokens) returns the rate since the last tick."""

    def __init__(self):
        self._last = time.monotonic()

    def tick(self, tokens):
        now = time.monotonic()
        rate = tokens / (now - self._last) if now > self._last else 0.0
        self._last = now
        return rate
