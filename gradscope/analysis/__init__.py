"""Analyzers: pure functions from arrays to named result records (Rule 6).

They never import torch, h5py or matplotlib, never print and never read files; long runs
are analysed chunk by chunk and joined with :func:`concat_rows`.
"""

from __future__ import annotations

from gradscope.analysis.examplewise import examplewise_profile
from gradscope.analysis.fit import (
    epsilon_check,
    law_curves,
    normalized_update,
    reference_law,
    update_fit,
    update_moments,
)
from gradscope.analysis.randomness import cosine_randomness, momentum_note
from gradscope.analysis.ranges import stepsize_range
from gradscope.analysis.results import (
    EpsilonCheck,
    ExamplewiseProfile,
    LawCurves,
    RandomnessResult,
    StepsizeProfile,
    StepsizeRange,
    UpdateFit,
    UpdateMoments,
    concat_rows,
    take_rows,
    thin_index,
)
from gradscope.analysis.stepsizes import layer_compactness, stepsize_profile

__all__ = [
    "EpsilonCheck",
    "ExamplewiseProfile",
    "LawCurves",
    "RandomnessResult",
    "StepsizeProfile",
    "StepsizeRange",
    "UpdateFit",
    "UpdateMoments",
    "concat_rows",
    "cosine_randomness",
    "epsilon_check",
    "examplewise_profile",
    "law_curves",
    "layer_compactness",
    "momentum_note",
    "normalized_update",
    "reference_law",
    "stepsize_profile",
    "stepsize_range",
    "take_rows",
    "thin_index",
    "update_fit",
    "update_moments",
]
