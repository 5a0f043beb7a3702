"""The plain two-model baseline: one LightGBM regressor per arm, score = difference."""

from __future__ import annotations

import numpy as np

from ..features import lgbm_frame


def two_model_scores(train_frame, train_treated, y_train, test_frame, features, seed: int = 0) -> np.ndarray:
    """Fit LightGBM (default settings) on treated and on control rows; score the test rows
    with the difference of the two predictions."""
    from lightgbm import LGBMRegressor  # deferred: lightgbm is slow to import

    x_train, levels = lgbm_frame(train_frame, features)
    x_test, _ = lgbm_frame(test_frame, features, levels)
    treated = np.asarray(train_treated, dtype=bool)
    y_train = np.asarray(y_train, dtype=float)
    models = [LGBMRegressor(random_state=seed, n_jobs=2, verbose=-1).fit(x_train[rows], y_train[rows])
              for rows in (treated, ~treated)]
    return models[0].predict(x_test) - models[1].predict(x_test)
