"""A rich progress bar for training: ETA, updates per second, the latest loss and evaluation return."""

from __future__ import annotations

import time
from typing import Any

import numpy as np
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn


class TrainProgressBar:
    """Use as a context manager; pass ``update`` as the training logger. With ``pretrain_steps`` (e.g. BRAC's
    behavior policy) a first bar counts the pretraining phase."""

    def __init__(self, total_steps: int, pretrain_steps: int = 0):
        self.total = total_steps
        self.progress = Progress(
            TextColumn("[bold]{task.fields[phase]}"),
            BarColumn(),
            TextColumn("{task.completed}/{task.total}"),
            TimeElapsedColumn(),
            TimeRemainingColumn(),
            TextColumn("{task.fields[info]}"),
        )
        self.pretrain_task = (
            self.progress.add_task("pretrain", total=pretrain_steps, phase="pretrain", info="")
            if pretrain_steps
            else None
        )
        self.task = self.progress.add_task("train", total=total_steps, phase="train", info="")
        self.last_eval = ""
        self.started = time.perf_counter()

    def __enter__(self) -> TrainProgressBar:
        self.progress.__enter__()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.progress.__exit__(*exc)

    def update(self, entry: dict[str, Any]) -> None:
        rate = float(entry.get("time/updates_per_s", 0.0))
        if "eval/return_mean" in entry:
            self.last_eval = f"return {np.mean(entry['eval/return_mean']):.1f}"
        loss_key = next((k for k in ("critic/loss", "bc/loss", "vae/loss") if k in entry), None)
        loss = f"{loss_key} {np.mean(entry[loss_key]):.3g}" if loss_key else ""
        info = "  ".join(part for part in (f"{rate:,.0f} upd/s", loss, self.last_eval) if part)
        if entry["phase"] == "pretrain":
            if self.pretrain_task is not None:
                self.progress.update(self.pretrain_task, completed=entry["step"], info=info)
            else:
                self.progress.update(self.task, phase="pretrain", info=info)
        else:
            self.progress.update(self.task, completed=entry["step"], phase="train", info=info)
