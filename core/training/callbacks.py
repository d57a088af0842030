"""What a training process reports while it runs: progress, loss and evaluation events (the heartbeat is core.runs.liveness)."""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable
from typing import Any

from transformers import TrainerCallback

from core import store
from core.runs.records import add_event, cancel_asked, update_run
from core.training.distributed import is_main


class StoreProgress(TrainerCallback):
    """Progress, loss and evaluation to the store; honours runs.cancel_requested (checkpoint, then stop)."""

    def __init__(self, conn: sqlite3.Connection, run_id: str, state: dict[str, Any]) -> None:
        self.conn, self.run_id, self.state = conn, run_id, state
        self.t0 = time.time()
        self.start_step: int | None = None
        self.last_write = 0.0
        self.progress: dict[str, Any] = {}

    def _write(self, st: Any, force: bool = False, **extra: Any) -> None:
        if not is_main():
            return
        now = time.time()
        if self.start_step is None:
            self.start_step = st.global_step
        rate = (st.global_step - self.start_step) / max(now - self.t0, 1e-6)
        left = (st.max_steps - st.global_step) / rate if rate > 0 else None
        self.progress.update(
            {
                "phase": "training",
                "step": st.global_step,
                "total": st.max_steps,
                "epoch": round(float(st.epoch or 0), 3),
                "elapsed_s": round(now - self.state["t0"], 1),
                "eta_s": round(left, 1) if left is not None else None,
                **extra,
            }
        )
        if force or now - self.last_write > 1.0:
            update_run(self.conn, self.run_id, progress=self.progress, heartbeat_at=store.now())
            self.last_write = now

    def on_step_end(self, args: Any, st: Any, control: Any, **kw: Any) -> Any:  # type: ignore[override]  # transformers names each argument; we take **kw
        """Report progress; on a cancel request (or SIGTERM) save a checkpoint and stop."""
        self._write(st)
        cancel = self.state.get("signal") or cancel_asked(self.conn, self.run_id)
        if cancel and not self.state.get("cancelled"):
            self.state["cancelled"] = True
            control.should_save = True
            control.should_training_stop = True
            if is_main():
                add_event(
                    self.conn,
                    self.run_id,
                    "message",
                    {"text": f"Cancel requested: checkpoint at step {st.global_step}, stopping."},
                    st.global_step,
                )
        return control

    def on_log(  # type: ignore[override]  # transformers names each argument; we take **kw
        self, args: Any, st: Any, control: Any, logs: dict[str, Any] | None = None, **kw: Any
    ) -> None:
        """A loss point for the curve."""
        logs = logs or {}
        if "loss" in logs and is_main():
            add_event(
                self.conn,
                self.run_id,
                "loss",
                {"loss": logs["loss"], "epoch": st.epoch, "learning_rate": logs.get("learning_rate")},
                st.global_step,
            )
            self._write(st, force=True, loss=logs["loss"])

    def on_evaluate(  # type: ignore[override]  # transformers names each argument; we take **kw
        self, args: Any, st: Any, control: Any, metrics: dict[str, Any] | None = None, **kw: Any
    ) -> None:
        """A validation point for the curve (timing entries left out)."""
        m = {
            k.removeprefix("eval_"): float(v)
            for k, v in (metrics or {}).items()
            if isinstance(v, (int, float)) and "runtime" not in k and "per_second" not in k
        }
        if is_main():
            add_event(self.conn, self.run_id, "eval", m, st.global_step)
            self._write(st, force=True, eval=m)


class StepReport(TrainerCallback):
    """Each step to `report(step, total)`; training stops when it answers False (a cancel)."""

    def __init__(self, report: Callable[[int, int], bool]) -> None:
        self.report = report

    def on_step_end(self, args: Any, st: Any, control: Any, **kw: Any) -> Any:  # type: ignore[override]  # transformers names each argument; we take **kw
        """Report; stop on a cancel."""
        if not self.report(int(st.global_step), int(st.max_steps)):
            control.should_training_stop = True
        return control
