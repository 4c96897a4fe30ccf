"""Append one training run to ``weights/training.json``, the model's cumulative record.

    PYTHONPATH=. python scripts/record_training.py RUN_DIR --command "..." --hardware "..." \
        --data "..." [--strangers-bpd 1.16] [--wall-minutes 110] [--record weights/training.json]

Run directories are lost between machines, so what a run taught the shipped model is
kept here, in git: images seen over all runs, wall time, hardware and the validation
curve against *cumulative* images seen (a run continued with ``--init-from`` logs its
own images from 0). Call it once per run whose model is committed.

The wall time is read from the log's validations when it has two or more: from the
first to the last, plus the stretch before the first at the same pace. That pace is
wrong for a run that was starved of CPU for part of its time, and a run with a single
validation has no pace at all, so ``--wall-minutes`` gives it (the run's ``--minutes``);
with one validation it is required.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", help="run directory with log.jsonl")
    parser.add_argument("--record", default="weights/training.json")
    parser.add_argument("--command", required=True)
    parser.add_argument("--hardware", required=True)
    parser.add_argument("--data", required=True)
    parser.add_argument("--strangers-bpd", type=float)
    parser.add_argument("--storage", default="float32",
                        help="dtype of the shipped weights (float16 up to model v14)")
    parser.add_argument("--wall-minutes", type=float,
                        help="the run's wall time, when the log cannot tell it (see above)")
    args = parser.parse_args()

    path = Path(args.record)
    record = json.loads(path.read_text())
    log = [json.loads(line) for line in (Path(args.run) / "log.jsonl").read_text().splitlines()]
    if not log:
        raise SystemExit(f"{args.run}/log.jsonl is empty")
    config = json.loads((Path(args.run) / "model" / "glow.json").read_text())
    if record.get("config") not in (None, config):
        raise SystemExit(f"{args.record} records a model of another config: start a new record")
    before = int(record.get("images_seen", 0))
    if args.wall_minutes is not None:
        minutes = args.wall_minutes
    elif len(log) < 2:
        raise SystemExit(f"{args.run}/log.jsonl has one validation, so no pace to tell the "
                         "run's wall time: pass --wall-minutes")
    else:
        # from the run's start (one validation interval before the first logged one, at
        # the same pace) to its last validation
        first, last = log[0], log[-1]
        pace = (last["time"] - first["time"]) / (last["images_seen"] - first["images_seen"])
        minutes = (last["time"] - first["time"] + first["images_seen"] * pace) / 60
    run = {
        "date": time.strftime("%Y-%m-%d", time.gmtime(log[-1]["time"])),
        "command": args.command,
        "hardware": args.hardware,
        "data": args.data,
        "images_seen": int(log[-1]["images_seen"]),
        "wall_minutes": round(minutes, 1),
        "validation_bpd": round(log[-1]["val_bpd"], 4),
    }
    if args.strangers_bpd is not None:
        run["strangers_bpd"] = args.strangers_bpd
    curve = record.get("validation_curve", {})
    for row in log:
        curve[str(before + int(row["images_seen"]))] = round(row["val_bpd"], 4)
    record.update({
        "config": config,
        "storage": args.storage,
        "images_seen": before + run["images_seen"],
        "wall_minutes": round(record.get("wall_minutes", 0) + run["wall_minutes"], 1),
        "validation_bpd": run["validation_bpd"],
        "validation_curve": curve,
        "runs": [*record.get("runs", []), run],
    })
    if args.strangers_bpd is not None:
        record["strangers_bpd"] = args.strangers_bpd
    path.write_text(json.dumps(record, indent=2) + "\n")
    print(f"{path}: {record['images_seen']} images over {len(record['runs'])} runs, "
          f"{record['wall_minutes']:.0f} minutes, validation {record['validation_bpd']:.4f}")


if __name__ == "__main__":
    main()
