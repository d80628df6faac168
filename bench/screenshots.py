"""The README's screenshots: the Pipeline and Drift screens as SVG, on the demo project
after a few weeks of the quarter.

    python bench/screenshots.py [--weeks 8] [--out docs]

Builds the demo project in a temporary folder (`engine.service.demo`: the reference
champion, then the first weeks played as `mldeck demo --headless` plays them),
opens the UI on it headless at 100x30 and saves each screen with Textual's
`save_screenshot`. Prints the files written.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

SIZE = (100, 30)
SCREENS = (("1", "pipeline"), ("4", "drift"))


def build_project(folder: Path, weeks: int) -> None:
    from engine.core.events import ignore_events
    from engine.core.project import open_project
    from engine.service.demo import create_demo_project, play_weeks, train_reference

    sample = REPO / "sample_data"
    create_demo_project(folder, sample, policy="prompt", floor=0.90, recent_batches=4)
    with open_project(folder) as project:
        train_reference(project, sample, ignore_events)
        for week in play_weeks(project, sample):
            if week.week >= weeks:
                break


async def shoot(folder: Path, out: Path) -> list[Path]:
    from app.ui.app import make_app
    from app.ui.screens.base import DeckScreen

    # No watcher or scheduler: the pictures show the project as it is. A proposal that
    # is pending would put the retrain prompt over them, so the timer is far away and
    # the check at start-up is answered "later" by pressing Escape.
    app, close = make_app(folder, actor="demo", refresh_s=600, parts=())
    written = []
    try:
        async with app.run_test(size=SIZE) as pilot:
            for key, name in SCREENS:
                await pilot.press(key)
                for _ in range(100):
                    await pilot.pause(0.05)
                    await app.workers.wait_for_complete()
                    if not isinstance(app.screen, DeckScreen):
                        await pilot.press("escape")
                    elif app.screen.shown_once:
                        break
                await pilot.pause(0.5)  # tables size their columns when idle
                await app.workers.wait_for_complete()
                await pilot.pause(0.2)
                path = out / f"{name}.svg"
                app.save_screenshot(path.name, str(out))
                written.append(path)
    finally:
        close()
    return written


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--weeks", type=int, default=8, help="weeks of the quarter played")
    parser.add_argument("--out", type=Path, default=REPO / "docs", help="where the SVGs go")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="mldeck-shots-") as tmp:
        folder = Path(tmp) / "loans"
        build_project(folder, args.weeks)
        for path in asyncio.run(shoot(folder, args.out)):
            print(path.relative_to(REPO) if path.is_relative_to(REPO) else path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
