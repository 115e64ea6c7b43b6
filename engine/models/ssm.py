"""The Mamba-1 selective state-space block, with three ways to run its recurrence.

    h_t = exp(dt_t * A) * h_{t-1} + dt_t * B_t * u_t        y_t = <C_t, h_t> + D * u_t

- `selective_scan_sequential`: the plain loop over time. Obviously right, so it is the reference.
- `selective_scan_stepwise`: what training uses on a CPU (ssm_chunk = 1). The same loop with a
  hand-written backward (a reverse scan): autograd then records one node instead of a dozen per step,
  and each step works on one [b, d, N] slice that stays in cache instead of whole [b, T, d, N] tensors.
- `selective_scan_chunked`: what a GPU wants (ssm_chunk >= 32). Inside a chunk of L steps every h_t is
  a weighted sum of the chunk's inputs with weights exp(A * (Q_t - Q_s)), Q the running sum of dt, so
  the chunk is a few batched tensor ops instead of L Python steps; only chunk ends are carried in a loop.
- `SelectiveSSM.step`: one token at a time from a small state (conv buffer + h), for generation.

Plain PyTorch on purpose (no custom kernels): it runs anywhere the rest of the engine does.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn
from torch.autograd.function import FunctionCtx, once_differentiable


def selective_scan_sequential(
    u: torch.Tensor,
    delta: torch.Tensor,
    A: torch.Tensor,
    B: torch.Tensor,
    C: torch.Tensor,
    D: torch.Tensor,
    h0: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Reference scan. u, delta: [b, T, d]; A: [d, N]; B, C: [b, T, N]; D: [d]; h0: [b, d, N].

    Returns y [b, T, d] and the final state h_T [b, d, N].
    """
    b, T, d = u.shape
    h = u.new_zeros(b, d, A.shape[1]) if h0 is None else h0
    ys = []
    for t in range(T):
        dA = torch.exp(delta[:, t, :, None] * A)  # [b, d, N]
        dBu = (delta[:, t] * u[:, t])[:, :, None] * B[:, t, None, :]
        h = dA * h + dBu
        ys.append((h * C[:, t, None, :]).sum(-1))
    y = torch.stack(ys, dim=1) + u * D
    return y, h


class _StepwiseScan(torch.autograd.Function):
    """The sequential recurrence with its gradient written out, so neither pass builds an autograd graph.

    Backward is the reverse scan: g_t = dL/dh_t = C_t dy_t + a_{t+1} g_{t+1}; from it dx_t = g_t and
    dL/d(dt_t A) = g_t * a_t * h_{t-1}, which give every input's gradient in a few batched products.
    Inside, states are laid out [N, d] (d innermost) and time-major: every broadcast then runs along
    contiguous d, and each step reads and writes one contiguous slice. Forward keeps the decays a_t
    and states h_t ([T, b, N, d] each) for backward.
    """

    @staticmethod
    def forward(
        ctx: FunctionCtx,
        u: torch.Tensor,
        delta: torch.Tensor,
        A: torch.Tensor,
        B: torch.Tensor,
        C: torch.Tensor,
        D: torch.Tensor,
        h0: torch.Tensor | None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        b, T, d = u.shape
        n = A.shape[1]
        At = A.t().contiguous()  # [N, d]: a strided A.t() would make every broadcast 3x slower
        du = delta * u
        a = u.new_empty(b, n, d)
        hs = u.new_empty(T, b, n, d)
        ys = u.new_empty(T, b, 1, d)
        h = u.new_zeros(b, n, d) if h0 is None else h0.transpose(1, 2)
        for t in range(T):
            torch.mul(At, delta[:, t, None, :], out=a).exp_()
            ht = torch.mul(a, h, out=hs[t]).addcmul_(B[:, t, :, None], du[:, t, None, :])
            torch.bmm(C[:, t, None, :], ht, out=ys[t])
            h = ht
        ctx.save_for_backward(u, delta, A, B, C, D, h0, hs)  # type: ignore[arg-type]  # torch keeps a None (h0) as None
        return ys.view(T, b, d).transpose(0, 1) + u * D, hs[T - 1].transpose(1, 2).clone()

    @staticmethod
    @once_differentiable
    def backward(ctx: FunctionCtx, dy: torch.Tensor, dh: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
        u, delta, A, B, C, D, h0, hs = ctx.saved_tensors  # type: ignore[attr-defined]
        T, b, n, d = hs.shape
        At = A.t().contiguous()
        dyT = dy.transpose(0, 1).contiguous()[..., None]  # [T, b, d, 1]
        duT = (delta * u).transpose(0, 1).contiguous()[..., None]
        d_du = u.new_empty(T, b, 1, d)
        ddelta = u.new_empty(T, b, d)
        dB = u.new_empty(T, b, n, 1)
        dC = u.new_empty(T, b, n, 1)
        dA_acc = torch.zeros_like(hs[0])  # sum over t of dt_t * (g_t a_t h_{t-1}), reduced over b at the end
        carry = dh.transpose(1, 2).contiguous()
        # Everything per step on [b, N, d] slices that stay in cache, into buffers made once: a fresh
        # slice per op would cost an allocation (at 128 KB, a page-faulting mmap) each time.
        g, gah, a = torch.empty_like(carry), torch.empty_like(carry), torch.empty_like(carry)
        for t in range(T - 1, -1, -1):
            torch.addcmul(carry, C[:, t, :, None], dyT[t].transpose(1, 2), out=g)  # dL/dh_t
            torch.bmm(B[:, t, None, :], g, out=d_du[t])
            torch.bmm(g, duT[t], out=dB[t])
            torch.bmm(hs[t], dyT[t], out=dC[t])
            torch.mul(
                At, delta[:, t, None, :], out=a
            ).exp_()  # recomputed: cheaper than a saved [T, ...] copy
            torch.mul(g, a, out=carry)  # now dL/dh_{t-1}
            if t == 0 and h0 is None:
                ddelta[0].zero_()
                break
            torch.mul(carry, hs[t - 1] if t else h0.transpose(1, 2), out=gah)  # dL/d(dt_t A)
            dA_acc.addcmul_(gah, delta[:, t, None, :])
            torch.sum(gah.mul_(At), dim=1, out=ddelta[t])
        d_du = d_du.view(T, b, d).transpose(0, 1)
        ddelta = ddelta.transpose(0, 1) + d_du * u
        dA = dA_acc.sum(0).t()
        dB = dB.view(T, b, n).transpose(0, 1)
        dC = dC.view(T, b, n).transpose(0, 1)
        du = d_du * delta + dy * D
        dD = (dy * u).sum((0, 1))
        return du, ddelta, dA, dB, dC, dD, carry.transpose(1, 2) if h0 is not None else None


def selective_scan_stepwise(
    u: torch.Tensor,
    delta: torch.Tensor,
    A: torch.Tensor,
    B: torch.Tensor,
    C: torch.Tensor,
    D: torch.Tensor,
    h0: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """`selective_scan_sequential`'s numbers at a fraction of its cost on a CPU (bench/ssm_speed.py).

    Same shapes; differentiable once (no double backward), which training never needs.
    """
    return _StepwiseScan.apply(u, delta, A, B, C, D, h0)


def selective_scan_chunked(
    u: torch.Tensor,
    delta: torch.Tensor,
    A: torch.Tensor,
    B: torch.Tensor,
    C: torch.Tensor,
    D: torch.Tensor,
    chunk: int,
    h0: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """The same recurrence as `selective_scan_sequential`, computed chunk-parallel.

    Work and memory grow as b * T * chunk * d * N (the in-chunk decay weights) while the Python
    loop shrinks to T / chunk steps: a GPU wants chunks of 32 or more. chunk <= 1 hands over to
    `selective_scan_stepwise`, the fastest form on a CPU. Any chunk gives the same numbers.
    """
    b, T, d = u.shape
    n = A.shape[1]
    L = max(1, min(chunk, T))
    if chunk <= 1:
        return selective_scan_stepwise(u, delta, A, B, C, D, h0)
    pad = (-T) % L
    if pad:
        # dt = 0 means "decay 1, input 0": padded steps leave the state untouched.
        u, delta = F.pad(u, (0, 0, 0, pad)), F.pad(delta, (0, 0, 0, pad))
        B, C = F.pad(B, (0, 0, 0, pad)), F.pad(C, (0, 0, 0, pad))
    nc = (T + pad) // L
    u_c = u.reshape(b, nc, L, d)
    dt_c = delta.reshape(b, nc, L, d)
    B_c = B.reshape(b, nc, L, n)
    C_c = C.reshape(b, nc, L, n)

    # log a_t = dt_t * A, so the log of the decay from step s to step t is A * (Q_t - Q_s).
    Q = dt_c.cumsum(dim=2)  # [b, nc, L, d]
    dBu = (dt_c * u_c).unsqueeze(-1) @ B_c.unsqueeze(-2)  # [b, nc, L, d, N], outer product as a matmul
    decay = torch.exp(Q[..., None] * A)  # [b, nc, L, d, N]: decay of the chunk's entering state
    h = u.new_zeros(b, d, n) if h0 is None else h0
    seg = Q[:, :, :, None, :] - Q[:, :, None, :, :]  # [b, nc, t, s, d]
    future = torch.ones(L, L, dtype=torch.bool, device=u.device).triu(1)[:, :, None, None]
    # Mask s > t before exp: there the exponent is positive and may overflow (inf * 0 = nan).
    w = torch.exp((seg[..., None] * A).masked_fill(future, float("-inf")))
    h_in = (w * dBu[:, :, None]).sum(3)  # [b, nc, t, d, N]: states from in-chunk inputs only
    starts = []
    # unbind, not indexing in the loop: one backward op instead of a zero-filled copy per chunk.
    for a_c, x_c in zip(decay[:, :, -1].unbind(1), h_in[:, :, -1].unbind(1), strict=True):
        starts.append(h)
        h = a_c * h + x_c
    h_all = h_in + decay * torch.stack(starts, dim=1).unsqueeze(2)
    y = (h_all @ C_c.unsqueeze(-1)).squeeze(-1).reshape(b, nc * L, d)[:, :T]
    return y + u[:, :T] * D, h


class SSMState(NamedTuple):
    """What single-step decoding carries between tokens."""

    conv: torch.Tensor
    """[b, d_inner, k-1]: the last k-1 conv inputs (the causal conv's window)."""
    h: torch.Tensor
    """[b, d_inner, N]: the SSM state."""


class SelectiveSSM(nn.Module):
    """Mamba-1 mixer: [b, T, d_model] -> [b, T, d_model], causal.

    Parameter names matter to the optimizer router: `in_proj`, `x_proj`, `out_proj` are the 2-D
    hidden projections Muon may take; `A_log`, `D`, `conv1d`, `dt_proj` stay with AdamW/Lion.
    """

    def __init__(
        self, d_model: int, d_state: int = 16, expand: int = 2, d_conv: int = 4, chunk: int = 32
    ) -> None:
        super().__init__()
        self.d_inner = d_inner = expand * d_model
        self.d_state = d_state
        self.d_conv = d_conv
        self.chunk = chunk
        self.dt_rank = math.ceil(d_model / 16)
        self.in_proj = nn.Linear(d_model, 2 * d_inner, bias=False)
        self.conv1d = nn.Conv1d(d_inner, d_inner, d_conv, groups=d_inner, padding=d_conv - 1, bias=True)
        self.x_proj = nn.Linear(d_inner, self.dt_rank + 2 * d_state, bias=False)
        self.dt_proj = nn.Linear(self.dt_rank, d_inner, bias=True)
        # A = -exp(A_log) = -(1..N) per channel: a spread of memory lengths from the start.
        a = torch.arange(1, d_state + 1, dtype=torch.float32).repeat(d_inner, 1)
        self.A_log = nn.Parameter(torch.log(a))
        self.D = nn.Parameter(torch.ones(d_inner))
        # Mamba's marker: weight decay would pull A toward -1 and D toward 0. An optimizer may honour it.
        self.A_log._no_weight_decay = True  # type: ignore[attr-defined]
        self.D._no_weight_decay = True  # type: ignore[attr-defined]
        self.out_proj = nn.Linear(d_inner, d_model, bias=False)
        self.reset_dt_()

    @torch.no_grad()
    def reset_dt_(self, dt_min: float = 1e-3, dt_max: float = 0.1) -> None:
        """Mamba's dt init: softplus(bias) log-uniform in [dt_min, dt_max], weight U(+-dt_rank^-0.5).

        Public because a model's generic Linear init (N(0, 0.02), zero biases) would erase it: a
        family calls this again after its own init so every step still starts with a useful decay.
        """
        bound = self.dt_rank**-0.5
        self.dt_proj.weight.uniform_(-bound, bound)
        log_dt = torch.rand(self.d_inner) * (math.log(dt_max) - math.log(dt_min)) + math.log(dt_min)
        dt = torch.exp(log_dt).clamp(min=1e-4)
        self.dt_proj.bias.copy_(dt + torch.log(-torch.expm1(-dt)))  # inverse softplus

    def special_param_names(self) -> set[str]:
        """Local names of the tensors Muon must never take."""
        return {"A_log", "D", "conv1d.weight", "conv1d.bias", "dt_proj.weight", "dt_proj.bias"}

    def _ssm_inputs(self, u: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """From the conv output u [..., d_inner]: dt [..., d_inner], A [d_inner, N], B, C [..., N]."""
        dt_r, B, C = self.x_proj(u).split([self.dt_rank, self.d_state, self.d_state], dim=-1)
        delta = F.softplus(self.dt_proj(dt_r))
        A = -torch.exp(self.A_log)
        return delta, A, B, C

    def forward(self, x: torch.Tensor, scan: str = "chunked") -> torch.Tensor:
        """x [b, T, d_model]; `scan` = chunked (training) or sequential (the reference)."""
        T = x.shape[1]
        xi, z = self.in_proj(x).chunk(2, dim=-1)
        u = F.silu(self.conv1d(xi.transpose(1, 2))[..., :T].transpose(1, 2))
        delta, A, B, C = self._ssm_inputs(u)
        # The scan runs in fp32 under bf16/fp16 autocast: exp of long sums of dt*A is where low
        # precision hurts (Mamba does the same); float64 stays float64 for the exactness tests.
        sdt = torch.float32 if u.dtype in (torch.float16, torch.bfloat16) else u.dtype
        args = (u.to(sdt), delta.to(sdt), A.to(sdt), B.to(sdt), C.to(sdt), self.D.to(sdt))
        if scan not in ("chunked", "sequential"):
            raise ValueError(f"scan must be chunked or sequential, got {scan!r}")
        # Autocast would turn the scan's matmuls back into bf16: keep it off for the scan itself.
        with torch.autocast(device_type=u.device.type, enabled=False):
            if scan == "chunked":
                y, _ = selective_scan_chunked(*args, self.chunk)
            else:
                y, _ = selective_scan_sequential(*args)
        return self.out_proj(y.to(z.dtype) * F.silu(z))

    def init_state(
        self, batch: int, device: torch.device | str = "cpu", dtype: torch.dtype | None = None
    ) -> SSMState:
        """The state before the first token: nothing seen yet."""
        dtype = dtype or self.in_proj.weight.dtype
        return SSMState(
            conv=torch.zeros(batch, self.d_inner, self.d_conv - 1, device=device, dtype=dtype),
            h=torch.zeros(batch, self.d_inner, self.d_state, device=device, dtype=dtype),
        )

    def step(self, x: torch.Tensor, state: SSMState) -> tuple[torch.Tensor, SSMState]:
        """One token x [b, d_model] -> (y [b, d_model], next state); O(1) in the sequence length."""
        xi, z = self.in_proj(x).chunk(2, dim=-1)
        window = torch.cat([state.conv, xi[:, :, None]], dim=-1)  # [b, d_inner, k]
        bias = self.conv1d.bias
        assert bias is not None  # built with bias=True
        u = F.silu((window * self.conv1d.weight[:, 0]).sum(-1) + bias)
        delta, A, B, C = self._ssm_inputs(u)
        h = torch.exp(delta[:, :, None] * A) * state.h + (delta * u)[:, :, None] * B[:, None, :]
        y = (h * C[:, None, :]).sum(-1) + self.D * u
        return self.out_proj(y * F.silu(z)), SSMState(conv=window[:, :, 1:], h=h)
