"""``SplinescopeCallback``: :class:`render.track.Tracker` as a Lightning ``Callback``.

Imports Lightning (``lightning.pytorch``), so it is loaded only when ``splinescope.render.SplinescopeCallback`` is first asked for.
"""
from __future__ import annotations

from typing import Any, Dict, Optional

try:
    from lightning.pytorch import Callback
except ImportError:  # pragma: no cover
    from splinescope.spatial import MissingDependencyError
    raise MissingDependencyError("SplinescopeCallback needs Lightning: pip install 'splinescope[lightning]'") from None

from .track import Tracker

__all__ = ["SplinescopeCallback"]


class SplinescopeCallback(Callback):
    """Measure the model being trained on a schedule of ``trainer.global_step``, into a run folder.

    At the start of training (step 0) and after each training batch whose global step is on the
    schedule, the main process (``trainer.is_global_zero``) runs :meth:`Tracker.step`: local
    complexity, partition statistics, a checkpoint, a ``log.jsonl`` line; the row's numbers also
    go to the trainer's loggers (``logger.log_metrics``: TensorBoard, CSV, W&B, ...).

    Parameters
    ----------
    run_dir : path
        The run folder.
    module : str, optional
        The attribute of the LightningModule that is the network to measure (e.g. ``"net"``);
        default: the LightningModule itself (its ``forward`` is the network).
    **tracker
        The options of :class:`render.track.Tracker` (``data=``, ``test=``, ``slices=``,
        ``every=`` / ``at=`` / ``steps=``, ...). Without a schedule, ``checkpoints`` log-spaced
        steps up to ``trainer.estimated_stepping_batches`` are chosen when training starts.
    """

    def __init__(self, run_dir, *, module: Optional[str] = None, **tracker: Any) -> None:
        super().__init__()
        self.run_dir, self.module, self._options = run_dir, module, tracker
        self.tracker: Optional[Tracker] = None
        if any(tracker.get(k) is not None for k in ("steps", "every", "at")):
            self.tracker = Tracker(run_dir, **tracker)

    def _network(self, pl_module):
        if self.module is None:
            return pl_module
        net = getattr(pl_module, self.module, None)
        if net is None:
            raise ValueError(f"the LightningModule has no attribute {self.module!r} (module=)")
        return net

    def _measure(self, trainer, pl_module, step: int, scalars: Dict[str, float]) -> None:
        if not trainer.is_global_zero:
            return
        assert self.tracker is not None
        row = self.tracker.step(self._network(pl_module), step, **scalars)
        if row is None:
            return
        numbers = {k: float(v) for k, v in row.items()
                   if k != "step" and isinstance(v, (int, float)) and not isinstance(v, bool)}
        for logger in trainer.loggers:
            logger.log_metrics(numbers, step=step)

    def on_train_start(self, trainer, pl_module) -> None:
        if self.tracker is None:
            steps = int(trainer.estimated_stepping_batches)
            self.tracker = Tracker(self.run_dir, steps=steps, **self._options)
        self._measure(trainer, pl_module, int(trainer.global_step), {})

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        scalars = {}
        loss = outputs.get("loss") if isinstance(outputs, dict) else outputs
        if loss is not None and hasattr(loss, "item") and getattr(loss, "numel", lambda: 0)() == 1:
            scalars["loss"] = float(loss.item())
        self._measure(trainer, pl_module, int(trainer.global_step), scalars)

    def on_train_end(self, trainer, pl_module) -> None:
        if self.tracker is not None:
            self.tracker.close()
