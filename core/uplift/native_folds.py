"""The native backend's pass over the cross-fitting folds: every needed learner of
:mod:`core.uplift.native_learners` fitted once per training fold (and bag), folds in threads.

Two phases per fold: (1) halves, bootstrap weights and the propensity classifiers; (2) per head,
the outcome models and every learner's later stages, with their test-fold predictions.  The two
heads of a fold run concurrently in phase 2, so phase 1 makes the propensity predictions once.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import numpy as np

from ..evaluation.pseudo import CLIP
from .native import PATIENCE, SEARCH, Binned, predict_threads, split_halves
from .native_learners import NATIVE_LEARNERS, fit_head, fit_propensity


class NativeEffects:
    """One fold (and bag) of a native learner: ``predict(x)`` gives (n × arms−1) effects."""

    def __init__(self, head_fit, propensity_fit, learner: str):
        self.head_fit = head_fit
        self.propensity_fit = propensity_fit
        self.learner = learner

    def predict(self, x: np.ndarray) -> np.ndarray:
        g = self.propensity_fit.predict(x) if self.learner == "x" else None
        return self.head_fit.effects(self.learner, x, g)


def compact(models: dict) -> None:
    """Drop from native fold models what their learner does not need to predict."""
    for fold_models in models.values():
        for bag in fold_models:
            for m in bag:
                if isinstance(m, NativeEffects):
                    m.head_fit.drop_except(m.learner)
                    if m.learner != "x":
                        m.propensity_fit = None


def tuning_summary(configs: list[str], tuned: bool, fixed: dict | None) -> dict:
    """One head's LightGBM complexity: the configuration most folds chose, and its settings."""
    if not tuned:
        keep = ("num_leaves", "learning_rate", "min_child_samples", "reg_lambda", "subsample", "colsample_bytree")
        return {"mode": "fixed", "chosen": "fixed", "per_fold": configs,
                "params": {**{k: fixed["regressor"][k] for k in keep if k in fixed["regressor"]},
                           "n_estimators": fixed["rounds"]}}
    chosen = max(set(configs), key=lambda c: (configs.count(c), -list(SEARCH).index(c)))
    return {"mode": "auto", "search": list(SEARCH), "per_fold": configs, "chosen": chosen,
            "params": {**SEARCH[chosen], "n_estimators": f"early stopping (patience {PATIENCE})"}}


def propensity_phase(data, t, train, test, probe_rows, wanted, tuned, seed, fold, bag, bootstrap, fixed, step):
    """Phase 1 of a training fold: halves, bootstrap weights, the propensity classifiers and
    their predictions (made here once: phase 2's tasks of the two heads run concurrently)."""
    x = data.x
    n_arms = int(t.max()) + 1
    halves = split_halves(train, t, [seed, fold, bag])
    weight = None
    if bootstrap:  # a bootstrap refit: multinomial counts of the training rows as weights
        rng = np.random.default_rng([seed, fold, bag, 1])
        weight = np.zeros(len(t))
        weight[train] = rng.multinomial(len(train), np.full(len(train), 1.0 / len(train)))
    step("propensity")
    fit, g_cross = None, None
    if tuned or len(wanted) > 1 or "x" in wanted or "dr" in wanted:
        fit = fit_propensity(data, t, train, halves, tuned=tuned, seed=seed, cross="dr" in wanted,
                             fixed_params=fixed and fixed["classifier"], rounds=fixed and fixed["classifier_rounds"])
        if "dr" in wanted:
            in_a = np.isin(train, halves[0])
            g_cross = np.clip(np.column_stack([m.predict_cross(x, train, in_a) for m in fit.models]), CLIP, 1 - CLIP)
    g_test = fit.predict(x[test]) if fit else np.full((len(test), n_arms - 1), 0.5)
    g_probe = fit.predict(x[probe_rows]) if fit and len(wanted) > 1 else None
    return {"halves": halves, "weight": weight, "propensity": fit, "g_cross": g_cross, "g_test": g_test,
            "g_probe": g_probe}


def head_phase(data, t, y, head, test, wanted, tuned, seed, fixed, probe_rows, fold_state, step):
    """Phase 2: one head of one training fold, every wanted learner; test-fold predictions."""
    x = data.x
    g_test = fold_state["g_test"]
    fit = fit_head(data, y, t, fold_state["halves"], wanted, tuned=tuned, seed=seed, g_cross=fold_state["g_cross"],
                   fixed_params=fixed and fixed["regressor"], rounds=fixed and fixed["rounds"],
                   weight=fold_state["weight"], step=lambda text: step(f"{head} head · {text}"))
    # the outcome predictions feed auto's selection (and the T-learner); one other learner skips them
    mu = fit.outcomes(x[test]) if len(wanted) > 1 or wanted == ["t"] else None
    out = {"fit": fit, "q": g_test, "mu": mu, "effects": {name: fit.effects(name, x[test], g_test, mu) for name in wanted},
           "probe": {}}
    if head == "value" and len(wanted) > 1:  # fold-to-fold stability, for auto's comparison
        out["probe"] = {name: fit.effects(name, x[probe_rows], fold_state["g_probe"]) for name in wanted}
    return out


def fit_native(model, x, t, outcomes, segments, probes, tracker) -> dict:
    """Every learner ``model`` needs (its learner, or auto's native candidates) in one pass over
    the folds of ``model._splits``, on ``model.n_jobs`` threads.

    One learner: returns its result (``learner``, ``models``, ``oof``, ``oof_bags``, ``tuning``).
    Auto: returns every candidate's ``effects``, ``oof_bags``, ``probe`` and ``models`` (by
    learner), the out-of-fold outcome predictions ``mu``, propensities ``q`` and the ``tuning``,
    for :meth:`core.uplift.model.UpliftModel._select`.
    """
    auto = model.learner == "auto"
    wanted = [c for c in model.candidates if c in NATIVE_LEARNERS] if auto else [model.learner]
    n, n_arms = len(t), len(model.labels_)
    tuned = model.tuning == "auto"
    data = Binned(x, model.cat_idx_, arm=t if "s" in wanted else None, reuse_bins=model.reuse_bins)
    fixed = None
    if not tuned:
        from lightgbm import LGBMClassifier, LGBMRegressor  # deferred: lightgbm is slow to import

        smallest_arm = int(np.bincount(t, minlength=n_arms).min()) * (model.folds - 1) // model.folds
        sk = {**model._lgbm_params(smallest_arm // max(len(segments), 1)), "n_jobs": 1}
        fixed = {"regressor": LGBMRegressor(**sk)._process_params(stage="fit"),
                 "classifier": LGBMClassifier(**{**sk, "n_estimators": min(sk["n_estimators"], 150)})._process_params(stage="fit"),
                 "rounds": sk["n_estimators"], "classifier_rounds": min(sk["n_estimators"], 150)}
    bags = max(model.bagging, 1)
    stages = (1 if tuned else 0) + 1 + sum(s in wanted for s in ("x", "dr", "s"))
    tracker.plan(len(segments) * model.folds * bags * (1 + len(outcomes) * stages))
    tasks = [(seg, fold, b, train, test) for seg, fold, train, test in model._splits(segments, t) for b in range(bags)]

    def where(task):
        seg, fold, b = task[:3]
        return ((f"segment {seg} · " if seg != "all" else "") + f"fold {fold + 1}/{model.folds}"
                + (f" · bag {b + 1}/{bags}" if model.bagging else ""))

    workers = max(int(model.n_jobs), 1)

    def phase1(task):
        predict_threads(1 if workers > 1 else None)
        seg, fold, b, train, test = task
        return propensity_phase(data, t, train, test, probes[seg], wanted, tuned, model.seed, fold, b,
                                bool(model.bagging), fixed, lambda text: tracker.step(f"{where(task)} · {text}"))

    def phase2(job):
        predict_threads(1 if workers > 1 else None)
        task, head, state = job
        return head_phase(data, t, outcomes[head], head, task[4], wanted, tuned, model.seed + task[2], fixed,
                          probes[task[0]], state, lambda text: tracker.step(f"{where(task)} · {text}"))

    with ThreadPoolExecutor(max_workers=workers) as pool:
        pool = pool if workers > 1 else None
        states = tracker.wait(pool, phase1, tasks)
        jobs = [(task, head, state) for task, state in zip(tasks, states) for head in outcomes]
        results = tracker.wait(pool, phase2, jobs)
    effects = {name: {head: np.zeros((n, n_arms - 1)) for head in outcomes} for name in wanted}
    oof_bags = {name: {head: np.zeros((bags, n, n_arms - 1)) for head in outcomes} for name in wanted}
    mu = {head: np.zeros((n, n_arms)) for head in outcomes}
    q = np.zeros((n, n_arms - 1))
    probe = {name: {} for name in wanted}
    models = {name: {} for name in wanted}
    configs = {head: [] for head in outcomes}
    for (task, head, state), res in zip(jobs, results):
        seg, fold, b, train, test = task
        if res["mu"] is not None:
            mu[head][test] += res["mu"] / bags
        configs[head].append(res["fit"].config)
        for name in wanted:
            oof_bags[name][head][b, test] = res["effects"][name]
            effects[name][head][test] += res["effects"][name] / bags
            fold_models = models[name].setdefault((head, seg), [])
            if b == 0:
                fold_models.append([])
            fold_models[-1].append(NativeEffects(res["fit"], state["propensity"], name))
        if head == "value":
            q[test] += res["q"] / bags
            for name, predicted in res["probe"].items():
                probe[name].setdefault(seg, []).append(predicted)
    tuning = {head: tuning_summary(configs[head], tuned, fixed) for head in outcomes}
    if not auto:
        name = wanted[0]
        compact(models[name])
        return {"learner": name, "models": models[name], "oof": effects[name],
                "oof_bags": oof_bags[name] if model.bagging else {}, "tuning": tuning}
    return {"effects": effects, "oof_bags": oof_bags, "mu": mu, "q": q, "probe": probe, "models": models,
            "tuning": tuning}
