"""Progress output for fit: a bar on a terminal (tqdm when installed), plain lines otherwise."""
from __future__ import annotations

import math
import sys


def _fmt(logs: dict[str, float]) -> str:
    parts = []
    for key in ("loss", "accuracy", "val_loss", "val_accuracy"):
        if key in logs and not math.isnan(logs[key]):
            parts.append(f"{key} {logs[key]:.4f}")
    if "time" in logs:
        parts.append(f"{logs['time']:.2f}s")
    return "  ".join(parts)


class EpochReporter:
    """verbose 0: silent; 1: a bar over epochs on a terminal, else one line per epoch; 2: lines."""

    def __init__(self, epochs: int, verbose: bool | int, stream=None):
        self.epochs = epochs
        self.stream = stream or sys.stdout
        self.verbose = int(verbose)
        self.bar = None
        if self.verbose == 1 and getattr(self.stream, "isatty", lambda: False)():
            try:
                from tqdm.auto import tqdm
            except ImportError:  # the progress extra is optional: fall back to lines
                self.verbose = 2
            else:
                self.bar = tqdm(total=epochs, unit="epoch", file=self.stream, leave=True)
        elif self.verbose == 1:
            self.verbose = 2

    def epoch_end(self, epoch: int, logs: dict[str, float]) -> None:
        if self.bar is not None:
            self.bar.set_postfix_str(_fmt(logs), refresh=False)
            self.bar.update(1)
        elif self.verbose >= 2:
            width = len(str(self.epochs))
            print(f"epoch {epoch + 1:>{width}}/{self.epochs}  {_fmt(logs)}", file=self.stream, flush=True)

    def message(self, text: str) -> None:
        """A line of news at the end of training (e.g. what early stopping did)."""
        if self.bar is not None:
            self.bar.write(text, file=self.stream)
        elif self.verbose:
            print(text, file=self.stream, flush=True)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
