"""Several trained FNO experts evaluated as one grouped FNO.

A batch of queries routed to several leaves is otherwise evaluated leaf by
leaf, one forward pass per leaf. On small experts (1-D grids, a few dozen
queries per leaf) each pass costs mostly the fixed price of its operations,
so the cost per query grows with the number of leaves. Stacked, the leaves'
experts become the members of one FNO (``n_members`` = number of leaves),
whose layers mix channels within a member only; each leaf's queries are fed
to its own member through a lifting that is block-diagonal in the inputs,
and every pass evaluates all leaves at once.
"""

import copy
import weakref

import torch

from ._fno import _POSITIONAL, FNO
from ._net import Standardized
from ._spectral import _built_from, _versioned_weights, _WeightState

# Attributes an FNO reads in its forward pass; two experts stack when they
# agree on all of them (and on every weight's shape).
_CONFIG = ("n_dim", "factorized", "positional", "symmetric", "residual", "padding", "pooled",
           "n_modes", "n_members")


def _signature(module, hooked=None):
    """What two experts must share to be evaluated as one grouped FNO, or None
    when ``module`` cannot be stacked: a :class:`Standardized` plain
    :class:`FNO` (not a subclass, whose forward pass may differ) with every
    attribute of its forward pass, no hooks (a stacked pass would skip them),
    no inference-mode weights (which keep no version counter to check them
    by); the device and dtype of its weights are read off the lifting. Cheap
    enough to check on every batch; the weights' shapes are compared once,
    by :func:`stack_signature`. ``hooked``, when given, says whether the
    module has hooks, as :func:`_walk` found, so that they are not looked
    for twice.
    """
    if type(module) is not Standardized or type(module.operator) is not FNO:
        return None
    op = module.operator
    if any(not hasattr(op, name) for name in _CONFIG):
        return None
    if _walk(module)[0] if hooked is None else hooked:
        return None
    weight = op.lift.weight
    if weight.is_inference():
        return None
    activations = tuple(
        (type(act), getattr(act, "approximate", None)) for act in (op.act, op.project[1])
    )
    return tuple(getattr(op, name) for name in _CONFIG), activations, weight.device, weight.dtype


def _walk(module):
    """One walk over the module and its submodules: whether any has forward
    hooks, and their parameters and buffers in a fixed order."""
    hooked, tensors = False, []
    for m in module.modules():
        hooked = hooked or bool(m._forward_hooks or m._forward_pre_hooks)
        tensors += [t for t in m._parameters.values() if t is not None]
        tensors += [t for t in m._buffers.values() if t is not None]
    return hooked, tensors


def _convs(op):
    """The FNO's pointwise maps other than the lifting, in a fixed order."""
    inner = list(op.expand) + list(op.contract) if op.residual else list(op.mix)
    return inner + [op.project[0], op.project[2]]


def _spectral_axes(op):
    """The 1-D or full spectral convolutions holding the FNO's Fourier weights."""
    return [axis for layer in op.spectral for axis in getattr(layer, "axes", [layer])]


class StackedExperts:
    """Trained FNO experts (``Standardized`` modules) as one grouped FNO.

    Built from copies of the experts' weights; :meth:`holds_for` tells
    whether the experts still have the weights the copies were made from.

    Parameters
    ----------
    modules : list of Standardized
        The experts' modules, all with the same :func:`_signature`.
    """

    def __init__(self, modules):
        ops = [m.operator for m in modules]
        first = ops[0]
        n_experts, g = len(ops), first.n_members
        width = first.lift.out_channels // g
        n_in = first.lift.in_channels - _POSITIONAL[first.positional] * first.n_dim
        n_out = first.project[2].out_channels // g
        # The initial weights are all overwritten: drawing them must not move
        # the caller's random numbers.
        with torch.random.fork_rng(devices=[]):
            stacked = FNO(
                n_experts * n_in, n_out, (2 * first.n_modes + 1,) * first.n_dim,
                width=width, n_modes=first.n_modes, n_layers=len(first.spectral),
                factorized=first.factorized, positional=first.positional,
                symmetric=first.symmetric, residual=first.residual, padding=first.padding,
                n_members=n_experts * g, pooled=first.pooled,
            )
        stacked.act = copy.deepcopy(first.act)
        stacked.project[1] = copy.deepcopy(first.project[1])
        with torch.no_grad():
            stacked = stacked.to(device=first.lift.weight.device, dtype=first.lift.weight.dtype)
            # Expert e's hidden channels read its own inputs and the coordinates.
            lift = torch.zeros_like(stacked.lift.weight)
            rows = g * width
            for e, op in enumerate(ops):
                block = lift[e * rows : (e + 1) * rows]
                block[:, e * n_in : (e + 1) * n_in] = op.lift.weight[:, :n_in]
                block[:, n_experts * n_in :] = op.lift.weight[:, n_in:]
            stacked.lift.weight.copy_(lift)
            stacked.lift.bias.copy_(torch.cat([op.lift.bias for op in ops]))
            for target, *sources in zip(_convs(stacked), *map(_convs, ops)):
                target.weight.copy_(torch.cat([s.weight for s in sources]))
                target.bias.copy_(torch.cat([s.bias for s in sources]))
            for target, *sources in zip(_spectral_axes(stacked), *map(_spectral_axes, ops)):
                target.weight.copy_(torch.cat([s.weight for s in sources], dim=1))
        self.module = stacked.eval()
        self.n_members = g
        self.stats = [
            torch.cat([getattr(m, name) for m in modules]).unsqueeze(1)
            for name in ("x_shift", "x_scale", "y_shift", "y_scale")
        ]
        self.signature = _signature(modules[0])
        # What the copies were made from: each tensor as the spectral layers'
        # inference factors record it (checked by version, without a copy of
        # its values), and each FNO's training generation (see FNO.train).
        self._sources = [
            _WeightState.of(t, keep_values=False) for m in modules for t in _walk(m)[1]
        ]
        self._generations = [getattr(op, "_generation", 0) for op in ops]
        self._modules = [weakref.ref(m) for m in modules]

    def holds_for(self, modules):
        """True when ``modules`` are the experts this stack was built from,
        unchanged: the same forward-pass attributes and activations and no
        hooks, the same weight tensors at the same address, shape, strides
        and version, and no switch to training mode since."""
        if len(modules) != len(self._modules):
            return False
        if any(ref() is not m for ref, m in zip(self._modules, modules)):
            return False
        tensors = []
        for m in modules:
            hooked, own = _walk(m)
            if _signature(m, hooked) != self.signature:
                return False
            tensors += own
        if any(getattr(m.operator, "_generation", 0) != gen
               for m, gen in zip(modules, self._generations)):
            return False
        if len(tensors) != len(self._sources):
            return False
        with _versioned_weights():
            return all(_built_from(state, t) for state, t in zip(self._sources, tensors))

    def evaluate(self, groups):
        """Each expert on its own queries: ``groups[e]`` is a tensor
        ``(n_e, channels, *grid)`` for expert ``e``; returns their outputs,
        in the same order. Groups are padded with zeros to the largest.

        Returns None when a standardised query is not finite (a float64
        value beyond float32's range): the lifting's zero blocks would turn
        it into NaN for the queries of every other expert padded alongside.
        """
        n_experts = len(groups)
        largest = max(len(x) for x in groups)
        x = groups[0].new_zeros((n_experts, largest) + tuple(groups[0].shape[1:]))
        for e, queries in enumerate(groups):
            x[e, : len(queries)] = queries
        x_shift, x_scale, y_shift, y_scale = self.stats
        x = (x - x_shift) / x_scale
        if not bool(torch.isfinite(x).all()):
            return None
        x = x.transpose(0, 1).reshape((largest, -1) + tuple(x.shape[3:]))
        out = self.module.members(x)  # (largest, experts * members, out, *grid)
        out = out.unflatten(1, (n_experts, self.n_members)).mean(dim=2).transpose(0, 1)
        out = out * y_scale + y_shift
        return [out[e, : len(queries)] for e, queries in enumerate(groups)]


def stack_signature(modules):
    """The common signature of ``modules``, or None when they do not stack
    (their signatures differ, or so do their weights' names and shapes)."""
    signatures = {_signature(m) for m in modules}
    if len(signatures) != 1 or None in signatures:
        return None
    shapes = {tuple((k, tuple(t.shape)) for k, t in m.state_dict().items()) for m in modules}
    if len(shapes) != 1 or any(t.is_inference() for m in modules for t in m.state_dict().values()):
        return None
    return signatures.pop()
