"""fairseq's Adam, polynomial-decay schedule and dynamic fp16 loss scaler."""

from __future__ import annotations

import math
from typing import Iterable, Optional

import torch


class FairseqAdam(torch.optim.AdamW):
    """Adam as fairseq implements it (docs/formats.md section 4):

    * decoupled weight decay ``p -= wd * lr * p`` on every parameter, before the update;
    * ``denom = sqrt(v) + eps`` (eps added before bias correction);
    * ``step_size = lr * sqrt(1 - b2^t) / (1 - b1^t)``; state in fp32.

    This is torch's (fused where available) AdamW with ``eps / sqrt(1 - b2^t)`` as its eps at
    step t: AdamW divides by ``sqrt(v) / sqrt(1 - b2^t) + eps'``, which is then exactly
    fairseq's ``(sqrt(v) + eps) / sqrt(1 - b2^t)``; its weight decay is the same decoupled form.
    """

    def __init__(self, params: Iterable, lr: float = 1e-3, betas=(0.9, 0.999), eps: float = 1e-8,
                 weight_decay: float = 0.0):
        params = list(params)
        devices = {p.device.type for p in params if isinstance(p, torch.Tensor)}
        fused = devices <= {"cpu", "cuda"} and bool(devices)
        super().__init__(params, lr=lr, betas=tuple(betas), eps=eps, weight_decay=weight_decay, fused=fused)
        for group in self.param_groups:
            group["fairseq_eps"] = eps
        # Per group, the updates applied so far, kept on the host: the fused optimizer keeps its
        # step counts on the parameters' device, and reading one there (int(...)) would make every
        # update wait for the GPU. Read from the state once (first step, or after loading).
        self._updates: dict[int, int] = {}

    def load_state_dict(self, state_dict: dict) -> None:
        super().load_state_dict(state_dict)
        self._updates = {}

    @torch.no_grad()
    def step(self, closure=None):
        for i, group in enumerate(self.param_groups):
            if i not in self._updates:
                steps = [self.state[p]["step"] for p in group["params"] if p.grad is not None and self.state[p]]
                self._updates[i] = int(steps[0]) if steps else 0
            t = self._updates[i] + 1
            group["eps"] = group["fairseq_eps"] / math.sqrt(1 - group["betas"][1] ** t)
        loss = super().step(closure)
        for i, group in enumerate(self.param_groups):    # a group without gradients was not updated
            self._updates[i] += any(p.grad is not None for p in group["params"])
        return loss


class PolynomialDecay:
    """fairseq's polynomial_decay: linear warmup to ``lr`` over ``warmup`` updates, then
    ``(lr - end_lr) * (1 - (u - warmup) / (total - warmup)) ** power + end_lr``, then end_lr.
    ``total == warmup`` (accepted by fairseq): warmup to ``lr``, then end_lr, no decay phase; a
    total below the warmup is refused (the peak would never be reached: a mistake, surely)."""

    def __init__(self, lr: float, warmup: int, total: int, end_lr: float = 0.0, power: float = 1.0):
        if 0 < total < warmup:
            raise ValueError(f"total updates ({total}) must not be below the warmup updates ({warmup})")
        self.lr, self.warmup, self.total, self.end_lr, self.power = lr, warmup, total, end_lr, power

    def after(self, num_updates: int) -> float:
        """The learning rate set after ``num_updates`` updates (used by the next update)."""
        if self.warmup > 0 and num_updates <= self.warmup:
            return self.lr * max(num_updates, 1) / self.warmup   # the first update uses lr / warmup
        if num_updates >= self.total:
            return self.end_lr
        remaining = 1 - (num_updates - self.warmup) / (self.total - self.warmup)
        return (self.lr - self.end_lr) * remaining ** self.power + self.end_lr

    def for_update(self, update: int) -> float:
        """The learning rate of update number ``update`` (1-based)."""
        return self.after(update - 1)


class DynamicLossScaler:
    """fairseq's dynamic loss scaling for fp16: halve on overflow (the update is skipped; never
    below ``threshold``), double after ``scale_window`` clean updates; fail at ``min_scale``."""

    min_scale = 1e-4

    def __init__(self, init_scale: float = 2 ** 7, scale_window: int = 2000,
                 threshold: Optional[float] = None):
        self.scale, self.scale_window, self.threshold = float(init_scale), scale_window, threshold
        self.clean_updates = 0
        self.overflows = 0

    def update(self, overflow: bool) -> None:
        if overflow:
            self.overflows += 1
            self.clean_updates = 0
            self.scale /= 2.0
            if self.threshold is not None:   # --threshold-loss-scale: never go below it
                self.scale = max(self.scale, self.threshold)
            if self.scale <= self.min_scale:
                raise FloatingPointError(
                    f"minimum loss scale reached ({self.min_scale}): the loss is probably exploding; "
                    f"try a lower --lr or --bf16")
            return
        self.clean_updates += 1
        if self.clean_updates % self.scale_window == 0:
            self.scale *= 2.0

    def state_dict(self) -> dict:
        return {"scale": self.scale, "clean_updates": self.clean_updates, "overflows": self.overflows}

    def load_state_dict(self, state: dict) -> None:
        self.scale = float(state["scale"])
        self.clean_updates = int(state["clean_updates"])
        self.overflows = int(state.get("overflows", 0))
