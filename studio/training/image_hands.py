"""Round 11: a second hand. Half of the draws of an emoji EmojiOne also draws take EmojiOne's picture, under the
same caption, so a prompt naming one emoji has two right pictures and the seed picks between them.

Captions do not say which hand: the app's "red heart" should vary the way a search for it across vendors does.
Only training-split pictures are used; the held-out emoji stay unseen in both hands (studio/data/emoji_hands.py).
"""

from __future__ import annotations

import numpy as np
import torch

from studio.data import emoji_hands

SECOND_HAND_SHARE = 0.5  # of the draws of an emoji both hands draw: the data holds both pictures equally
# A higher share for a while lets the second hand catch up on the ~770 draws each Noto picture has had.


class SecondHandDraws:
    """Swaps a share of a batch's latents for the second hand's latents of the same training emoji."""

    def __init__(self, has_second: np.ndarray, mean: torch.Tensor, std: torch.Tensor, share: float = SECOND_HAND_SHARE):
        self.position = np.full(len(has_second), -1, np.int64)  # training index -> row of mean/std, or -1
        self.position[has_second] = np.arange(int(has_second.sum()))
        self.mean, self.std, self.share = mean, std, share

    def swap(self, rng: np.random.Generator, idx: np.ndarray, mean: torch.Tensor,
             std: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, int]:
        """(means, stds, how many were swapped) for the batch's training indices `idx`."""
        rows = self.position[idx]
        swap = (rows >= 0) & (rng.random(len(idx)) < self.share)
        if not swap.any():
            return mean, std, 0
        mean, std = mean.clone(), std.clone()
        chosen = torch.from_numpy(np.flatnonzero(swap))
        mean[chosen] = self.mean[rows[swap]]
        std[chosen] = self.std[rows[swap]]
        return mean, std, int(swap.sum())


def second_hand_shares(state: dict) -> list[list[float]]:
    """[[ldm step, share], ...]: the share of the second hand's draws from each step on (a run begun before the
    share could be set took SECOND_HAND_SHARE)."""
    if "second_hand_from" not in state:
        return []
    return state.get("second_hand_shares") or [[state["second_hand_from"], SECOND_HAND_SHARE]]


def second_hand_draws(run, share: float = 0.0) -> SecondHandDraws | None:
    """The run's second-hand draws once round 11 began (its step is kept in the state), else None. `share` > 0
    begins it or sets a new share from this step on; 0 keeps the share last set."""
    if share > 0:
        run.state.setdefault("second_hand_from", run.state["ldm_step"])
        shares = second_hand_shares(run.state)
        if shares[-1][1] != share:
            shares.append([run.state["ldm_step"], share])
        run.state["second_hand_shares"] = shares
    if "second_hand_from" not in run.state:
        return None
    share = second_hand_shares(run.state)[-1][1]
    indices, pictures = emoji_hands.second_hand_data(run.data)
    train_index = np.cumsum(~run.data.held_out) - 1
    has_second = np.zeros(len(run.train), bool)
    has_second[train_index[indices[~run.data.held_out[indices]]]] = True
    # in data order, so row k of the latents is the k-th training emoji that has a second picture
    mean, std = run.encode_latents(pictures.split(held_out=False))
    run.log(f"second hand: {int(has_second.sum())} of {len(run.train)} training emoji also drawn by EmojiOne, "
            f"{share:.0%} of their draws take that picture (shares by ldm step: {second_hand_shares(run.state)})")
    return SecondHandDraws(has_second, mean, std, share)
