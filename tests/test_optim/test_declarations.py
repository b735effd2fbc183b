"""Declarations are checked when the class is created: a bad combination never steps."""

from __future__ import annotations

import pytest
import torch

import gradscope.optim as O
from gradscope.optim import _functional as F

BAD = [
    (dict(reduction="layer_after_ema"), r"stepsize = F\.layer_mean_stepsize"),
    (dict(reduction="layer"), r"reduction must be one of"),
    (dict(second_moment="adagrad"), r"second_moment must be one of"),
    (dict(second_moment="yogi", statistic=staticmethod(F.belief_residual)), r"needs statistic"),
    (dict(second_moment="yogi", eps_in_state=True), r"elementwise without eps in the state"),
    (dict(stepsize="adam"), r"StepsizePiece"),
    (dict(statistic=3), r"statistic must be a function"),
    (
        dict(stepsize=F.set_stepsize, reduction="layer_before_ema", eps_outside=False),
        r"'set' needs an elementwise second moment",
    ),
    (dict(stepsize=F.layer_mean_stepsize), r"places no eps outside.*eps_outside = False"),
    (dict(stepsize=F.eve_stepsize), r"Eve's stepsize and its examplewise statistic"),
    (
        dict(statistic=staticmethod(F.examplewise_square), stepsize=F.eve_stepsize),
        r"statistic_is_square = False",
    ),
    (dict(initial_accumulator=-1.0), r"initial_accumulator"),
]


@pytest.mark.parametrize(("attrs", "pattern"), BAD, ids=[p for _, p in BAD])
def test_invalid_declaration_raises_at_class_creation(attrs, pattern):
    with pytest.raises(TypeError, match=pattern):
        type("Bad", (O.AdaptiveOptimizer,), attrs)


def test_every_shipped_declaration_names_a_stepsize_piece():
    """The registry's optimizers all pass the check, each with the piece its rule needs."""
    pieces = {
        O.Adam: F.adam_stepsize,
        O.AdamPlus: F.adam_stepsize,
        O.AdamL: F.layer_mean_stepsize,
        O.AdaBeliefL: F.layer_mean_stepsize,
        O.RAdam: F.rectified_stepsize,
        O.SETAdam: F.set_stepsize,
        O.Eve: F.eve_stepsize,
        O.MSVAG: F.msvag_stepsize,
    }
    for cls, piece in pieces.items():
        assert cls.stepsize is piece
    ok = type("Fine", (O.AdaptiveOptimizer,), dict(stepsize=F.msvag_stepsize, eps_outside=False))
    assert ok.stepsize is F.msvag_stepsize


@pytest.mark.parametrize("name", sorted(O.OPTIMIZERS))
def test_docstring_documents_exactly_the_arguments_the_class_takes(name):
    import inspect
    import re

    cls = O.OPTIMIZERS[name]
    doc = cls.__doc__ or ""
    assert "Args:" in doc, name
    args = doc[doc.index("Args:") :]
    documented = re.findall(r"^ {8}(\w+): ", args, flags=re.M)
    takes = [p for p in inspect.signature(cls.__init__).parameters if p != "self"]
    assert sorted(documented) == sorted(takes), name


def test_layerwise_optimizers_refuse_keywords_they_do_not_document():
    params = [torch.nn.Parameter(torch.zeros(3))]
    for cls in (O.AdamL, O.LAdam, O.AdaBeliefL, O.LAdaBelief):
        with pytest.raises(TypeError, match=r"amsgrad"):
            cls(params, amsgrad=True)
        with pytest.raises(TypeError):
            cls(params, k=3)  # LAida's projection argument
    assert O.LAida(params, k=3).param_groups[0]["k"] == 3
