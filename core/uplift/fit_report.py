"""What one uplift fit did, as the CLI prints it and the workspace records it."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class FitReport:
    """What one fit did: per head, per segment, per fold and bag, seconds; the tuning choice
    per head and, for ``auto``, the learner selection."""

    learner: str
    labels: tuple[str, ...]
    n_rows: int
    seconds: float
    heads: tuple[str, ...]
    folds: int
    bagging: int
    segments: tuple[str, ...]
    tuning: dict = field(default_factory=dict)
    selection: dict | None = None
    ranking: dict | None = None
    notes: tuple[str, ...] = ()

    def to_dict(self) -> dict:
        out = {"learner": self.learner, "labels": list(self.labels), "n_rows": self.n_rows, "seconds": self.seconds,
               "heads": list(self.heads), "folds": self.folds, "bagging": self.bagging, "segments": list(self.segments),
               "tuning": self.tuning}
        if self.selection is not None:
            chosen = next(c for c in self.selection["candidates"] if c["learner"] == self.selection["chosen"])
            out.update(chosen={"learner": self.selection["chosen"], "params": chosen["params"]},
                       criterion=self.selection["criterion"], candidates=self.selection["candidates"],
                       reason=self.selection["reason"], skipped=self.selection["skipped"])
        if self.ranking is not None:
            out["ranking"] = self.ranking
        if self.notes:
            out["notes"] = list(self.notes)
        return out
