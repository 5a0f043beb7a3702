"""LightGBM scikit-learn estimators with one set of settings, categoricals kept native.

Used by the EconML backend of the uplift models and by the OPE estimators' outcome models.
"""

from __future__ import annotations


class LGBMFactory:
    """Makes LightGBM regressors and classifiers from ``params``; ``cat_idx`` are the
    categorical columns of the plain matrices they will be fitted on."""

    def __init__(self, params: dict, cat_idx: list[int]):
        self.params = params
        self.cat_idx = cat_idx

    def _categorical(self) -> dict:
        # passed through params: EconML hands LightGBM plain matrices, so the column indices
        # are the only way to keep categoricals native; with none, LightGBM's default applies
        return {"categorical_feature": self.cat_idx} if self.cat_idx else {}

    def regressor(self, **overrides):
        from lightgbm import LGBMRegressor  # deferred: lightgbm is slow to import

        return LGBMRegressor(**{**self.params, **overrides}, **self._categorical())

    def classifier(self, **overrides):
        from lightgbm import LGBMClassifier  # deferred: lightgbm is slow to import

        return LGBMClassifier(**{**self.params, "n_estimators": min(self.params["n_estimators"], 150), **overrides},
                              **self._categorical())
