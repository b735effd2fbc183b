"""Per-example ("examplewise") gradient statistics with ``torch.func``.

Eve (docs/optimizers.md, "Eve") and several recorder quantities need more than the mini-batch
gradient: they need the per-example gradients g_b (b = 1..B) of the per-example loss, or
at least their per-coordinate mean and mean of squares. This module computes them with
``vmap(grad(loss_of_one_example))`` over ``torch.func.functional_call``, which works for
any architecture torch.func supports (residual, attention, recurrent cells), instead of
BackPACK-style per-layer rules.

Two entry points:

* :func:`per_example_grads` returns the full (B, *param.shape) tensors: simple, but it
  holds B copies of the model's gradient.
* :func:`examplewise_moments` streams over chunks of the batch and keeps only sums, so at
  most ``chunk_size`` per-example gradients of the model exist at once. It returns an
  :class:`ExamplewiseMoments` record, from which :func:`layer_stats` and
  :func:`network_stats` derive the variance, GSNR and the batch-size tests of
  Byrd et al. (2012) and Bollapragada et al. (2018) that Cockpit reports.

Batch statistics (BatchNorm in training mode) couple the examples, so per-example
gradients are not defined there: such models raise :class:`UnsupportedLayerError`.
See docs/examplewise.md for the math and for the known limits.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn
from torch.func import functional_call, grad_and_value, vmap

from gradscope.errors import UnsupportedLayerError

__all__ = [
    "ExamplewiseMoments",
    "LayerExamplewiseStats",
    "check_examplewise_support",
    "examplewise_moments",
    "layer_stats",
    "network_stats",
    "per_example_grads",
    "set_grads_from_moments",
    "sq_mean_by_param",
]

LossFn = Callable[[Any, Tensor], Tensor]
"""``loss_fn(outputs, targets)``: the user's mean-reduced loss, e.g. ``F.cross_entropy``."""


# --------------------------------------------------------------------------- records


@dataclass(frozen=True)
class ExamplewiseMoments:
    """Streaming sums of the per-example gradients of one mini-batch.

    All dicts are keyed by the names of ``model.named_parameters()`` (trainable parameters
    only) and hold tensors of the parameter's shape and dtype, on its device.

    Attributes:
        batch_size: B, the number of examples.
        mean: mean_b g_b, which equals the ordinary mini-batch gradient of the mean loss.
        sq_mean: mean_b g_b**2 (elementwise): Eve's examplewise second moment.
        var: unbiased elementwise variance sum_b (g_b - mean)**2 / (B - 1), accumulated
            with the pairwise (Chan et al.) update, which avoids the cancellation of
            ``sq_mean - mean**2``; NaN when B = 1.
        dots: per-example projections <g_b, mean> of each parameter, shape (B,); None when
            ``examplewise_moments(..., projections=False)``.
        loss: mean of the per-example losses (the mini-batch loss), a 0-d tensor.
    """

    batch_size: int
    mean: dict[str, Tensor]
    sq_mean: dict[str, Tensor]
    var: dict[str, Tensor]
    dots: dict[str, Tensor] | None
    loss: Tensor


@dataclass(frozen=True)
class LayerExamplewiseStats:
    """Per-example gradient statistics of one parameter tensor (or of the whole network).

    Every statistic is a 0-d tensor on the parameter's device (no host sync); call
    ``float()`` to read it. Values are NaN where undefined (B = 1, zero gradient).

    Attributes:
        numel: number of coordinates.
        variance: sum_i Var_b g_b[i], unbiased (B/(B-1) correction). Equals the
            trace of the per-example gradient covariance.
        grad_norm_sq: ||gbar||^2, squared norm of the mini-batch gradient.
        gsnr: mean over coordinates with Var_b g_b[i] > 0 of gbar[i]^2 / Var_b g_b[i]
            (Liu et al., 2020).
        norm_test: sqrt(variance / (B ||gbar||^2)), the smallest theta for which the norm
            test of Byrd et al. (2012, eq. 3.9) passes.
        inner_product_test: sqrt(Var_b <g_b, gbar> / (B ||gbar||^4)), the smallest theta
            for which the inner-product test of Bollapragada et al. (2018, eq. 2.6)
            passes; None without projections.
        orthogonality_test: sqrt(Var_b ||g_b - P g_b||^2 / (B ||gbar||^2)) with P the
            projection onto gbar, the smallest nu for which the orthogonality test
            (Bollapragada et al., 2018, eq. 3.3) passes; None without projections.
    """

    numel: int
    variance: Tensor
    grad_norm_sq: Tensor
    gsnr: Tensor
    norm_test: Tensor
    inner_product_test: Tensor | None
    orthogonality_test: Tensor | None


# --------------------------------------------------------------------------- checks


def check_examplewise_support(model: nn.Module) -> None:
    """Raise if a module of ``model`` makes per-example gradients ill-defined or impossible.

    Checked: BatchNorm (any ``_BatchNorm``) in training mode, whose batch statistics couple
    the examples; any norm layer in training mode with ``track_running_stats=True``, whose
    in-place running-statistics update cannot run under ``vmap``.

    Raises:
        UnsupportedLayerError: naming the module and the fix.
    """
    for name, module in model.named_modules():
        label = f"{name or '<root>'} ({type(module).__name__})"
        if isinstance(module, nn.modules.batchnorm._BatchNorm) and module.training:
            raise UnsupportedLayerError(
                f"module {label} is a BatchNorm layer in training mode: its batch statistics "
                "couple the examples, so per-example gradients are ill-defined. Call "
                "model.eval() for the examplewise pass (running statistics are then used), "
                "or replace the layer with GroupNorm or LayerNorm."
            )
        if (
            isinstance(module, nn.modules.batchnorm._NormBase)
            and module.training
            and module.track_running_stats
        ):
            raise UnsupportedLayerError(
                f"module {label} updates its running statistics in place in training mode, "
                "which vmap cannot do per example. Call model.eval() for the examplewise "
                "pass, or construct it with track_running_stats=False."
            )


def _batch_size(batch: tuple[Tensor, ...]) -> int:
    if len(batch) < 2:
        raise ValueError(
            f"expected the batch as (*inputs, targets), at least 2 tensors; got {len(batch)}"
        )
    sizes = []
    for i, t in enumerate(batch):
        if not isinstance(t, Tensor) or t.dim() == 0:
            raise ValueError(
                f"batch element {i} must be a tensor with a leading batch dimension; "
                f"got {type(t).__name__}" + (" of 0 dimensions" if isinstance(t, Tensor) else "")
            )
        sizes.append(t.shape[0])
    if len(set(sizes)) != 1 or sizes[0] == 0:
        raise ValueError(f"batch tensors must share a non-zero leading dimension; got {sizes}")
    return sizes[0]


#: With ``chunk_size=None``, :func:`examplewise_moments` keeps at most this many bytes of
#: per-example gradients at once (all B examples of a small model; fewer for a large one).
AUTO_CHUNK_BYTES = 1 << 30


def _auto_chunk(params: dict[str, Tensor], batch_size: int) -> int:
    """Examples per chunk so that their gradients take at most :data:`AUTO_CHUNK_BYTES`."""
    per_example = sum(p.numel() * p.element_size() for p in params.values())
    return max(1, min(batch_size, AUTO_CHUNK_BYTES // max(per_example, 1)))


def _chunk_size(chunk_size: int | None, batch_size: int) -> int:
    if chunk_size is None:
        return batch_size
    if isinstance(chunk_size, bool) or not isinstance(chunk_size, int) or chunk_size < 1:
        raise ValueError(f"chunk_size must be a positive int or None; got {chunk_size!r}")
    return min(chunk_size, batch_size)


def _chunks(batch: tuple[Tensor, ...], batch_size: int, size: int) -> Iterator[tuple[Tensor, ...]]:
    for start in range(0, batch_size, size):
        yield tuple(t[start : start + size] for t in batch)


# --------------------------------------------------------------------------- vmap core


class _Examplewise:
    """The vmapped ``grad_and_value`` of the one-example loss, bound to one model."""

    def __init__(self, model: nn.Module, loss_fn: LossFn, n_batch: int) -> None:
        check_examplewise_support(model)
        self.model = model
        # Detached: torch.func differentiates w.r.t. these copies, never the live leaves.
        self.params = {k: p.detach() for k, p in model.named_parameters() if p.requires_grad}
        consts = {k: p.detach() for k, p in model.named_parameters() if not p.requires_grad}
        consts.update(model.named_buffers())
        self.consts = consts

        def loss_one(params: dict[str, Tensor], consts: dict[str, Tensor], *example: Tensor):
            one = tuple(t.unsqueeze(0) for t in example)  # a batch of one
            out = functional_call(model, (params, consts), one[:-1])
            loss = loss_fn(out, one[-1])
            if loss.numel() != 1:
                raise ValueError(
                    "loss_fn must reduce to a scalar (use the mean-reduced loss, e.g. "
                    f"reduction='mean'); a batch of one gave shape {tuple(loss.shape)}"
                )
            return loss.reshape(())

        # randomness="different": each example draws its own dropout mask, as in a batch.
        self._fn = vmap(
            grad_and_value(loss_one),
            in_dims=(None, None, *([0] * n_batch)),
            randomness="different",
        )

    def __call__(self, chunk: tuple[Tensor, ...]) -> tuple[dict[str, Tensor], Tensor]:
        """Per-example gradients (c, *shape) and losses (c,) of one chunk."""
        try:
            return self._fn(self.params, self.consts, *chunk)
        except RuntimeError as err:
            rnn = next(
                (
                    (n, m)
                    for n, m in self.model.named_modules()
                    if isinstance(m, nn.modules.rnn.RNNBase)
                ),
                None,
            )
            if rnn is None:
                raise
            name, module = rnn
            raise UnsupportedLayerError(
                f"module {name or '<root>'} ({type(module).__name__}) cannot run under "
                f"torch.func.vmap in torch {torch.__version__} (fused RNN kernel: {err}). "
                "Unroll the sequence with nn.LSTMCell / nn.GRUCell / nn.RNNCell instead."
            ) from err

    def rng_state(self) -> tuple[Tensor, dict[torch.device, Tensor]]:
        """CPU and CUDA generator states, so that a second pass replays dropout masks."""
        devices = {p.device for p in self.params.values() if p.device.type == "cuda"}
        return torch.get_rng_state(), {d: torch.cuda.get_rng_state(d) for d in devices}

    @staticmethod
    def set_rng_state(state: tuple[Tensor, dict[torch.device, Tensor]]) -> None:
        """Restore a state from :meth:`rng_state`."""
        cpu, cuda = state
        torch.set_rng_state(cpu)
        for device, s in cuda.items():
            torch.cuda.set_rng_state(s, device)


def per_example_grads(
    model: nn.Module, loss_fn: LossFn, *batch: Tensor, chunk_size: int | None = None
) -> dict[str, Tensor]:
    """Per-example gradients of every trainable parameter.

    The per-example loss is ``loss_fn(model(*inputs[b:b+1]), targets[b:b+1])``, so for a
    mean-reduced ``loss_fn`` the mean over b of the result is the mini-batch gradient.

    Args:
        model: the network; buffers and frozen parameters are passed through unchanged,
            parameters with ``requires_grad=False`` get no entry.
        loss_fn: mean-reduced loss ``loss_fn(outputs, targets)``.
        *batch: ``(*inputs, targets)``, each with leading batch dimension B.
        chunk_size: examples per ``vmap`` call (bounds the peak of intermediate
            activations; the result holds all B gradients regardless). None: all at once.

    Returns:
        ``{name: tensor of shape (B, *param.shape)}`` in ``named_parameters()`` order.

    Raises:
        UnsupportedLayerError: BatchNorm in training mode, or a layer torch.func cannot
            vmap (nn.LSTM/GRU/RNN).
        ValueError: malformed batch, chunk_size or loss.
    """
    n = _batch_size(batch)
    size = _chunk_size(chunk_size, n)
    fn = _Examplewise(model, loss_fn, len(batch))
    parts: dict[str, list[Tensor]] = {k: [] for k in fn.params}
    for chunk in _chunks(batch, n, size):
        grads, _ = fn(chunk)
        for k in parts:
            parts[k].append(grads[k])
    return {k: v[0] if len(v) == 1 else torch.cat(v) for k, v in parts.items()}


_ROWWISE_MIN_NUMEL = 1 << 21


def _reduce_chunk(g: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """sum_b g_b, sum_b g_b^2 and the centred sum_b (g_b - mean_c)^2 of one chunk (c, *shape).

    Two equal-valued paths. Vectorized reductions over dim 0 suit accelerators and small
    chunks. On CPU, large (c, *shape) temporaries cost page faults and dim-0 reductions
    vectorize poorly, so a loop of in-place row updates is 3-10x faster there (measured:
    c=256, 65k coordinates, 1 thread: 67 ms against 506 ms).
    """
    c = g.shape[0]
    if g.device.type != "cpu" or g.numel() < _ROWWISE_MIN_NUMEL:
        c_sum = g.sum(0)
        return c_sum, g.square().sum(0), (g - c_sum / c).square().sum(0)
    c_sum, c_sq = g[0].clone(), g[0].square()
    for row in g[1:]:
        c_sum.add_(row)
        c_sq.addcmul_(row, row)
    mean = c_sum / c
    c_m2 = torch.zeros_like(c_sum)
    for row in g:
        d = row - mean
        c_m2.addcmul_(d, d)
    return c_sum, c_sq, c_m2


class _Sums:
    """Running sums over chunks: sum g, sum g^2 and the centred M2 = sum (g - mean)^2."""

    def __init__(self) -> None:
        self.seen = 0
        self.sums: dict[str, Tensor] = {}
        self.sq_sums: dict[str, Tensor] = {}
        self.m2: dict[str, Tensor] = {}
        self.loss_sum: Tensor | None = None

    def add(self, grads: dict[str, Tensor], losses: Tensor) -> None:
        """Fold in one chunk of per-example gradients (c, *shape) and losses (c,)."""
        c, seen = losses.shape[0], self.seen
        for k, g in grads.items():
            c_sum, c_sq, c_m2 = _reduce_chunk(g)
            if seen == 0:
                self.sums[k], self.sq_sums[k], self.m2[k] = c_sum, c_sq, c_m2
            else:
                # Chan et al.: M2 of a union = M2_a + M2_b + delta^2 n_a n_b / (n_a + n_b)
                delta = c_sum / c - self.sums[k] / seen
                self.m2[k] = self.m2[k] + c_m2 + delta.square() * (seen * c / (seen + c))
                self.sums[k] = self.sums[k] + c_sum
                self.sq_sums[k] = self.sq_sums[k] + c_sq
        self.loss_sum = losses.sum() if self.loss_sum is None else self.loss_sum + losses.sum()
        self.seen = seen + c


def _projections(grads: dict[str, Tensor], mean: dict[str, Tensor]) -> dict[str, Tensor]:
    """<g_b, gbar> per parameter, shape (c,), for a chunk of per-example gradients."""
    return {k: g.flatten(1) @ mean[k].flatten() for k, g in grads.items()}


def examplewise_moments(
    model: nn.Module,
    loss_fn: LossFn,
    *batch: Tensor,
    chunk_size: int | None = None,
    projections: bool = True,
) -> ExamplewiseMoments:
    """Mean, mean of squares, variance and projections of the per-example gradients.

    The batch is processed ``chunk_size`` examples at a time and only running sums are
    kept, so with chunk_size < B the per-example gradients of all B examples never exist
    at once (peak: chunk_size x model). By default the chunk is as large as
    :data:`AUTO_CHUNK_BYTES` (1 GiB) of per-example gradients allows: the whole batch
    for small models, a bounded peak for large ones. The result does not depend on the
    chunking beyond rounding.

    The projections <g_b, gbar> need gbar before any g_b is discarded. With one chunk
    they are taken from that chunk directly. With several chunks a second pass recomputes
    the per-example gradients (twice the cost); the generator state is rewound before it,
    so dropout draws the same masks in both passes and sum_b <g_b, gbar> = B ||gbar||^2
    holds. (An ordinary backward for gbar would be cheaper but is only equal to the mean
    of the per-example gradients up to rounding, and not at all under dropout.) Pass
    ``projections=False`` when only Eve's statistic is wanted.

    Args:
        model: the network (see :func:`per_example_grads`).
        loss_fn: mean-reduced loss ``loss_fn(outputs, targets)``.
        *batch: ``(*inputs, targets)``, each with leading batch dimension B.
        chunk_size: examples per ``vmap`` call; None: as many as fit in
            :data:`AUTO_CHUNK_BYTES` of per-example gradients.
        projections: also compute ``dots`` (needed by the inner-product and orthogonality
            tests).

    Returns:
        The :class:`ExamplewiseMoments` of the batch.
    """
    n = _batch_size(batch)
    fn = _Examplewise(model, loss_fn, len(batch))
    size = _auto_chunk(fn.params, n) if chunk_size is None else _chunk_size(chunk_size, n)
    single = size >= n
    start_rng = fn.rng_state() if projections and not single else None

    acc = _Sums()
    last: dict[str, Tensor] = {}
    for chunk in _chunks(batch, n, size):
        grads, losses = fn(chunk)
        acc.add(grads, losses)
        if single:  # keep the only chunk for the projections; otherwise free it now
            last = grads
        del grads, losses

    mean = {k: s / n for k, s in acc.sums.items()}
    sq_mean = {k: s / n for k, s in acc.sq_sums.items()}
    nan = float("nan")
    var = {k: v / (n - 1) if n > 1 else torch.full_like(v, nan) for k, v in acc.m2.items()}

    dots: dict[str, Tensor] | None = None
    if projections:
        if single:
            dots = _projections(last, mean)
        else:
            end_rng = fn.rng_state()
            assert start_rng is not None  # taken above whenever projections need two passes
            fn.set_rng_state(start_rng)
            parts = [_projections(fn(chunk)[0], mean) for chunk in _chunks(batch, n, size)]
            fn.set_rng_state(end_rng)
            dots = {k: torch.cat([p[k] for p in parts]) for k in mean}

    assert acc.loss_sum is not None  # n >= 1 (checked by _batch_size): at least one chunk
    return ExamplewiseMoments(
        batch_size=n, mean=mean, sq_mean=sq_mean, var=var, dots=dots, loss=acc.loss_sum / n
    )


# --------------------------------------------------------------------------- statistics


def _stats(
    batch_size: int,
    numel: int,
    variance: Tensor,
    grad_norm_sq: Tensor,
    gsnr_sum: Tensor,
    gsnr_count: Tensor,
    dots: Tensor | None,
) -> LayerExamplewiseStats:
    b = batch_size
    norm_test = (variance / (b * grad_norm_sq)).sqrt()
    inner = ortho = None
    if dots is not None:
        # Var_b <g_b, gbar>, centred on the sample mean (= ||gbar||^2 up to rounding).
        if b > 1:
            var_proj = (dots - dots.mean()).square().sum() / (b - 1)
        else:
            var_proj = dots.new_tensor(float("nan"))
        inner = (var_proj / (b * grad_norm_sq.square())).sqrt()
        # (1/(B-1)) sum_b ||(I - P)(g_b - gbar)||^2 = variance - Var_b<g_b, gbar>/||gbar||^2,
        # the cancellation-free form of Cockpit's sum||g_b||^2 - sum<g_b, gbar>^2/||gbar||^2.
        var_ortho = (variance - var_proj / grad_norm_sq).clamp(min=0)
        ortho = (var_ortho / (b * grad_norm_sq)).sqrt()
    return LayerExamplewiseStats(
        numel=numel,
        variance=variance,
        grad_norm_sq=grad_norm_sq,
        gsnr=gsnr_sum / gsnr_count,
        norm_test=norm_test,
        inner_product_test=inner,
        orthogonality_test=ortho,
    )


def _gsnr_parts(mean: Tensor, var: Tensor) -> tuple[Tensor, Tensor]:
    """Sum of mean^2/var over coordinates with var > 0, and their count (no host sync)."""
    positive = var > 0
    ratio = torch.where(positive, mean.square() / torch.where(positive, var, 1), 0)
    return ratio.sum(), positive.sum().to(mean.dtype)


def layer_stats(moments: ExamplewiseMoments) -> dict[str, LayerExamplewiseStats]:
    """Per-parameter variance, GSNR and batch-size tests from :class:`ExamplewiseMoments`.

    Each parameter tensor is one layer (docs/optimizers.md, "Conventions"); gbar is that tensor's
    part of the mini-batch gradient. See :class:`LayerExamplewiseStats` for definitions.
    """
    out = {}
    for k, mean in moments.mean.items():
        var = moments.var[k]
        out[k] = _stats(
            moments.batch_size,
            mean.numel(),
            var.sum(),
            mean.square().sum(),
            *_gsnr_parts(mean, var),
            None if moments.dots is None else moments.dots[k],
        )
    return out


def network_stats(moments: ExamplewiseMoments) -> LayerExamplewiseStats:
    """The same statistics for all trainable parameters as one vector (Cockpit's view).

    The whole-network projection <g_b, gbar> is the sum of the per-layer ones, so the
    tests need no extra pass.
    """
    keys = list(moments.mean)
    if not keys:
        raise ValueError("moments hold no parameters")
    parts = [_gsnr_parts(moments.mean[k], moments.var[k]) for k in keys]
    return _stats(
        moments.batch_size,
        sum(moments.mean[k].numel() for k in keys),
        torch.stack([moments.var[k].sum() for k in keys]).sum(),
        torch.stack([moments.mean[k].square().sum() for k in keys]).sum(),
        torch.stack([p[0] for p in parts]).sum(),
        torch.stack([p[1] for p in parts]).sum(),
        None if moments.dots is None else torch.stack([moments.dots[k] for k in keys]).sum(0),
    )


# --------------------------------------------------------------------------- hand-over


def _match(model: nn.Module, named: Mapping[str, Tensor]) -> list[tuple[nn.Parameter, Tensor]]:
    params = dict(model.named_parameters())
    unknown = [k for k in named if k not in params]
    if unknown:
        raise ValueError(f"moments name parameters the model does not have: {unknown}")
    missing = [k for k, p in params.items() if p.requires_grad and k not in named]
    if missing:
        raise ValueError(f"moments lack trainable parameters of the model: {missing}")
    pairs = []
    for k, p in params.items():
        if k in named:
            if named[k].shape != p.shape:
                raise ValueError(
                    f"shape mismatch for {k}: parameter {tuple(p.shape)}, "
                    f"moment {tuple(named[k].shape)}"
                )
            pairs.append((p, named[k]))
    return pairs


def sq_mean_by_param(
    model: nn.Module, moments: ExamplewiseMoments
) -> list[tuple[nn.Parameter, Tensor]]:
    """``(parameter, mean_b g_b**2)`` pairs for ``Eve.set_examplewise(pairs, batch_size)``.

    Raises:
        ValueError: if the moments were computed for a different model.
    """
    return _match(model, moments.sq_mean)


def set_grads_from_moments(model: nn.Module, moments: ExamplewiseMoments) -> None:
    """Set ``p.grad`` to the mini-batch gradient ``moments.mean`` (a copy), overwriting.

    One examplewise pass then serves both the ordinary optimizer step and Eve's
    statistic, with no extra backward.
    """
    for p, mean in _match(model, moments.mean):
        p.grad = mean.detach().clone()
