"""What people compare classifiers by: top-1/top-5, precision/recall/F1, confusion, speed, memory;
plus the confusion-matrix and learning-curve figures (matplotlib, Agg backend, imported lazily)."""

from __future__ import annotations

import io
import threading
import time
from pathlib import Path

import numpy as np

from curate.core.tree import atomic_write_bytes


def classification_metrics(y_true: np.ndarray, probs: np.ndarray, classes: list[str],
                           display: dict[str, str] | None = None, top_confusions: int = 10,
                           losses: np.ndarray | None = None) -> dict:
    """Scores of one split. per_class[name] holds precision, recall, f1-score, support, accuracy (the
    fraction of the class's images predicted right; None when the split has none) and, with `losses`
    (each image's loss), loss: the class's mean loss."""
    from sklearn.metrics import classification_report, confusion_matrix, precision_recall_fscore_support

    n_cls = len(classes)
    labels = list(range(n_cls))
    names = [display.get(c, c) if display else c for c in classes]
    pred = probs.argmax(1)
    k = min(5, n_cls)
    topk = np.argsort(-probs, axis=1)[:, :k]
    out: dict = {
        "images": int(len(y_true)),
        "top1": float((pred == y_true).mean()) if len(y_true) else 0.0,
        "top5": float((topk == y_true[:, None]).any(1).mean()) if len(y_true) else 0.0,
        "top5_k": k,
    }
    # Averages over the classes this split can score (in it, or predicted), as scikit-learn does by default:
    # a class absent from the split and never predicted has no precision or recall, not a zero one.
    seen = sorted(set(np.asarray(y_true).tolist()) | set(np.asarray(pred).tolist())) or labels
    for avg in ("macro", "weighted"):
        p, r, f, _ = precision_recall_fscore_support(y_true, pred, labels=seen, average=avg, zero_division=0)
        out[f"{avg}_precision"], out[f"{avg}_recall"], out[f"{avg}_f1"] = float(p), float(r), float(f)
    rep = classification_report(y_true, pred, labels=labels, target_names=names, output_dict=True, zero_division=0)
    out["per_class"] = {n: {k2: float(v) for k2, v in rep[n].items()} for n in names}
    y_true = np.asarray(y_true)
    for i, n in enumerate(names):
        mask = y_true == i
        has = bool(mask.any())
        out["per_class"][n]["accuracy"] = float((pred[mask] == i).mean()) if has else None
        if losses is not None:
            out["per_class"][n]["loss"] = float(np.asarray(losses)[mask].mean()) if has else None
    cm = confusion_matrix(y_true, pred, labels=labels)
    out["confusion_matrix"] = cm.tolist()
    out["top_confusions"] = top_confused(cm, names, top_confusions)
    text = classification_report(y_true, pred, labels=seen, target_names=[names[i] for i in seen], digits=3,
                                 zero_division=0)
    unseen = [names[i] for i in labels if i not in set(seen)]
    if unseen:
        text += f"\nnot in this split and never predicted (left out of the averages): {', '.join(unseen)}\n"
    out["report_text"] = text + "\n" + per_class_text(out["per_class"])
    return out


def per_class_rows(per_class: dict) -> list[list[str]]:
    """[class, images, accuracy, mean loss] rows, worst accuracy first."""
    def key(item):
        acc = item[1].get("accuracy")
        return (acc is None, acc if acc is not None else 0.0, item[0])

    rows = []
    for name, v in sorted(per_class.items(), key=key):
        acc, loss = v.get("accuracy"), v.get("loss")
        rows.append([name, str(int(v.get("support", 0))), "-" if acc is None else f"{acc:.3f}",
                     "-" if loss is None else f"{loss:.4f}"])
    return rows


def per_class_text(per_class: dict) -> str:
    rows = [["class", "images", "accuracy", "mean loss"], *per_class_rows(per_class)]
    w = [max(len(r[i]) for r in rows) for i in range(4)]
    lines = ["per class (worst accuracy first):"]
    lines += ["  " + r[0].ljust(w[0]) + "  " + "  ".join(c.rjust(w[i + 1]) for i, c in enumerate(r[1:])) for r in rows]
    return "\n".join(lines) + "\n"


def top_confused(cm: np.ndarray, names: list[str], n: int = 10) -> list[dict]:
    off = cm.copy()
    np.fill_diagonal(off, 0)
    rows = cm.sum(1)
    pairs = np.argwhere(off > 0)
    ranked = sorted(pairs.tolist(), key=lambda ij: (-off[ij[0], ij[1]], ij[0], ij[1]))[:n]
    return [{"true": names[i], "predicted": names[j], "count": int(off[i, j]),
             "rate": float(off[i, j] / rows[i]) if rows[i] else 0.0} for i, j in ranked]


def _save_fig(fig, path: Path) -> None:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    atomic_write_bytes(path, buf.getvalue())


def plot_confusion(cm: np.ndarray, names: list[str], path: Path, title: str, top: list[dict]) -> None:
    """Row-normalised, classes sorted by recall (worst first); values printed for up to 25 classes,
    class names on both axes while a row is tall enough for 4 pt text (about 300 classes); the top
    confusions listed beside the matrix."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    n = len(names)
    rows = cm.sum(1, keepdims=True)
    norm = np.divide(cm, rows, out=np.zeros(cm.shape, float), where=rows > 0)
    order = sorted(range(n), key=lambda i: (norm[i, i], names[i]))
    norm = norm[np.ix_(order, order)]
    side = min(24.0, max(5.0, 0.22 * n + 3))
    fig, (ax, tx) = plt.subplots(1, 2, figsize=(side + 5, side), gridspec_kw={"width_ratios": [side, 5]})
    from matplotlib.colors import PowerNorm

    # Many classes: a square-root colour scale so that small confusions stay visible.
    scale = PowerNorm(0.5, vmin=0, vmax=1) if n > 25 else None
    im = ax.imshow(norm, cmap="Blues", norm=scale, vmin=None if scale else 0, vmax=None if scale else 1,
                   interpolation="nearest")
    fig.colorbar(im, ax=ax, fraction=0.046, pad=0.02, label="fraction of the true class")
    row_pt = side * 72 * 0.8 / n  # the height of one row in points (the matrix fills ~80 % of the side)
    if row_pt >= 4:
        fs = min(9.0, 0.85 * row_pt)
        short = [names[i] if len(names[i]) <= 28 else names[i][:27] + "…" for i in order]
        ax.set_xticks(range(n), short, rotation=90, fontsize=fs)
        ax.set_yticks(range(n), short, fontsize=fs)
        ax.set_xlabel("predicted")
    else:  # too many names to print; the names of the worst pairs are listed beside
        ax.set_xticks([])
        ax.set_yticks([])
        ax.set_xlabel(f"predicted ({n} classes)")
    if n <= 25:
        for i in range(n):
            for j in range(n):
                if norm[i, j] >= 0.005:
                    ax.text(j, i, f"{norm[i, j]:.2f}", ha="center", va="center", fontsize=8,
                            color="white" if norm[i, j] > 0.5 else "black")
    ax.set_ylabel("true (sorted by recall, worst first)")
    ax.set_title(title)
    tx.axis("off")
    lines = ["Top confusions (true -> predicted):", ""]
    lines += [f"{c['true'][:24]} -> {c['predicted'][:24]}: {c['count']} ({c['rate']:.0%})" for c in top] or ["none"]
    tx.text(0, 1, "\n".join(lines), va="top", ha="left", fontsize=9 if n <= 25 else 12, family="monospace")
    _save_fig(fig, path)
    plt.close(fig)


def plot_curves(history: list[dict], path: Path, best_epoch: int) -> None:
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    ep = [h["epoch"] for h in history]
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    for ax, key in zip(axes, ("loss", "acc"), strict=True):
        ax.plot(ep, [h[f"train_{key}"] for h in history], "o-", label="train")
        ax.plot(ep, [h[f"val_{key}"] for h in history], "o-", label="validation")
        ax.axvline(best_epoch, color="gray", ls="--", lw=1, label=f"best (epoch {best_epoch})")
        ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_ylabel("loss" if key == "loss" else "accuracy")
        ax.grid(alpha=0.3)
        ax.legend()
    fig.suptitle("learning curves")
    _save_fig(fig, path)
    plt.close(fig)


class PeakMemory:
    """Peak memory during a block: CUDA allocated bytes, or this process's resident set on CPU
    (sampled every 50 ms from /proc/self/statm; None where that file does not exist)."""

    def __init__(self, device):
        self.device = device
        self.peak_mb: float | None = None
        self.kind = "cuda-allocated" if device.type == "cuda" else "cpu-rss"

    def __enter__(self):
        if self.device.type == "cuda":
            import torch

            torch.cuda.reset_peak_memory_stats(self.device)
            return self
        self._peak, self._stop = _rss(), threading.Event()
        self._t = threading.Thread(target=self._sample, daemon=True)
        self._t.start()
        return self

    def _sample(self):
        while not self._stop.wait(0.05):
            r = _rss()
            if r is not None and (self._peak is None or r > self._peak):
                self._peak = r

    def __exit__(self, *exc):
        if self.device.type == "cuda":
            import torch

            self.peak_mb = torch.cuda.max_memory_allocated(self.device) / 2**20
        else:
            self._stop.set()
            self._t.join()
            self.peak_mb = None if self._peak is None else self._peak / 2**20


def _rss() -> int | None:
    try:
        import os

        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return None


def time_inference(model, x, *, device, autocast, min_seconds: float = 0.5, max_iters: int = 20) -> dict:
    """Inference ms/image and images/s on one batch (after two warm-up passes)."""
    import torch

    def sync():
        if device.type == "cuda":
            torch.cuda.synchronize(device)

    model.eval()
    with torch.inference_mode(), autocast():
        for _ in range(2):
            model(x)
        sync()
        t0, iters = time.perf_counter(), 0
        while iters < max_iters and (iters < 3 or time.perf_counter() - t0 < min_seconds):
            model(x)
            sync()
            iters += 1
        dt = time.perf_counter() - t0
    per = dt / (iters * x.shape[0])
    return {"inference_ms_per_image": per * 1000, "inference_images_per_s": 1 / per,
            "inference_batch_size": int(x.shape[0])}
