"""Focal loss against its formula."""

import math

import pytest

torch = pytest.importorskip("torch")
import torch.nn.functional as F  # noqa: E402

from curate.train.config import TrainConfig  # noqa: E402
from curate.train.losses import FocalLoss, build_loss, class_frequency_weights, focal_loss  # noqa: E402


@pytest.fixture
def batch():
    g = torch.Generator().manual_seed(0)
    return torch.randn(16, 5, generator=g) * 3, torch.randint(0, 5, (16,), generator=g)


def test_gamma_zero_is_cross_entropy(batch):
    x, y = batch
    assert torch.allclose(focal_loss(x, y, gamma=0), F.cross_entropy(x, y), atol=1e-6)
    assert torch.allclose(FocalLoss(0.0, 1.0)(x, y), F.cross_entropy(x, y), atol=1e-6)


def test_per_class_alpha_with_gamma_zero(batch):
    x, y = batch
    alpha = torch.tensor([0.5, 1.0, 2.0, 0.25, 3.0])
    want = F.cross_entropy(x, y, weight=alpha, reduction="none").mean()  # documented: plain mean
    assert torch.allclose(focal_loss(x, y, gamma=0, alpha=alpha), want, atol=1e-6)


def test_matches_formula_elementwise(batch):
    x, y = batch
    alpha = torch.tensor([0.5, 1.0, 2.0, 0.25, 3.0])
    got = focal_loss(x, y, gamma=2.0, alpha=alpha, reduction="none")
    for i in range(len(y)):
        p = math.exp(x[i, y[i]].item()) / sum(math.exp(v) for v in x[i].tolist())
        want = -alpha[y[i]].item() * (1 - p) ** 2 * math.log(p)
        assert got[i].item() == pytest.approx(want, rel=1e-4, abs=1e-7)
    assert focal_loss(x, y, 2.0, alpha, "sum").item() == pytest.approx(got.sum().item(), rel=1e-6)
    assert focal_loss(x, y, 2.0, alpha, "mean").item() == pytest.approx(got.mean().item(), rel=1e-6)


def test_weights_do_not_leak_into_p_t(batch):
    # If alpha entered the softmax, the per-sample ratio would not be exactly alpha[y].
    x, y = batch
    alpha = torch.tensor([10.0, 0.1, 1.0, 5.0, 0.5])
    plain = focal_loss(x, y, 2.0, None, "none")
    weighted = focal_loss(x, y, 2.0, alpha, "none")
    assert torch.allclose(weighted, plain * alpha[y], rtol=1e-6)


def test_focal_down_weights_easy_examples():
    x = torch.tensor([[4.0, 0.0], [0.2, 0.0]])
    y = torch.tensor([0, 0])
    ce = F.cross_entropy(x, y, reduction="none")
    fl = focal_loss(x, y, 2.0, None, "none")
    assert (fl < ce).all()
    assert fl[0] / ce[0] < fl[1] / ce[1]  # the confident example is shrunk more


def test_float32_under_low_precision(batch):
    x, y = batch
    xb = x.to(torch.bfloat16)
    out = focal_loss(xb, y, gamma=2.0)
    assert out.dtype == torch.float32
    assert torch.allclose(out, focal_loss(xb.float(), y, gamma=2.0))


def test_gradients_finite_for_confident_logits():
    x = torch.tensor([[60.0, -60.0, 0.0]], requires_grad=True)
    focal_loss(x, torch.tensor([0]), gamma=2.0).backward()
    assert torch.isfinite(x.grad).all()


def test_bad_reduction(batch):
    with pytest.raises(ValueError):
        focal_loss(*batch, reduction="avg")


def test_balanced_weights_and_build_loss():
    w = class_frequency_weights([10, 30, 0])
    assert w.tolist() == pytest.approx([40 / 30, 40 / 90, 0.0])
    ce = build_loss(TrainConfig(loss="ce", class_weights="inverse-freq"), [10, 30, 0])
    assert torch.allclose(ce.weight, w)
    fl = build_loss(TrainConfig(alpha="balanced"), [10, 30, 0])
    assert isinstance(fl, FocalLoss) and torch.allclose(fl.alpha, w)
    assert build_loss(TrainConfig(), [1, 1]).alpha == 1.0
