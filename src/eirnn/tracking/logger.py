"""Per-epoch MLflow logging as a training callback, sent from a background thread.

One `log_metric` call costs ~10 ms on the default SQLite store, which is 5% of a 0.2 s epoch by
itself; metrics are buffered and sent with `log_batch` every few seconds instead. Sending
happens off the training thread, so a tracking server that stops answering (a restart, a
network hiccup) never stalls training: what could not be sent stays queued, in order, and is
retried until the server answers again. `close()` waits for the queue to drain.
"""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Mapping
from pathlib import Path

from mlflow.entities import Metric
from mlflow.tracking import MlflowClient

from eirnn.logged_names import EPOCH_METRICS
from eirnn.training import BEST_WEIGHTS_FILE, RESUME_FILE, periodic_checkpoint_name

BATCH_LIMIT = 1000  # MLflow's maximum number of metrics in one log_batch call
RETRY_INTERVAL_S = 2.0


class TrackingUnavailableError(RuntimeError):
    """The tracking server did not take the queued metrics within the allowed time."""


class EpochMetricLogger:
    """Queues per-epoch metrics (step = epoch, names from `metric_names.EPOCH_METRICS`) and
    checkpoint uploads; a background thread sends them in order, retrying what fails.

    `logged_steps`: logged metric name -> last step already in the run. A resumed run replays the epochs
    after its checkpoint exactly, and those already logged before the kill are not logged twice.
    """

    def __init__(
        self,
        run_id: str,
        client: MlflowClient | None = None,
        flush_every_s: float = 5.0,
        logged_steps: Mapping[str, int] | None = None,
        checkpoint_artifact_dir: str = "checkpoints",
        retry_interval_s: float = RETRY_INTERVAL_S,
    ) -> None:
        self.run_id = run_id
        self.client = client or MlflowClient()
        self.flush_every_s = flush_every_s
        self.logged_steps = dict(logged_steps or {})
        self.checkpoint_artifact_dir = checkpoint_artifact_dir
        self.retry_interval_s = retry_interval_s
        self._queue: list[Metric | Path] = []  # metrics and checkpoint files, in the order they happened
        self._wake = threading.Condition()
        self._flush_requested = False
        self._closing = False
        self.failures = 0
        self.last_error: str | None = None
        self._sender = threading.Thread(target=self._send_loop, name="eirnn-mlflow-logger", daemon=True)
        self._sender.start()

    # ------------------------------------------------------------------ training callbacks
    def on_epoch_end(self, epoch: int, metrics: dict[str, float]) -> None:
        timestamp = int(time.time() * 1000)
        new = [
            Metric(name, float(metrics[key]), timestamp, epoch)
            for key, name in EPOCH_METRICS.items()
            if key in metrics and epoch > self.logged_steps.get(name, -1)
        ]
        with self._wake:
            self._queue.extend(new)

    def on_checkpoint(self, checkpoint_dir: Path, epoch: int) -> None:
        # queued after the metrics of the epochs it covers: a run resumed from it finds them
        with self._wake:
            for name in (RESUME_FILE, periodic_checkpoint_name(epoch), BEST_WEIGHTS_FILE):
                if (checkpoint_dir / name).exists():
                    self._queue.append(checkpoint_dir / name)
            self._flush_requested = True
            self._wake.notify()

    def log_history(self, history: list[dict[str, float]]) -> None:
        """Queue the epochs of a checkpoint's history that the run does not have yet (a kill
        can land after a checkpoint was uploaded but before its metrics were)."""
        for entry in history:
            self.on_epoch_end(int(entry["epoch"]), entry)

    # ------------------------------------------------------------------ sending
    def flush(self, timeout_s: float | None = None) -> None:
        """Wait until everything queued so far is in the run; TrackingUnavailableError after
        `timeout_s` (None: wait as long as it takes)."""
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        with self._wake:
            self._flush_requested = True
            self._wake.notify()
            while self._queue:
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    raise TrackingUnavailableError(
                        f"tracking server: {len(self._queue)} metrics and checkpoints still unsent after "
                        f"{timeout_s:g} s; last error: {self.last_error}"
                    )
                self._wake.wait(timeout=min(1.0, remaining) if remaining is not None else 1.0)

    def close(self, timeout_s: float | None = None) -> None:
        self.flush(timeout_s)
        with self._wake:
            self._closing = True
            self._wake.notify()
        self._sender.join(timeout=10)

    def _send_loop(self) -> None:
        last_sent = time.monotonic()
        while True:
            with self._wake:
                while not self._closing and not (
                    self._queue and (self._flush_requested or time.monotonic() - last_sent >= self.flush_every_s)
                ):
                    self._wake.wait(timeout=max(0.05, self.flush_every_s - (time.monotonic() - last_sent)))
                if self._closing and not self._queue:
                    return
                head = self._next_item()
            try:
                self._send(head)
            except Exception as error:  # any failure of the store: keep the items, retry later
                self._note_failure(error)
                time.sleep(self.retry_interval_s)
                continue
            with self._wake:
                del self._queue[: len(head) if isinstance(head, list) else 1]
                if not self._queue:
                    self._flush_requested = False
                last_sent = time.monotonic()
                self._wake.notify_all()
            if self.failures:
                print(f"eirnn: tracking server answers again; queued metrics sent ({self.run_id})", file=sys.stderr)
                self.failures = 0

    def _next_item(self) -> list[Metric] | Path:
        """The leading run of metrics (one batch) or the leading checkpoint file."""
        if isinstance(self._queue[0], Path):
            return self._queue[0]
        batch = []
        for item in self._queue[:BATCH_LIMIT]:
            if isinstance(item, Path):
                break
            batch.append(item)
        return batch

    def _send(self, head: list[Metric] | Path) -> None:
        if isinstance(head, Path):
            self.client.log_artifact(self.run_id, str(head), self.checkpoint_artifact_dir)
        else:
            self.client.log_batch(self.run_id, metrics=head)

    def _note_failure(self, error: Exception) -> None:
        self.failures += 1
        self.last_error = f"{type(error).__name__}: {str(error).strip().splitlines()[0] if str(error) else ''}"
        if self.failures == 1:
            print(
                f"eirnn: tracking server did not answer ({self.last_error}); training goes on, metrics are "
                "queued and retried",
                file=sys.stderr,
            )
