"""Live: the Image panel's picture follows the prompt as it is typed and the sliders as they are dragged.

Each change submits an unsaved generation whose supersede key replaces any live request still queued, so however
fast the user types, at most one request waits behind the one being drawn and the picture converges on the last
values. The seed stays put while Live is on (a random one is drawn once when Live starts), so what changes between
pictures is what the user changed. QtCore only.
"""

from __future__ import annotations

import random

from PySide6.QtCore import QObject, Signal

from studio.core.jobs import Job
from studio.core.recipe import MAX_SEED, RANDOM_SEED

LIVE_KEY = "image.live"
# The values whose change redraws the picture (the rest: mode, init image, batch count… are not live).
LIVE_VALUES = frozenset({"prompt", "negative_prompt", "model", "seed", "steps", "guidance", "guidance_start", "variety",
                         "scheduler", "width", "height", "variation_seed", "variation_strength", "clip_skip", "truncation",
                         "init_image"})  # Translate mode: each saved stroke of the sketch


class LiveImage(QObject):
    enabled_changed = Signal(bool)
    picture_arrived = Signal(object)  # the newest live Artifact (unsaved)

    def __init__(self, state: QObject, kind: str = "image.generate") -> None:
        """`state` is the State that owns this (typed loosely: this module must not import studio.state's
        __init__, which imports it); `kind` the job kind of the Image panel's Generate."""
        super().__init__(state)
        self.state, self.kind = state, kind
        self.values = state.panels["image"]
        self.enabled = False
        self.seed = 0  # the seed every live picture uses while Live is on (the panel's, unless it is random)
        self.submitted = 0

    def set_enabled(self, on: bool) -> None:
        if on == self.enabled:
            return
        self.enabled = on
        if on:
            seed = int(self.values.get("seed", RANDOM_SEED))
            self.seed = seed if seed != RANDOM_SEED else random.randint(0, MAX_SEED)
        self.enabled_changed.emit(on)
        if on:
            self.request()

    def wants(self, name: str) -> bool:
        """Whether a change of this value redraws the live picture."""
        return self.enabled and name in LIVE_VALUES

    def request(self) -> Job | None:
        """Draw the panel's values now (unsaved); a newer request replaces this one while it waits."""
        translating = self.values.get("mode") == "translate"
        if not self.enabled or not (str(self.values.get("prompt", "")).strip() or translating):
            return None
        # Live draws from text, or from the sketch in Translate mode (image-to-image waits for Generate)
        mode = "translate" if self.values.get("mode") == "translate" else "txt2img"
        recipe = self.values.recipe(seed=self._seed()).with_params(batch_count=1, mode=mode)
        self.submitted += 1
        return self.state.submit(Job(self.kind, recipe, save=False, supersede_key=LIVE_KEY))

    def arrived(self, result) -> None:
        if result is not None and result.artifacts:
            self.picture_arrived.emit(result.artifacts[-1])

    def _seed(self) -> int:
        seed = int(self.values.get("seed", RANDOM_SEED))
        return seed if seed != RANDOM_SEED else self.seed
