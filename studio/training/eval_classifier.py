"""The evaluation's instrument: a small classifier trained on real emoji, and its view of the real data.

Its accuracy on held-out real emoji is the ceiling generated pictures can score; its penultimate features are the
space Fréchet distance and diversity are measured in (studio/training/eval_image.py).
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from studio.data import emoji as data_emoji
from studio.data import emoji_hands
from studio.training import run as run_files
from studio.training.image_model import images_to_tensor

CLASSES = data_emoji.EVAL_CLASSES


class EmojiClassifier(nn.Module):
    """Four strided convolutions and a linear head; `features` is the 128-d vector used for Fréchet distance."""

    def __init__(self, n_classes: int = len(CLASSES), width: int = 32):
        super().__init__()
        chans = [3, width, width * 2, width * 4, width * 4]
        layers = []
        for c_in, c_out in zip(chans, chans[1:], strict=False):
            layers += [nn.Conv2d(c_in, c_out, 3, stride=2, padding=1), nn.BatchNorm2d(c_out), nn.SiLU()]
        self.body = nn.Sequential(*layers)
        self.head = nn.Linear(chans[-1], n_classes)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x).mean(dim=(2, 3))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


def labelled(data: data_emoji.EmojiDataset) -> tuple[np.ndarray, np.ndarray]:
    """Images that belong to an evaluation class, and their class indices."""
    classes = data.classes()
    keep = [i for i, c in enumerate(classes) if c is not None]
    return data.images[keep], np.array([CLASSES.index(classes[i]) for i in keep])


def shift(images: torch.Tensor, generator: torch.Generator, max_px: int = 4) -> torch.Tensor:
    """Random translation on a white border: the only augmentation that changes no label (no flips, no colours)."""
    padded = F.pad(images, (max_px,) * 4, value=1.0)
    dx, dy = torch.randint(0, 2 * max_px + 1, (2,), generator=generator).tolist()
    return padded[:, :, dy : dy + images.shape[2], dx : dx + images.shape[3]]


def train_classifier(
    images: np.ndarray, labels: np.ndarray, steps: int = 800, batch: int = 64, seed: int = 0, log=print
) -> EmojiClassifier:
    """Class-balanced sampling: hearts (~25) and hands (~280) count the same."""
    torch.manual_seed(seed)
    generator = torch.Generator().manual_seed(seed)
    rng = np.random.default_rng(seed)
    model = EmojiClassifier()
    optimizer = torch.optim.AdamW(model.parameters(), lr=2e-3, weight_decay=1e-4)
    counts = np.bincount(labels, minlength=len(CLASSES))
    weights = 1.0 / counts[labels]
    weights /= weights.sum()
    x_all = images_to_tensor(images)
    model.train()
    for step in range(steps):
        run_files.set_learning_rate(optimizer, run_files.cosine(step / steps, 2e-3))
        idx = rng.choice(len(labels), batch, p=weights)
        x = shift(x_all[idx], generator)
        loss = F.cross_entropy(model(x), torch.from_numpy(labels[idx]))
        run_files.optimise(optimizer, loss, clip=None)
        if step % 200 == 0:
            log(f"classifier step {step} loss {loss.item():.3f}")
    return model.eval()


@torch.no_grad()
def classify(model: EmojiClassifier, images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(predicted class indices, features) for uint8 images."""
    x = images_to_tensor(images)
    feats = torch.cat([model.features(x[i : i + 256]) for i in range(0, len(x), 256)])
    return model.head(feats).argmax(1).numpy(), feats.numpy().astype(np.float64)


def frechet_distance(a: np.ndarray, b: np.ndarray) -> float:
    """||mu_a - mu_b||^2 + Tr(Sa + Sb - 2 (Sa^1/2 Sb Sa^1/2)^1/2), with symmetric square roots by eigh."""
    mu_a, mu_b = a.mean(0), b.mean(0)
    sa, sb = np.cov(a, rowvar=False), np.cov(b, rowvar=False)

    def sqrt_psd(m: np.ndarray) -> np.ndarray:
        w, v = np.linalg.eigh((m + m.T) / 2)
        return (v * np.sqrt(np.clip(w, 0, None))) @ v.T

    root_a = sqrt_psd(sa)
    cross = sqrt_psd(root_a @ sb @ root_a)
    return float(((mu_a - mu_b) ** 2).sum() + np.trace(sa) + np.trace(sb) - 2 * np.trace(cross))


def per_class_accuracy(pred: np.ndarray, labels: np.ndarray) -> dict[str, float]:
    return {c: round(float((pred[labels == k] == k).mean()), 3) for k, c in enumerate(CLASSES) if (labels == k).any()}


def mean_pairwise_distance(features: np.ndarray) -> float:
    """Mean Euclidean distance over all pairs (0 for fewer than two)."""
    if len(features) < 2:
        return 0.0
    diff = features[:, None, :] - features[None, :, :]
    dist = np.sqrt((diff**2).sum(-1))
    return float(dist[np.triu_indices(len(features), 1)].mean())


HANDS = ("noto", "both")  # the real data an evaluation measures against: Noto alone, or Noto and EmojiOne
TWO_HAND_CLASSIFIER_STEPS = 2000  # twice the pictures in two styles: 800 steps left EmojiOne's held-out at 60 %


def real_reference(log=print, hands: str = "noto") -> tuple[EmojiClassifier, dict]:
    """The classifier, trained on the training split, and its view of the real emoji: Noto's alone, or with
    `hands="both"` Noto's and EmojiOne's (a model trained on both hands is judged by a classifier that knows both,
    against real data that holds both)."""
    data = data_emoji.load_dataset()
    sets = [data] if hands == "noto" else [data, emoji_hands.second_hand_data(data)[1]]
    train = [labelled(d.split(held_out=False)) for d in sets]
    held = [labelled(d.split(held_out=True)) for d in sets]
    train_x, train_y = (np.concatenate(parts) for parts in zip(*train, strict=True))
    held_x, held_y = (np.concatenate(parts) for parts in zip(*held, strict=True))
    steps = 800 if hands == "noto" else TWO_HAND_CLASSIFIER_STEPS
    classifier = train_classifier(train_x, train_y, steps=steps, log=log)
    held_pred, held_feats = classify(classifier, held_x)
    _, train_feats = classify(classifier, train_x)
    log(f"classifier ({hands}): held-out accuracy {(held_pred == held_y).mean():.3f} on {len(held_y)} real emoji")
    real = {
        "held_features": held_feats,
        "all_features": np.concatenate([train_feats, held_feats]),
        "all_labels": np.concatenate([train_y, held_y]),
        "ceiling": round(float((held_pred == held_y).mean()), 3),
        "ceiling_per_class": per_class_accuracy(held_pred, held_y),
        "floor": round(frechet_distance(train_feats, held_feats), 2),
        "held_out_images": data.split(held_out=True).images,
    }
    if hands == "both":  # each hand's held-out accuracy: a classifier that knows one hand only would show here
        noto_count = len(held[0][1])
        real["ceiling_per_hand"] = {
            "noto": round(float((held_pred[:noto_count] == held_y[:noto_count]).mean()), 3),
            "emojione": round(float((held_pred[noto_count:] == held_y[noto_count:]).mean()), 3)}
    return classifier, real
