"""The selective SSM: the chunked scan and single-step decoding against the sequential reference loop."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from engine.models.ssm import (
    SelectiveSSM,
    selective_scan_chunked,
    selective_scan_sequential,
    selective_scan_stepwise,
)

torch.set_num_threads(1)


def _scan_inputs(b: int, T: int, d: int, n: int, seed: int = 0) -> tuple[torch.Tensor, ...]:
    """Random float64 scan inputs with a wide spread of decays (dt up to 3, |A| up to 8)."""
    g = torch.Generator().manual_seed(seed)
    f64 = torch.float64
    u = torch.randn(b, T, d, generator=g, dtype=f64)
    delta = torch.rand(b, T, d, generator=g, dtype=f64) * 3
    A = -torch.rand(d, n, generator=g, dtype=f64) * 8
    B = torch.randn(b, T, n, generator=g, dtype=f64)
    C = torch.randn(b, T, n, generator=g, dtype=f64)
    D = torch.randn(d, generator=g, dtype=f64)
    h0 = torch.randn(b, d, n, generator=g, dtype=f64)
    return u, delta, A, B, C, D, h0


@pytest.mark.parametrize("chunk", [1, 3, 8, 37, 64])
def test_chunked_scan_equals_sequential_float64(chunk: int) -> None:
    # T = 37 is prime: every chunk size but 1 and 37 needs the padded last chunk.
    u, delta, A, B, C, D, h0 = _scan_inputs(2, 37, 5, 4)
    y_ref, h_ref = selective_scan_sequential(u, delta, A, B, C, D, h0)
    y, h = selective_scan_chunked(u, delta, A, B, C, D, chunk, h0)
    assert y.shape == y_ref.shape and h.shape == h_ref.shape
    torch.testing.assert_close(y, y_ref, rtol=1e-13, atol=1e-13)
    torch.testing.assert_close(h, h_ref, rtol=1e-13, atol=1e-13)


@pytest.mark.parametrize("chunk", [1, 4])
def test_chunked_scan_gradients_equal_sequential(chunk: int) -> None:
    """Training backpropagates through the chunked scan, so its gradients must be the reference's too."""
    inputs = [t.requires_grad_() for t in _scan_inputs(2, 19, 3, 4, seed=1)]
    w = torch.randn(2, 19, 3, dtype=torch.float64)
    (selective_scan_sequential(*inputs)[0] * w).sum().backward()
    ref = [t.grad.clone() for t in inputs]
    for t in inputs:
        t.grad = None
    u, delta, A, B, C, D, h0 = inputs
    (selective_scan_chunked(u, delta, A, B, C, D, chunk, h0)[0] * w).sum().backward()
    for got, want in zip((t.grad for t in inputs), ref, strict=True):
        torch.testing.assert_close(got, want, rtol=1e-11, atol=1e-11)


@pytest.mark.parametrize("with_h0", [True, False])
def test_stepwise_scan_values_and_every_gradient_equal_sequential_float64(with_h0: bool) -> None:
    """The hand-written backward against autograd through the reference loop, final state included."""
    u, delta, A, B, C, D, h0 = _scan_inputs(3, 23, 5, 4, seed=3)
    inputs = [u, delta, A, B, C, D] + ([h0] if with_h0 else [])
    for t in inputs:
        t.requires_grad_()
    g = torch.Generator().manual_seed(4)
    wy = torch.randn(3, 23, 5, generator=g, dtype=torch.float64)
    wh = torch.randn(3, 5, 4, generator=g, dtype=torch.float64)
    results = []
    for scan in (selective_scan_sequential, selective_scan_stepwise):
        y, h = scan(*inputs)
        ((y * wy).sum() + (h * wh).sum()).backward()
        results.append((y.detach(), h.detach(), [t.grad.clone() for t in inputs]))
        for t in inputs:
            t.grad = None
    (y_ref, h_ref, g_ref), (y, h, grads) = results
    torch.testing.assert_close(y, y_ref, rtol=1e-13, atol=1e-13)
    torch.testing.assert_close(h, h_ref, rtol=1e-13, atol=1e-13)
    for name, got, want in zip(["u", "delta", "A", "B", "C", "D", "h0"], grads, g_ref, strict=False):
        torch.testing.assert_close(got, want, rtol=1e-11, atol=1e-11, msg=f"d{name}")


def test_stepwise_scan_passes_gradcheck() -> None:
    """Finite differences, independent of the reference loop's own autograd."""
    u, delta, A, B, C, D, h0 = (t.requires_grad_() for t in _scan_inputs(2, 6, 3, 2, seed=5))
    assert torch.autograd.gradcheck(selective_scan_stepwise, (u, delta, A, B, C, D, h0))


def test_stepwise_scan_float32_matches_float64_reference() -> None:
    """Training runs float32: the stepwise scan stays as close to the exact answer as the loop does."""
    inputs64 = [t.requires_grad_() for t in _scan_inputs(4, 128, 16, 8, seed=6)]
    inputs32 = [t.detach().float().requires_grad_() for t in inputs64]
    y64, _ = selective_scan_sequential(*inputs64)
    y32, _ = selective_scan_stepwise(*inputs32)
    y64.sum().backward()
    y32.sum().backward()
    torch.testing.assert_close(y32.double(), y64.detach(), rtol=1e-4, atol=1e-4)
    for a, b in zip(inputs32, inputs64, strict=True):
        torch.testing.assert_close(a.grad.double(), b.grad, rtol=1e-3, atol=1e-3)


def test_chunk_one_trains_through_the_stepwise_scan() -> None:
    """ssm_chunk = 1 (the CPU preset) must take the fast path, not the masked chunk code."""
    u, delta, A, B, C, D, _ = (t.requires_grad_() for t in _scan_inputs(1, 5, 2, 2))
    y, _ = selective_scan_chunked(u, delta, A, B, C, D, 1)
    assert type(y.grad_fn).__name__ == "_StepwiseScanBackward"


def test_chunked_scan_survives_strong_decay() -> None:
    """Large dt * |A| (exp of the unmasked future part would overflow) stays finite in float32."""
    u, delta, A, B, C, D, _ = (t.float() for t in _scan_inputs(1, 32, 4, 4, seed=2))
    delta = delta * 40  # dt*A down to about -1000 per step
    y_ref, _ = selective_scan_sequential(u, delta, A, B, C, D)
    for chunk in (16, 1):
        u.grad = None
        y, h = selective_scan_chunked(u.requires_grad_(), delta, A, B, C, D, chunk)
        y.sum().backward()
        assert torch.isfinite(y).all() and torch.isfinite(h).all() and torch.isfinite(u.grad).all()
        torch.testing.assert_close(y, y_ref, rtol=1e-4, atol=1e-4)


def _block(**kw: int) -> SelectiveSSM:
    torch.manual_seed(0)
    return SelectiveSSM(**{"d_model": 16, "d_state": 4, "expand": 2, "d_conv": 4, "chunk": 8, **kw}).double()


def test_block_chunked_forward_equals_sequential_forward() -> None:
    m = _block()
    with torch.no_grad():
        m.dt_proj.bias.fill_(0.5)  # stronger decays than the init, so chunk carries matter
    x = torch.randn(2, 21, 16, dtype=torch.float64)
    torch.testing.assert_close(m(x), m(x, scan="sequential"), rtol=1e-12, atol=1e-12)


def test_single_step_decoding_equals_full_forward() -> None:
    m = _block()
    x = torch.randn(3, 17, 16, dtype=torch.float64)
    full = m(x)
    state = m.init_state(3, dtype=torch.float64)
    steps = []
    for t in range(x.shape[1]):
        y, state = m.step(x[:, t], state)
        steps.append(y)
    torch.testing.assert_close(torch.stack(steps, dim=1), full, rtol=1e-12, atol=1e-12)
    assert state.conv.shape == (3, m.d_inner, m.d_conv - 1)
    assert state.h.shape == (3, m.d_inner, m.d_state)


def test_block_is_causal_under_perturbation() -> None:
    m = _block()
    x = torch.randn(2, 24, 16, dtype=torch.float64)
    base = m(x)
    for j in (0, 7, 8, 23):  # inside a chunk and on chunk boundaries
        x2 = x.clone()
        x2[:, j] += torch.randn(2, 16, dtype=torch.float64)
        out = m(x2)
        torch.testing.assert_close(out[:, :j], base[:, :j], rtol=0, atol=1e-14)
        assert (out[:, j] - base[:, j]).abs().max() > 1e-6, "the perturbed position itself must change"


def test_init_follows_mamba() -> None:
    torch.manual_seed(0)
    m = SelectiveSSM(d_model=40, d_state=16, expand=2, d_conv=4, chunk=8)
    assert m.dt_rank == math.ceil(40 / 16) == 3
    assert m.in_proj.weight.shape == (160, 40) and m.out_proj.weight.shape == (40, 80)
    assert m.x_proj.weight.shape == (3 + 2 * 16, 80)
    assert m.conv1d.weight.shape == (80, 1, 4)
    torch.testing.assert_close(-torch.exp(m.A_log[0]), -torch.arange(1.0, 17.0))
    assert torch.equal(m.D, torch.ones(80))
    dt = F.softplus(m.dt_proj.bias.detach())
    assert dt.min() >= 1e-3 * 0.999 and dt.max() <= 0.1 * 1.001
    # log-uniform: the median of log dt sits near the middle of [log 1e-3, log 0.1]
    assert abs(float(dt.log().median()) - math.log(1e-2)) < 0.8


def test_unknown_scan_name_is_refused() -> None:
    with pytest.raises(ValueError, match="chunked or sequential"):
        _block()(torch.zeros(1, 4, 16, dtype=torch.float64), scan="parallel")
