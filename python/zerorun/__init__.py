"""Live status from Python trainers to zerorun.

Inside a rank that zerorun started (ZERORUN_COORDINATOR and RANK are set), report() sends the
step, loss, throughput and memory to the job's coordinator, where `zerorun status` and the
Prometheus metrics show them, and a background heartbeat keeps the rank from looking stale
while a long step runs. Outside zerorun everything here is a no-op. Callbacks for HF Trainer
(zerorun.hf) and PyTorch Lightning (zerorun.lightning) call it for you.
"""

import os
import threading
import time

__all__ = ["enabled", "report", "stop_requested", "Reporter"]

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
    return reporter.report(step, loss, tokens_per_second, memory_bytes, phase, total_steps)


def stop_requested():
    """True once zerorun asked the job to stop (seen on the last report)."""
    reporter = _get()
    return reporter is not None and reporter.stop_requested()


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
