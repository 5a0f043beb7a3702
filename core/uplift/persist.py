"""Saving and loading fitted uplift models, safely.

A model is pickled (LightGBM and EconML objects have no other complete format), so it is only
ever unpickled after proving this app wrote it: the workspace signs every payload with a
secret key that never leaves the workspace file (HMAC-SHA256), and keeps a registry entry.
A model file (``fit --model-out``) is ``MAGIC`` + one JSON header line + the payload; loading it
checks the magic, the header, the registry entry and the signature before unpickling.

Models saved before the uplift package was split by idea name classes at their old homes
(``core.uplift.learners``, ``core.uplift.engine``); :data:`MOVED` sends them to the new ones.
"""

from __future__ import annotations

import hmac
import io
import json
import pickle
from pathlib import Path

from ..design.cold_start import segment_effects
from ..errors import UserError, setting

MAGIC = b"UPLIFT-STUDIO-MODEL v1\n"

# (old module, class) → new module, new class name: the classes a saved model holds
MOVED = {
    ("core.uplift.learners", "UpliftModel"): ("core.uplift.model", "UpliftModel"),
    ("core.uplift.learners", "FitReport"): ("core.uplift.fit_report", "FitReport"),
    ("core.uplift.learners", "_NativeEffects"): ("core.uplift.native_folds", "NativeEffects"),
    ("core.uplift.learners", "_EconMLEffects"): ("core.uplift.econml_backend", "EconMLEffects"),
    ("core.uplift.learners", "_DREffects"): ("core.uplift.econml_backend", "DREffects"),
    ("core.uplift.learners", "_LGBMFactory"): ("core.lgbm", "LGBMFactory"),
    ("core.uplift.engine", "Model"): ("core.uplift.native", "Model"),
    ("core.uplift.engine", "Shifted"): ("core.uplift.native", "Shifted"),
    ("core.uplift.engine", "HeadFit"): ("core.uplift.native_learners", "HeadFit"),
    ("core.uplift.engine", "PropensityFit"): ("core.uplift.native_learners", "PropensityFit"),
    ("core.uplift.direct_ranking", "NumpyScorer"): ("core.uplift.ranking_scorers", "NumpyScorer"),
    ("core.uplift.direct_ranking", "_Design"): ("core.uplift.ranking_scorers", "Design"),
}


class _Unpickler(pickle.Unpickler):
    def find_class(self, module, name):
        return super().find_class(*MOVED.get((module, name), (module, name)))


def _unpickle(payload: bytes):
    """A signed payload's model, its classes found where they live now."""
    return _Unpickler(io.BytesIO(payload)).load()


def save_model(model, log, workspace, scenario_id: str | None = None) -> str:
    """Record a fitted :class:`~core.uplift.model.UpliftModel` in the workspace; return its id.

    The model also keeps the training log's segment-level effects (``cold_start_``: segment
    column and :func:`core.design.cold_start.segment_effects`) for customers it cannot score.
    """
    try:
        model.cold_start_ = (log.columns.segment, segment_effects(log))
    except UserError:
        model.cold_start_ = None
    payload = pickle.dumps(model, protocol=pickle.HIGHEST_PROTOCOL)
    model_id, _ = workspace.save_model(
        payload, dataset_fingerprint=log.data_fingerprint, learner=model.learner,
        params={**model.get_params(), "mapping": log.columns.to_dict(), "features": list(model.features_)},
        metrics=model.report_.to_dict(), seconds=model.report_.seconds, scenario_id=scenario_id)
    return model_id


def load_model(model_id: str, workspace):
    """Load a model from the workspace (its signature is checked first)."""
    return _unpickle(workspace.model_payload(model_id))


def write_model_file(model_id: str, workspace, path: str | Path) -> Path:
    """Export a recorded model as a file that :func:`read_model_file` accepts."""
    path = Path(path)
    payload = workspace.model_payload(model_id)
    header = {"id": model_id, "signature": workspace.sign(payload), "size": len(payload)}
    try:
        path.write_bytes(MAGIC + json.dumps(header).encode() + b"\n" + payload)
    except OSError as exc:
        raise UserError(f"{setting('model_out')} '{path}' cannot be written: {exc.strerror}") from exc
    return path


def _model_file(path: str | Path) -> tuple[str, str, bytes]:
    """A model file's id, signature and payload, refusing what is not a model file."""
    path = Path(path)
    if path.is_dir():
        raise UserError(f"model file '{path}' is a folder; expected a file written by fit {setting('model_out')}")
    if not path.is_file():
        raise UserError(f"model file '{path}' does not exist")
    raw = path.read_bytes()
    if not raw.startswith(MAGIC):
        raise UserError(f"'{path}' is not an Uplift Studio model file; refusing to load it")
    header_line, _, payload = raw[len(MAGIC):].partition(b"\n")
    try:
        header = json.loads(header_line)
        return str(header["id"]), str(header["signature"]), payload
    except (ValueError, KeyError, TypeError):
        raise UserError(f"model file '{path}' has a damaged header; refusing to load it") from None


def model_file_id(path: str | Path) -> str:
    """The workspace id of the model in a model file (``fit --model-out``)."""
    return _model_file(path)[0]


def read_model_file(path: str | Path, workspace):
    """Load a model file, refusing anything this workspace did not write."""
    model_id, signature, payload = _model_file(path)
    if not hmac.compare_digest(signature, workspace.sign(payload)) or not workspace.has_model(model_id, signature):
        raise UserError(f"model file '{path}' was not written by the workspace '{workspace.path}' (or was altered); "
                        "refusing to load it. Fit it again here, or point UPLIFT_STUDIO_WORKSPACE at the workspace that wrote it")
    return _unpickle(payload)
