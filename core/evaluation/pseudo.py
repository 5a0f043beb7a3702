"""The doubly robust pseudo-outcome: the DR-learner's regression target and the criterion
:mod:`core.evaluation.selection` scores learners by."""

from __future__ import annotations

import numpy as np

# the probability of an offer among its rows and the control's is clipped to [CLIP, 1 − CLIP]
CLIP = 0.01


def dr_pseudo_outcome(y, treated, mu_treated, mu_control, q) -> np.ndarray:
    """ψ for rows of one offer (``treated`` true) and the control: ``μ̂ₖ − μ̂₀ + 1[A=k](Y − μ̂ₖ)/q
    − 1[A=0](Y − μ̂₀)/(1 − q)``, with ``q`` clipped to [:data:`CLIP`, 1 − :data:`CLIP`].
    The DR-learner's target (:mod:`core.uplift.native_learners`), and the selection criterion in
    :mod:`core.evaluation.selection`."""
    y, treated = np.asarray(y, dtype=float), np.asarray(treated).astype(bool)
    q = np.clip(np.asarray(q, dtype=float), CLIP, 1 - CLIP)
    return (mu_treated - mu_control + np.where(treated, (y - mu_treated) / q, 0.0)
            - np.where(treated, 0.0, (y - mu_control) / (1 - q)))
