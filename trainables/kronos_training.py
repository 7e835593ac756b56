"""Kronos fine-tuning: the two stages' losses, optimisers, precision and val-loss checkpoint choice.

The recipe is upstream's (shiyu-coder/Kronos `finetune/train_tokenizer.py`, `train_predictor.py`,
`config.py`); where this differs, the comment at the difference says why.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
import torch.nn.functional as F
from kronos_finance._vendor.kronos_model import Kronos, KronosTokenizer

from trainables.adapter import check_loss
from trainables.foundation import Board, autocast

# Upstream `train_model` of each script: the tokenizer's AdamW takes lr and weight decay only, so
# torch's default betas (0.9, 0.999); the predictor's passes betas (0.9, 0.95). config.py: weight
# decay 0.1 for both; grad-norm clip 2.0 (tokenizer) and 3.0 (predictor).
OPTIMISER = {"tokenizer": {"weight_decay": 0.1}, "predictor": {"betas": (0.9, 0.95), "weight_decay": 0.1}}
GRAD_CLIP = {"tokenizer": 2.0, "predictor": 3.0}


def fp32(x: torch.Tensor):
    """Autocast off around the tokenizer, whatever encloses it: upstream runs it in fp32 (no
    autocast in finetune/ or model/), and bf16 rounds the decoded close enough to flip small moves."""
    return torch.autocast(x.device.type, enabled=False)


# ---------------------------------------------------------------------------- losses


def tokenizer_losses(tokenizer: KronosTokenizer, x: torch.Tensor, _stamp: torch.Tensor) -> dict[str, torch.Tensor]:
    """Upstream stage 1: (coarse + full reconstruction MSE + BSQ loss) / 2."""
    with fp32(x):
        (z_pre, z), bsq_loss, _, _ = tokenizer(x)
        recon = F.mse_loss(z_pre, x) + F.mse_loss(z, x)
    return {"loss": (recon + bsq_loss) / 2, "recon_loss": recon, "bsq_loss": bsq_loss}


def tokenizer_val_loss(
    tokenizer: KronosTokenizer, x: torch.Tensor, _stamp: torch.Tensor, *, first: int
) -> torch.Tensor:
    """Full reconstruction MSE of rows `first`.. only (the forecast targets; the encoder and decoder
    are causal). Upstream scores every row of its val windows, whose lookback is in-sample."""
    with fp32(x):
        (_, z), _, _, _ = tokenizer(x)
        return F.mse_loss(z[:, first:], x[:, first:])


def predictor_losses(
    model: Kronos, x: torch.Tensor, stamp: torch.Tensor, *, tokenizer: KronosTokenizer
) -> dict[str, torch.Tensor]:
    """Stage 2: next-token cross-entropy (s1 and s2 halves) on the frozen tokenizer's codes."""
    with torch.no_grad(), fp32(x):
        s1, s2 = tokenizer.encode(x, half=True)
    # Teacher forcing conditions the s2 head on the true next s1 code, p(s2 | s1, past), the
    # factorisation the sampler uses. Upstream's train_predictor.py calls model() without it,
    # which conditions on an s1 code drawn from the model, not the one s2 is paired with.
    s1_logits, s2_logits = model(s1[:, :-1], s2[:, :-1], stamp[:, :-1], use_teacher_forcing=True, s1_targets=s1[:, 1:])
    loss, ce_s1, ce_s2 = model.head.compute_loss(s1_logits, s2_logits, s1[:, 1:], s2[:, 1:])
    return {"loss": loss, "s1_loss": ce_s1, "s2_loss": ce_s2}


def predictor_val_loss(
    model: Kronos, x: torch.Tensor, stamp: torch.Tensor, *, tokenizer: KronosTokenizer, first: int
) -> torch.Tensor:
    """Next-token cross-entropy of the codes of rows `first`.. only, each from earlier tokens only,
    computed as the sampler computes it. Call in eval() mode.

    Upstream validates with `model(...)` in eval(), where the s2 head's cross-attention is not
    causal (their issue #199: s2 at t attends to the token at t + 1, its own target), over every
    position of a window that is mostly in-sample. Here s1 logits come from the causal trunk and
    each s2 from `decode_s2` on the past only, for its last position: exactly the inference path
    (whose single query also skips the cross-attention's RoPE, so a causal full-sequence s2 differs).
    """
    with fp32(x):
        s1, s2 = tokenizer.encode(x, half=True)
    s1_logits, context = model.decode_s1(s1[:, :-1], s2[:, :-1], stamp[:, :-1])
    s2_logits = [model.decode_s2(context[:, :row], s1[:, row : row + 1])[:, -1:] for row in range(first, x.size(1))]
    loss, _, _ = model.head.compute_loss(
        s1_logits[:, first - 1 :], torch.cat(s2_logits, dim=1), s1[:, first:], s2[:, first:]
    )
    return loss


# ---------------------------------------------------------------------------- loop


def _one_cycle(steps: int) -> Callable[[int], float]:
    """LR factor: linear warm-up from 0.1 over ~3 % of the steps, cosine decay to 0 (upstream's
    OneCycleLR(pct_start=0.03, div_factor=10), but well defined for a handful of steps)."""
    warm = max(1, round(0.03 * steps))

    def factor(step: int) -> float:
        if step < warm:
            return 0.1 + 0.9 * step / warm
        return float(0.5 * (1 + np.cos(np.pi * (step - warm) / max(1, steps - warm))))

    return factor


def train_stage(
    name: str,
    module: torch.nn.Module,
    losses: Callable[..., dict[str, torch.Tensor]],
    val_loss: Callable[..., torch.Tensor],
    batches: Callable[[], tuple[torch.Tensor, torch.Tensor]],
    val: tuple[torch.Tensor, torch.Tensor] | None,
    steps: int,
    lr: float,
    board: Board,
    device: str,
    validated: Callable[[int, float], None] | None = None,
) -> dict[str, float]:
    """AdamW steps on `module` (stage `name`'s upstream settings); per-step losses and ~10 val
    losses go to `board` under `name/` (and to `validated(step, loss)`). Like upstream, the weights
    with the best val loss are kept (`<name>_best_step`: the steps taken by then); no `val`: the last."""
    params = [p for p in module.parameters() if p.requires_grad]
    optimiser = torch.optim.AdamW(params, lr=lr, **OPTIMISER[name])
    schedule = torch.optim.lr_scheduler.LambdaLR(optimiser, _one_cycle(steps))
    every, best, best_step, best_state, facts = max(1, steps // 10), float("inf"), 0, None, {}
    for step in range(steps):
        module.train()
        with autocast(device):
            parts = losses(module, *batches())
        check_loss(parts["loss"], f"{name} step {step}")
        optimiser.zero_grad(set_to_none=True)
        parts["loss"].backward()
        torch.nn.utils.clip_grad_norm_(params, GRAD_CLIP[name])
        board.add(f"{name}/learning_rate", optimiser.param_groups[0]["lr"], step)
        optimiser.step()
        schedule.step()
        for key, value in parts.items():
            board.add(f"{name}/{'train_loss' if key == 'loss' else key}", float(value.detach()), step)
        facts[f"{name}_train_loss"] = float(parts["loss"].detach())
        if val is not None and ((step + 1) % every == 0 or step == steps - 1):
            loss = evaluate(module, val_loss, val, device)
            board.add(f"{name}/val_loss", loss, step)
            if validated is not None:
                validated(step + 1, loss)
            if loss < best:
                best, best_step = loss, step + 1
                best_state = {k: v.detach().cpu().clone() for k, v in module.state_dict().items()}
    if best_state is not None:
        module.load_state_dict(best_state)
        # The steps taken when the kept weights were (what a refit without a val window trains for).
        facts.update({f"{name}_best_val_loss": best, f"{name}_best_step": float(best_step)})
    module.eval()
    return facts


def evaluate(module: torch.nn.Module, loss: Callable[..., torch.Tensor], val: tuple, device: str) -> float:
    """`loss` on the val windows, in eval() mode (no dropout) and without gradients."""
    module.eval()
    with torch.no_grad(), autocast(device):
        return float(loss(module, *val))
