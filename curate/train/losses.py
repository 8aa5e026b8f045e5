"""Multi-class focal loss (Lin et al. 2017), the one implementation curate uses.

    FL(x, y) = -alpha_y * w_y * (1 - p_t)^gamma * log(p_t),   p_t = softmax(x)_y

* p_t comes from the *unweighted* log-softmax: class weights scale the loss, never the probability.
* Logits are cast to float32 first, so the loss is computed in float32 under AMP (fp16/bf16).
* reduction="mean" is the plain mean over the batch: sum(FL_i) / N. It is NOT PyTorch's weighted
  mean (which divides by the sum of the weights of the targets). With gamma=0 and alpha=1 this is
  exactly F.cross_entropy; with gamma=0 and per-class alpha it is
  F.cross_entropy(x, y, weight=alpha, reduction="none").mean().
* Soft targets (mixup) are handled by the caller as a convex combination of two hard-target losses.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def focal_loss(
    logits: torch.Tensor,
    target: torch.Tensor,
    gamma: float = 2.0,
    alpha: torch.Tensor | float | None = None,
    reduction: str = "mean",
) -> torch.Tensor:
    logp = F.log_softmax(logits.float(), dim=1)
    logp_t = logp.gather(1, target[:, None]).squeeze(1)
    p_t = logp_t.exp()
    loss = -logp_t if gamma == 0 else -((1 - p_t).clamp(min=0) ** gamma) * logp_t
    if alpha is not None:
        if isinstance(alpha, torch.Tensor) and alpha.ndim == 1:
            loss = loss * alpha.to(loss.device, torch.float32)[target]
        else:
            loss = loss * float(alpha)
    if reduction == "mean":
        return loss.mean()
    if reduction == "sum":
        return loss.sum()
    if reduction == "none":
        return loss
    raise ValueError(f"unknown reduction {reduction!r}")


class FocalLoss(nn.Module):
    def __init__(self, gamma: float = 2.0, alpha: torch.Tensor | float | None = None, reduction: str = "mean"):
        super().__init__()
        self.gamma = gamma
        self.reduction = reduction
        if isinstance(alpha, torch.Tensor):
            self.register_buffer("alpha", alpha.float())
        else:
            self.alpha = alpha

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return focal_loss(logits, target, self.gamma, self.alpha, self.reduction)

    def per_image(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return focal_loss(logits, target, self.gamma, self.alpha, "none")


class CrossEntropy(nn.Module):
    """F.cross_entropy in float32 (PyTorch's weighted mean when class weights are given)."""

    def __init__(self, weight: torch.Tensor | None = None, label_smoothing: float = 0.0):
        super().__init__()
        self.register_buffer("weight", None if weight is None else weight.float())
        self.label_smoothing = label_smoothing

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return F.cross_entropy(logits.float(), target, weight=self.weight, label_smoothing=self.label_smoothing)

    def per_image(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """Each image's loss (times its class weight, if any): the per-class mean losses are means of these."""
        return F.cross_entropy(logits.float(), target, weight=self.weight, label_smoothing=self.label_smoothing,
                               reduction="none")


def class_frequency_weights(counts: list[int]) -> torch.Tensor:
    """'balanced' weights: N / (C * n_c), as scikit-learn computes them (absent classes get 0)."""
    c = torch.tensor(counts, dtype=torch.float32)
    w = c.sum() / (len(counts) * c.clamp(min=1))
    return torch.where(c > 0, w, torch.zeros_like(w))


def build_loss(cfg, counts: list[int]) -> nn.Module:
    """The loss a TrainConfig asks for. For focal loss, --alpha balanced and --class-weights
    inverse-freq both give per-class factors, which multiply."""
    weights = class_frequency_weights(counts) if cfg.class_weights == "inverse-freq" else None
    if cfg.loss == "ce":
        return CrossEntropy(weights, cfg.label_smoothing)
    alpha: torch.Tensor | float
    alpha = class_frequency_weights(counts) if cfg.alpha == "balanced" else float(cfg.alpha)
    if weights is not None:
        alpha = weights * alpha
    return FocalLoss(cfg.gamma, alpha)
