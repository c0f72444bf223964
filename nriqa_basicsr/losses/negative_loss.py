"""HGGT's negative loss (Pos+Neg variant): push the SR output away from a human-Negative GT where that GT
changed the image more than a Positive did (Chen et al., HGGT, CVPR 2023; ``Ours_PosNegGT_Model``)."""

from __future__ import annotations

import torch
from basicsr.losses.loss_util import get_local_weights

from nriqa_basicsr.data.labels import NEGATIVE, POSITIVE

__all__ = ['negative_loss', 'negative_weight_map', 'pick_negative_pairs']


def negative_weight_map(original: torch.Tensor, positive: torch.Tensor, negative: torch.Tensor,
                        n_pos: torch.Tensor, n_neg: torch.Tensor, has_positive: torch.Tensor,
                        num_annotators: int = 3) -> torch.Tensor:
    """HGGT's map ``M (B, 1, H, W)``: ``w_neg = (n_neg/A)·LV3(Σ_c|O−N|)^{3/4}``, set to 0 where
    ``w_pos = (n_pos/A)·LV3(Σ_c|O−P|)^{3/4} ≥ w_neg`` (only for samples with a real positive)."""
    def weight(target: torch.Tensor, votes: torch.Tensor) -> torch.Tensor:
        residual = (original - target).abs().sum(dim=1, keepdim=True)
        return (votes.view(-1, 1, 1, 1) / num_annotators) * get_local_weights(residual, 3).clamp_min(0) ** 0.75

    w_pos, w_neg = weight(positive, n_pos.float()), weight(negative, n_neg.float())
    suppress = (w_pos >= w_neg) & has_positive.view(-1, 1, 1, 1)
    return torch.where(suppress, torch.zeros_like(w_neg), w_neg)


def pick_negative_pairs(labels: torch.Tensor, generator: torch.Generator | None = None
                        ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Per sample: a random effective Negative index and a random Positive (or the original, 0).

    Returns ``(neg_idx, pos_idx, has_negative, has_positive)``; ``neg_idx`` is 0 where there is none.
    """
    def draw(mask: torch.Tensor) -> torch.Tensor:
        weights = mask.double() + (~mask.any(1, keepdim=True)).double() * torch.nn.functional.one_hot(
            torch.zeros(mask.shape[0], dtype=torch.long), mask.shape[1]).double()
        return torch.multinomial(weights, 1, generator=generator).squeeze(1)

    labels = labels.cpu()
    neg, pos = labels == NEGATIVE, labels == POSITIVE
    return draw(neg), draw(pos), neg.any(1), pos.any(1)


def negative_loss(output: torch.Tensor, negative: torch.Tensor, weight_map: torch.Tensor,
                  has_negative: torch.Tensor) -> torch.Tensor:
    """``−mean(|M⊙Î − M⊙N|)`` over samples that have a Negative (0 when none has)."""
    mask = has_negative.to(output.device).view(-1, 1, 1, 1).float()
    diff = (weight_map * mask * (output - negative)).abs()
    return -diff.mean()
