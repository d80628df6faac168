"""Record the `--json` output of every command on the sample project, to compare two trees.

    python bench/json_outputs.py record --code /path/to/tree --out before.json
    python bench/json_outputs.py record --code . --out after.json
    python bench/json_outputs.py compare before.json after.json   # exit 1 on any difference

`record` plays one fixed scenario with the code of `--code` (PYTHONPATH), each command a real
`python -m app ... --json` subprocess: init, ingest the reference, train (two fast linear
candidates), status, models, a drifted week, drift, its labels, perf, alerts, promote,
rollback, archive, retrain (proposals and a person's retrain), audit, audit verify, lineage,
reproduce, quarantine (a file with a missing column), revalidate, doctor. Values that differ
between any two runs of the same code (clock times, durations, process ids, the temporary
folder, and the audit chain's hashes, which cover the clock times) are replaced by
placeholders before the outputs are stored; everything else must match byte for byte.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
SAMPLE = REPO / "sample_data"

MODELS = """
[models.linear]
kind = "linear"

[models.linear2]
kind = "linear"
C = 0.05
"""

ISO = re.compile(r"\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})?")
VOLATILE_KEYS = re.compile(
    r"(duration|_s$|_ms$|^pid$|elapsed|seconds|^head_hash$|^entry_hash$|^prev_hash$)"
)


def scrub(value: Any, root: str, key: str = "") -> Any:
    """`value` with the run-dependent parts replaced by placeholders."""
    if isinstance(value, dict):
        return {k: scrub(v, root, k) for k, v in value.items()}
    if isinstance(value, list):
        return [scrub(v, root, key) for v in value]
    if isinstance(value, float | int) and not isinstance(value, bool):
        return "<number>" if VOLATILE_KEYS.search(key) else value
    if isinstance(value, str):
        if key and VOLATILE_KEYS.search(key):
            return "<volatile>"
        value = value.replace(root, "<tmp>")
        return ISO.sub("<time>", value)
    return value


def record(code: Path, out: Path) -> None:
    work = Path(tempfile.mkdtemp(prefix="mldeck-json-"))
    env = {
        **os.environ,
        "PYTHONPATH": str(code),
        "MLDECK_ACTOR": "bench",
        "PYTHONHASHSEED": "0",
    }
    env.pop("MLDECK_PROJECT", None)
    outputs: dict[str, Any] = {}
    project = work / "proj"

    def run(label: str, *args: str, cwd: Path = project) -> Any:
        done = subprocess.run(
            [sys.executable, "-m", "app", *args, "--json"],
            cwd=cwd,
            env=env,
            capture_output=True,
            text=True,
        )
        try:
            answer: Any = json.loads(done.stdout) if done.stdout.strip() else None
        except ValueError:
            answer = {"stdout": done.stdout}
        outputs[label] = {
            "exit": done.returncode,
            "answer": scrub(answer, str(work)),
            "stderr": ISO.sub("<time>", done.stderr.replace(str(work), "<tmp>")),
        }
        print(f"{label:<22} exit {done.returncode}", file=sys.stderr)
        return answer

    try:
        run("init", "init", "proj", "--target", "default", "--id", "loan_id", cwd=work)
        (project / "mldeck.toml").write_text((project / "mldeck.toml").read_text() + MODELS)
        shutil.copy(SAMPLE / "reference" / "loans_reference.csv", project / "data" / "incoming")
        run("ingest reference", "ingest")
        run("train", "train")
        run("status", "status")
        run("models", "models")
        week = sorted((SAMPLE / "stream").glob("*"))[-1]
        shutil.copy(week, project / "data" / "incoming")
        run("ingest week", "ingest", str(project / "data" / "incoming" / week.name))
        run("drift", "drift")
        labels = sorted((SAMPLE / "labels").glob("*.csv"))[-1]
        shutil.copy(labels, project / "data" / "labels")
        run("ingest labels", "ingest", str(project / "data" / "labels" / labels.name))
        run("perf", "perf")
        run("alerts", "alerts")
        run("promote", "promote", "2", "--reason", "bench", "--force")
        run("rollback", "rollback", "--reason", "bench")
        run("archive", "archive", "2", "--reason", "bench")
        run("retrain list", "retrain", "--list")
        run("retrain", "retrain", "--reason", "bench")
        bad = project / "data" / "incoming" / "missing_column.csv"
        lines = (SAMPLE / "reference" / "loans_reference.csv").read_text().splitlines()[:50]
        header = lines[0].split(",")
        drop = header.index("annual_income")
        bad.write_text(
            "\n".join(",".join(c for i, c in enumerate(r.split(",")) if i != drop) for r in lines)
            + "\n"
        )
        run("ingest bad", "ingest", str(bad))
        run("quarantine", "quarantine")
        quarantined = outputs["quarantine"]["answer"]
        if isinstance(quarantined, list) and quarantined:
            run("revalidate", "revalidate", str(quarantined[0]["batch_id"]), "--reason", "bench")
        run("lineage", "lineage", "1")
        run("reproduce", "reproduce", "1")
        run("audit", "audit")
        run("audit verify", "audit", "verify")
        run("doctor", "doctor")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    out.write_text(json.dumps(outputs, indent=1, sort_keys=True) + "\n")
    print(f"{len(outputs)} commands recorded in {out}", file=sys.stderr)


def compare(before: Path, after: Path) -> int:
    a = json.loads(before.read_text())
    b = json.loads(after.read_text())
    differ = [k for k in sorted(set(a) | set(b)) if a.get(k) != b.get(k)]
    for label in differ:
        print(f"DIFFERS: {label}")
        print("  before:", json.dumps(a.get(label), sort_keys=True)[:2000])
        print("  after: ", json.dumps(b.get(label), sort_keys=True)[:2000])
    same = len(set(a) | set(b)) - len(differ)
    print(f"{same} identical, {len(differ)} different")
    return 1 if differ else 0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="cmd", required=True)
    rec = sub.add_parser("record")
    rec.add_argument("--code", type=Path, default=REPO)
    rec.add_argument("--out", type=Path, required=True)
    cmp_ = sub.add_parser("compare")
    cmp_.add_argument("before", type=Path)
    cmp_.add_argument("after", type=Path)
    args = parser.parse_args()
    if args.cmd == "record":
        record(args.code.resolve(), args.out)
    else:
        sys.exit(compare(args.before, args.after))


if __name__ == "__main__":
    main()
