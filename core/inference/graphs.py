"""The torch modules exported to ONNX: the same forward sentence-transformers runs, as one graph."""

from __future__ import annotations

from typing import Any

import torch


class Embedding(torch.nn.Module):
    """Transformer, then sentence-transformers' mean (or CLS) pooling and L2 normalisation."""

    def __init__(self, model: Any, mode: str = "mean"):
        super().__init__()
        self.model = model
        self.mode = mode
        self.input_names: list[str] = ["input_ids", "attention_mask", "token_type_ids"]

    def forward(self, *args: torch.Tensor) -> torch.Tensor:
        inputs = dict(zip(self.input_names, args))
        tokens = self.model(**inputs).last_hidden_state
        if self.mode == "cls":
            pooled = tokens[:, 0]
        else:  # sentence_transformers.models.Pooling, pooling_mode_mean_tokens
            mask = inputs["attention_mask"].unsqueeze(-1).to(tokens.dtype)
            pooled = (tokens * mask).sum(1) / torch.clamp(mask.sum(1), min=1e-9)
        return torch.nn.functional.normalize(pooled, p=2, dim=1)


class Logit(torch.nn.Module):
    """A sequence-classification model's one relevance logit per pair (no activation)."""

    def __init__(self, model: Any):
        super().__init__()
        self.model = model
        self.input_names: list[str] = ["input_ids", "attention_mask", "token_type_ids"]

    def forward(self, *args: torch.Tensor) -> torch.Tensor:
        return self.model(**dict(zip(self.input_names, args))).logits
