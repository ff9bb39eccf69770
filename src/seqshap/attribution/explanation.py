"""The one object every picture, the CLI, the web page and word importance read."""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

HIDDEN_TOKENS = ("<pad>", "<start>")


@dataclass(frozen=True, eq=False)
class Explanation:
    """Attributions of one prediction, one value per token position.

    ``values`` ``[T]`` sum to ``output_value - base_value`` up to ``completeness_error``.
    ``output_space`` is ``"probability"``, ``"logit"`` or ``"raw"`` (what the model returns).
    """
    tokens: tuple[str, ...]
    ids: tuple[int, ...]
    values: np.ndarray
    base_value: float
    output_value: float
    completeness_error: float
    output_space: str = "probability"
    model_name: str = "model"
    method: str = "deepshap"
    output_index: int = 0
    text: str | None = None
    label: int | None = None
    meta: dict = field(default_factory=dict)

    def __post_init__(self):
        values = np.asarray(self.values, dtype=np.float64).copy()
        values.setflags(write=False)  # frozen means frozen, arrays included
        object.__setattr__(self, "values", values)
        object.__setattr__(self, "tokens", tuple(self.tokens))
        object.__setattr__(self, "ids", tuple(int(i) for i in self.ids))
        if not (len(self.tokens) == len(self.ids) == len(values)):
            raise ValueError(f"tokens ({len(self.tokens)}), ids ({len(self.ids)}) and values "
                             f"({len(values)}) must have the same length")

    @property
    def prediction(self) -> float:
        """The explained output value (a probability in the default output space)."""
        return self.output_value

    @property
    def predicted_label(self) -> int | None:
        if self.output_space == "probability":
            return int(self.output_value > 0.5)
        if self.output_space == "logit":
            return int(self.output_value > 0)
        return None

    @property
    def visible(self) -> np.ndarray:
        """Boolean mask ``[T]`` of positions a person should see (no padding, no start)."""
        return np.array([t not in HIDDEN_TOKENS for t in self.tokens], dtype=bool)

    def words(self) -> list[tuple[str, float]]:
        """(token, value) for visible positions, in text order."""
        return [(t, float(v)) for t, v, keep in zip(self.tokens, self.values, self.visible) if keep]

    def top(self, k: int = 10) -> list[tuple[str, float]]:
        """The ``k`` visible tokens with the largest absolute attribution."""
        return sorted(self.words(), key=lambda tv: -abs(tv[1]))[:k]

    def to_dict(self) -> dict:
        return {"tokens": list(self.tokens), "ids": list(self.ids), "values": self.values.tolist(),
                "base_value": self.base_value, "prediction": self.output_value,
                "completeness_error": self.completeness_error, "output_space": self.output_space,
                "model": self.model_name, "method": self.method, "label": self.label, "text": self.text}

    def _repr_html_(self) -> str:
        from ..viz.html import explanation_html
        return explanation_html(self)
