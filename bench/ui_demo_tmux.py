"""Drive `mldeck demo` for real in a detached tmux session, keyboard only (issue 6).

Starts the demo in a 100x30 tmux pane, waits for the retrain prompt, accepts
it (types a reason, Ctrl+R), waits for the retrain to finish, answers any
later prompt with Dismiss (Ctrl+D) until the quarter is played, promotes the
retrain's challenger on the Models screen (p, a reason, Enter), shows the
Audit screen and quits with q. Each step is asserted by what
is on the screen (`tmux capture-pane -p`), and the captured screens are saved
as evidence in bench/evidence/ui_demo/ (NN_step.txt). Prints how long each
step took.

    python bench/ui_demo_tmux.py [--pace 3] [--keep]

Needs tmux. Exit status 0 when every step was seen on screen.
"""

from __future__ import annotations

import argparse
import os
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
EVIDENCE = REPO / "bench" / "evidence" / "ui_demo"
SESSION = f"mldeck-demo-{os.getpid()}"
SIZE = (100, 30)
EXITED = "[mldeck demo exited"


class StepFailed(AssertionError):
    pass


def tmux(*args: str) -> str:
    return subprocess.run(["tmux", *args], check=True, capture_output=True, text=True).stdout


def screen() -> str:
    return tmux("capture-pane", "-p", "-t", SESSION)


def keys(*names: str) -> None:
    """tmux key names (Enter, Escape, C-r, ...)."""
    tmux("send-keys", "-t", SESSION, *names)


def type_text(text: str) -> None:
    tmux("send-keys", "-t", SESSION, "-l", text)


class Run:
    def __init__(self) -> None:
        self.started = time.monotonic()
        self.saved = 0
        self.timings: list[tuple[str, float]] = []

    def wait_for(
        self, what: str, check: Callable[[str], bool], timeout_s: float, poll_s: float = 0.25
    ) -> str:
        """The screen once `check` holds on it; StepFailed (with the screen saved) if not in time."""
        deadline = time.monotonic() + timeout_s
        while True:
            shown = screen()
            if check(shown):
                return shown
            if time.monotonic() > deadline:
                self.save(f"FAILED_{what.replace(' ', '_')}", shown)
                raise StepFailed(f"not on screen within {timeout_s:g} s: {what}")
            time.sleep(poll_s)

    def save(self, name: str, shown: str) -> None:
        self.saved += 1
        path = EVIDENCE / f"{self.saved:02d}_{name}.txt"
        path.write_text(shown.rstrip() + "\n", encoding="utf-8")

    def step(self, name: str, shown: str) -> None:
        """A step seen on screen: saved, timed, printed."""
        elapsed = time.monotonic() - self.started
        self.timings.append((name, elapsed))
        self.save(name, shown)
        print(f"{elapsed:7.1f} s  {name}", flush=True)


def prompt_open(shown: str) -> bool:
    return "Retrain?" in shown and "Retrain now ^R" in shown


def answer_prompt(run: Run, reason: str, key: str) -> str:
    """Type a reason into the open prompt (once it has the focus) and answer with `key`;
    the screen with the reason typed."""
    time.sleep(0.5)  # the dialog focuses its reason field once mounted
    type_text(reason)
    shown = run.wait_for("the reason typed", lambda s: reason in s, 10)
    keys(key)
    run.wait_for("the prompt answered", lambda s: reason not in s, 30)
    return shown


def registry_rows(shown: str) -> list[tuple[bool, int]]:
    """(is champion, version) of each registry row on the Models screen, top to bottom."""
    found = []
    for line in shown.splitlines():
        match = re.match(r"^│\s*(★)?\s+v(\d+)\s", line[:50])
        if match:
            found.append((match.group(1) is not None, int(match.group(2))))
    return found


def play(args: argparse.Namespace, folder: Path) -> Run:
    env = f"PYTHONPATH={shlex.quote(str(REPO))} MLDECK_ACTOR=demo-driver"
    mldeck = shlex.quote(str(Path(sys.executable).with_name("mldeck")))
    command = (
        f"cd {shlex.quote(str(REPO))} && {env} {mldeck} demo --dir {shlex.quote(str(folder))}"
        f" --pace {args.pace:g}; echo '{EXITED} rc='$?']'; sleep 600"
    )
    width, height = SIZE
    tmux("new-session", "-d", "-s", SESSION, "-x", str(width), "-y", str(height), command)
    run = Run()

    shown = run.wait_for("the UI", lambda s: "Stages" in s and "demo:" in s, 120)
    run.step("ui_up", shown)

    shown = run.wait_for("the retrain prompt", prompt_open, 600)
    if "performance_min" not in shown and "drift" not in shown:
        raise StepFailed("the prompt shows no alert as its evidence")
    run.step("retrain_prompt", shown)

    shown = answer_prompt(run, "live accuracy fell below the floor", "C-r")
    run.step("reason_typed_then_ctrl_r", shown)
    # The retrain's best new version shows as the challenger in the Champion panel.
    accepted = re.compile(r"challenger v(\d+)")
    shown = run.wait_for("the retrain finished", lambda s: accepted.search(s) is not None, 600)
    match = accepted.search(shown)
    assert match is not None
    target = int(match.group(1))  # the challenger, for a person to promote
    run.step("retrain_finished", shown)

    # Until the quarter is played, later weeks may raise new alerts and new prompts:
    # one retrain is enough for this run, so those are dismissed.
    dismissed = 0
    while True:
        shown = run.wait_for(
            "the quarter played, or a prompt",
            lambda s: prompt_open(s) or "the quarter is played" in s,
            600,
        )
        if prompt_open(shown):
            answer_prompt(run, "one retrain is enough for this run", "C-d")
            dismissed += 1
            if dismissed == 1:
                run.step("later_prompt_dismissed", screen())
            continue
        time.sleep(3)  # a proposal made from the last week's alerts shows within a tick
        if not prompt_open(screen()):
            break
    run.step("quarter_played", screen())

    keys("3")
    shown = run.wait_for("the registry", lambda s: any(star for star, _ in registry_rows(s)), 30)
    time.sleep(1)  # the lineage of the highlighted version loads beside it
    shown = screen()
    rows = registry_rows(shown)
    champions = [v for star, v in rows if star]
    if champions != [1] or target not in [v for _, v in rows]:
        raise StepFailed(f"expected v1 champion and challenger v{target}: {rows}")
    run.step("models", shown)

    keys(*["Down"] * [v for _, v in rows].index(target))
    keys("p")
    shown = run.wait_for("the promote dialog", lambda s: f"Promote v{target}" in s, 20)
    type_text("the retrained model beats v1 on recent weeks")
    run.step("promote_dialog", screen())
    keys("Enter")
    shown = run.wait_for(
        f"v{target} champion",
        lambda s: (True, target) in registry_rows(s) and f"-> v{target}" in s,
        60,
    )
    run.step("promoted", shown)

    keys("7")
    shown = run.wait_for(
        "the audit log",
        lambda s: "the retrained model beats v1" in s and "retrain_accept" in s,
        30,
    )
    run.step("audit", shown)

    keys("q")
    shown = run.wait_for("the demo ended", lambda s: EXITED in s, 60)
    if f"{EXITED} rc=0]" not in shown or "The demo project is at" not in shown:
        raise StepFailed("mldeck demo did not exit cleanly")
    run.step("quit", shown)
    return run


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pace", type=float, default=3.0, help="mldeck demo --pace (s/week)")
    parser.add_argument("--keep", action="store_true", help="keep the demo project folder")
    args = parser.parse_args()
    if shutil.which("tmux") is None:
        print("tmux is not installed", file=sys.stderr)
        return 2
    if EVIDENCE.exists():
        shutil.rmtree(EVIDENCE)
    EVIDENCE.mkdir(parents=True)
    folder = Path(tempfile.mkdtemp(prefix="mldeck-tmux-")) / "loans"
    try:
        run = play(args, folder)
    except StepFailed as exc:
        print(f"FAILED: {exc} (screens in {EVIDENCE.relative_to(REPO)})", file=sys.stderr)
        return 1
    finally:
        subprocess.run(["tmux", "kill-session", "-t", SESSION], capture_output=True)
        if not args.keep:
            shutil.rmtree(folder.parent, ignore_errors=True)
    total = run.timings[-1][1]
    prompt = dict(run.timings)["retrain_prompt"]
    ui_up = dict(run.timings)["ui_up"]
    print(
        f"\nUI up after {ui_up:.1f} s, retrain prompt after {prompt:.1f} s"
        f" (target: within a few minutes), whole run {total:.1f} s;"
        f" {run.saved} screens in {EVIDENCE.relative_to(REPO)}/"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
