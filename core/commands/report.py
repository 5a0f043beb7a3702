"""``report``: the self-contained HTML report of a saved scenario (or of a JSON config)."""

from __future__ import annotations

import json
from pathlib import Path

from ..errors import UserError
from ..io import read_table
from ..report import build_report
from ..workspace import Workspace



def add_arguments(p) -> None:
    p.add_argument("--scenario", metavar="ID", help="a scenario saved in the workspace")
    p.add_argument("--config", metavar="JSON", help='instead: {"data": PATH, "mapping": {...}, "allocation": {...}, …}')
    p.add_argument("--out", required=True, metavar="HTML", help="where to write the report")


def _config(path: str) -> dict:
    try:
        config = json.loads(Path(path).read_text())
    except FileNotFoundError:
        raise UserError(f"--config '{path}' does not exist") from None
    except OSError as exc:  # a folder, no permission…
        raise UserError(f"--config '{path}' cannot be read: {exc.strerror}") from None
    except ValueError as exc:
        raise UserError(f"--config '{path}' is not valid JSON: {exc}") from None
    if "data" not in config or "mapping" not in config:
        raise UserError("--config needs \"data\" (a log file) and \"mapping\" (the column roles)")
    return config


def run(args) -> dict:
    if bool(args.scenario) == bool(args.config):
        raise UserError("give either --scenario ID (from the workspace) or --config JSON")
    workspace = Workspace()
    if args.scenario:
        record = workspace.get_scenario(args.scenario)
        frame, config, title = workspace.load_dataset(record.dataset_id), record.config, record.name
    else:
        config = _config(args.config)
        frame = read_table(config["data"], str_columns=[config["mapping"].get("action", "")])
        title = config.get("title", f"Uplift Studio report: {Path(config['data']).name}")
    text, sections = build_report(frame, config, workspace=workspace, title=title)
    try:
        Path(args.out).write_text(text, encoding="utf-8")
    except OSError as exc:
        raise UserError(f"--out '{args.out}' cannot be written: {exc.strerror}") from exc
    return {"path": args.out, "sections": sections, "bytes": len(text.encode()), "title": title}
