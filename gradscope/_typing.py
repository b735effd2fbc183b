"""Shared type aliases."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.floating]
LayerName = str
Step = int
