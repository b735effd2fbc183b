"""Analyzers: pure functions from arrays to named result records.

They never import torch, h5py or matplotlib, never print and never read files; long runs
are analysed chunk by chunk and joined with :func:`concat_rows`.
"""

from __future__ import annotations

from gradscope.analysis.examplewise import examplewise_profile
from gradscope.analysis.fit import (
    dead_coordinates,
    epsilon_check,
    ever_nonzero,
    ever_zero,
    fit_misfit,
    gradient_snr,
    law_curves,
    law_scale,
    noncentral_fit,
    normalized_update,
    reference_law,
    select_fit_layers,
    select_fit_steps,
    two_point_check,
    update_fit,
    update_moments,
)
from gradscope.analysis.layers import LayerGroups, NamedLayers, layer_groups, named_layers
from gradscope.analysis.nonfinite import nonfinite_summary
from gradscope.analysis.randomness import (
    cosine_randomness,
    momentum_note,
    significance_trend,
    sqrt_log_threshold,
)
from gradscope.analysis.ranges import stepsize_range
from gradscope.analysis.results import (
    EpsilonCheck,
    ExamplewiseProfile,
    FitMisfit,
    LawCurves,
    NoncentralFit,
    NonfiniteSummary,
    RandomnessResult,
    SignificanceTrend,
    StepLength,
    StepsizeProfile,
    StepsizeRange,
    TwoPointCheck,
    UpdateFit,
    UpdateMoments,
    concat_rows,
    take_rows,
    thin_index,
)
from gradscope.analysis.steplength import step_length
from gradscope.analysis.stepsizes import layer_compactness, stepsize_profile
from gradscope.analysis.verdicts import (
    compare_step_length_verdicts,
    compare_stepsize_verdicts,
    epsilon_verdict,
    fit_verdict,
    nonfinite_verdict,
    randomness_verdict,
    range_verdict,
    step_length_verdict,
    stepsize_verdict,
)

__all__ = [
    "EpsilonCheck",
    "ExamplewiseProfile",
    "FitMisfit",
    "LayerGroups",
    "NamedLayers",
    "LawCurves",
    "NoncentralFit",
    "NonfiniteSummary",
    "RandomnessResult",
    "SignificanceTrend",
    "StepLength",
    "StepsizeProfile",
    "StepsizeRange",
    "TwoPointCheck",
    "UpdateFit",
    "UpdateMoments",
    "compare_step_length_verdicts",
    "compare_stepsize_verdicts",
    "concat_rows",
    "cosine_randomness",
    "dead_coordinates",
    "epsilon_check",
    "epsilon_verdict",
    "ever_nonzero",
    "ever_zero",
    "examplewise_profile",
    "fit_misfit",
    "fit_verdict",
    "gradient_snr",
    "law_curves",
    "law_scale",
    "layer_compactness",
    "layer_groups",
    "momentum_note",
    "named_layers",
    "noncentral_fit",
    "nonfinite_summary",
    "nonfinite_verdict",
    "normalized_update",
    "randomness_verdict",
    "range_verdict",
    "reference_law",
    "select_fit_layers",
    "select_fit_steps",
    "significance_trend",
    "step_length",
    "step_length_verdict",
    "stepsize_profile",
    "sqrt_log_threshold",
    "stepsize_range",
    "stepsize_verdict",
    "take_rows",
    "thin_index",
    "two_point_check",
    "update_fit",
    "update_moments",
]
