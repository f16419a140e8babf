"""Per-head token-norm statistics of one batch, reduced on the device in float32."""

from __future__ import annotations

import torch

from headact.store.layout import STATS

N_STATS = len(STATS)


def gram_matrices(weight_in_out: torch.Tensor, num_heads: int) -> torch.Tensor:
    """G_h = W_O^h W_O^hᵀ, [heads, d_head, d_head] in float32, from a weight laid out [in, out]."""
    w = weight_in_out.detach().to(torch.float32)
    per_head = w.reshape(num_heads, w.shape[0] // num_heads, w.shape[1])
    return per_head @ per_head.transpose(1, 2)


def norm_factors(weight_in_out: torch.Tensor, num_heads: int) -> torch.Tensor:
    """F_h with F_h F_hᵀ = G_h = W_O^h W_O^hᵀ, [heads, d_head, d_head] in float32 on the CPU.

    ‖z W_O^h‖ = ‖z F_h‖ for every z: the out site's norms then cost one d_head-wide matmul
    per token and head and are sums of squares (never negative), where z G_h zᵀ would need
    a second contraction and a clamp.
    """
    gram = gram_matrices(weight_in_out, num_heads).to("cpu", torch.float64)
    values, vectors = torch.linalg.eigh(gram)
    return (vectors * values.clamp_min(0.0).sqrt().unsqueeze(-2)).to(torch.float32)


def token_norms(z: torch.Tensor, factor: torch.Tensor | None) -> torch.Tensor:
    """‖y_{h,t}‖ as [batch, tokens, heads]: of z itself, or of z W_O^h through `factor`."""
    if factor is not None:
        z = torch.einsum("bthd,hde->bthe", z, factor)
    return torch.linalg.vector_norm(z, dim=-1)


def masked_norm_stats(norms: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """[batch, stats, heads]: sum, sumsq, first, last, max of ‖y‖ over the counted tokens.

    `norms` is [batch, tokens, heads]; `mask` is bool [batch, tokens]. Pad positions are
    selected away with `where`, never multiplied, so a NaN there cannot leak.
    """
    sq = norms.square()
    keep = mask.unsqueeze(-1)
    zero = torch.zeros((), dtype=sq.dtype, device=sq.device)
    total = torch.where(keep, norms, zero).sum(1)
    total_sq = torch.where(keep, sq, zero).sum(1)
    peak = torch.where(keep, norms, torch.full((), float("-inf"), device=sq.device)).amax(1)
    as_int = mask.to(torch.int8)
    first_pos = as_int.argmax(1)
    last_pos = mask.shape[1] - 1 - as_int.flip(1).argmax(1)
    heads = sq.shape[-1]
    first = norms.gather(1, first_pos.view(-1, 1, 1).expand(-1, 1, heads)).squeeze(1)
    last = norms.gather(1, last_pos.view(-1, 1, 1).expand(-1, 1, heads)).squeeze(1)
    return torch.stack((total, total_sq, first, last, peak), dim=1)
