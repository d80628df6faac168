"""3 Models: the registry with the champion marked; the selected version's lineage and
metrics beside the champion's; p promote, r roll back, a archive, t retrain."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from rich.table import Table
from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, VerticalScroll
from textual.widgets import DataTable, Static

from app.ui.format import fmt_num, fmt_time, metric_label, short_hash, status_text
from app.ui.screens.base import DeckScreen
from app.ui.screens.dialogs import Confirmed, ReasonDialog
from app.ui.widgets.table import DeckTable

if TYPE_CHECKING:
    from engine.api import EngineClient, VersionRow

SHOWN_METRICS = ("accuracy", "roc_auc", "f1", "rmse", "mae", "r2")


class ModelsScreen(DeckScreen):
    BINDINGS = [
        Binding("p", "promote", "Promote", id="models.promote", tooltip="Make it the champion"),
        Binding("r", "rollback", "Roll back", id="models.rollback"),
        Binding("a", "archive", "Archive", id="models.archive"),
        Binding("t", "retrain", "Retrain", id="models.retrain"),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.selected_version: int | None = None
        self.versions: dict[int, VersionRow] = {}

    def compose_body(self) -> ComposeResult:
        with Horizontal(id="models-body"):
            registry = DeckTable(id="registry", cursor_type="row", zebra_stripes=True)
            registry.border_title = "Registry"
            yield registry
            with VerticalScroll(id="lineage-pane") as pane:
                pane.border_title = "Lineage"
                yield Static(id="lineage")

    def fetch(self, client: EngineClient) -> list[VersionRow]:
        return client.models()

    def show(self, data: list[VersionRow]) -> None:
        table = self.query_one("#registry", DataTable)
        self.versions = {int(v["version"]): v for v in data}
        metrics = [m for m in SHOWN_METRICS if any(m in v["metrics"] for v in data)][:2]
        columns = ("", "ver", "name", *map(metric_label, metrics), "gates", "alias")
        if tuple(str(c.label) for c in table.columns.values()) != columns:
            table.clear(columns=True)
            table.add_columns(*columns)
        table.clear()
        for v in data:
            champion = "champion" in v["aliases"]
            table.add_row(
                Text("★", style="bold green") if champion else "",
                Text(f"v{v['version']}", style="bold green" if champion else ""),
                v["name"],
                *[fmt_num(v["metrics"].get(m), 3) for m in metrics],
                Text("pass", style="green") if v["promotable"] else Text("fail", style="red"),
                status_text("archived")
                if v["status"] == "archived"
                else Text(", ".join(v["aliases"]), style="green" if champion else ""),
                key=str(v["version"]),
            )
        if not data:
            self.query_one("#lineage", Static).update(
                Text("No model versions yet: train (t, or mldeck train).", style="dim")
            )
        else:
            if self.selected_version not in self.versions:
                self.selected_version = int(data[0]["version"])
            table.move_cursor(row=table.get_row_index(str(self.selected_version)))
            self._load_lineage(self.selected_version)

    @on(DataTable.RowHighlighted, "#registry")
    def _version_highlighted(self, event: DataTable.RowHighlighted) -> None:
        if event.row_key.value is None:
            return
        self.selected_version = int(event.row_key.value)
        self._load_lineage(self.selected_version)

    @work(thread=True, exclusive=True, group="lineage", exit_on_error=False)
    def _load_lineage(self, version: int) -> None:
        lineage = self.deck.client.lineage_summary(version)
        self.app.call_from_thread(self._show_lineage, lineage)

    def _show_lineage(self, lineage: dict[str, Any]) -> None:
        if lineage["version"] != self.selected_version:
            return
        self.query_one("#lineage", Static).update(lineage_view(lineage))

    # -------------------------------------------------------------- actions

    def _selected(self) -> VersionRow | None:
        if self.selected_version is None or self.selected_version not in self.versions:
            self.notify("select a model version first", severity="warning")
            return None
        return self.versions[self.selected_version]

    def action_promote(self) -> None:
        version = self._selected()
        if version is None:
            return
        number = int(version["version"])

        def promote(answer: Confirmed | None) -> None:
            if answer is not None:
                self.deck.run_engine_action(
                    "promote",
                    lambda client: client.promote(
                        number, actor=self.deck.actor, reason=answer.reason, force=answer.force
                    ),
                )

        self.app.push_screen(
            ReasonDialog(
                f"Promote v{number}",
                f"Make v{number} ({version['name']}, {version['kind']}) the champion?",
                confirm="Promote",
                offer_force=not version["promotable"],
            ),
            promote,
        )

    def action_rollback(self) -> None:
        def rollback(answer: Confirmed | None) -> None:
            if answer is not None:
                self.deck.run_engine_action(
                    "rollback",
                    lambda client: client.rollback(actor=self.deck.actor, reason=answer.reason),
                )

        self.app.push_screen(
            ReasonDialog("Roll back", "Put the previous champion back?", confirm="Roll back"),
            rollback,
        )

    def action_archive(self) -> None:
        version = self._selected()
        if version is None:
            return
        number = int(version["version"])

        def archive(answer: Confirmed | None) -> None:
            if answer is not None:
                self.deck.run_engine_action(
                    "archive",
                    lambda client: client.archive(
                        number, actor=self.deck.actor, reason=answer.reason
                    ),
                )

        self.app.push_screen(
            ReasonDialog(
                f"Archive v{number}",
                f"Archive v{number}? It stays in the registry but can no longer be promoted.",
                confirm="Archive",
            ),
            archive,
        )

    def action_retrain(self) -> None:
        def retrain(answer: Confirmed | None) -> None:
            if answer is not None:
                self.deck.retrain(answer.reason)

        self.app.push_screen(
            ReasonDialog(
                "Retrain",
                "Train every configured candidate on the data ingested so far?",
                confirm="Retrain",
            ),
            retrain,
        )


def lineage_view(lineage: dict[str, Any]) -> Table:
    """The selected version beside the champion, then where it came from."""
    grid = Table.grid(padding=(0, 1))
    grid.add_column(style="bold", no_wrap=True)
    grid.add_column()
    champion = lineage["champion"]
    title = Text(f"v{lineage['version']} {lineage['name']} ({lineage['kind']})", style="bold")
    if lineage["status"] == "archived":
        title.append(" archived", style="dim")
    grid.add_row("version", title)
    metrics = Table("metric", f"v{lineage['version']}", box=None, padding=(0, 1), show_edge=False)
    if champion is not None and champion != lineage["version"]:
        metrics.add_column(f"champion v{champion}")
    for name, value in lineage["metrics"].items():
        cells = [metric_label(name), fmt_num(value, 4)]
        if champion is not None and champion != lineage["version"]:
            cells.append(fmt_num((lineage["champion_metrics"] or {}).get(name), 4))
        metrics.add_row(*cells)
    grid.add_row("metrics", metrics)
    dataset = lineage["dataset"]
    if dataset is not None:
        grid.add_row(
            "data",
            f"dataset {dataset['dataset_id']} ({short_hash(dataset['dataset_hash'])}): "
            f"batches {', '.join(map(str, dataset['batch_ids']))}; "
            f"{dataset['train_rows']} train / {dataset['holdout_rows']} holdout rows",
        )
        grid.add_row("snapshots", ", ".join(short_hash(h) for h in dataset["snapshot_hashes"]))
    grid.add_row("features", short_hash(lineage["feature_hash"]))
    # Estimator defaults are recorded too; the ones set (not None/False) say more.
    params = [f"{k}={v}" for k, v in lineage["params"].items() if v not in (None, False)]
    grid.add_row("params", ", ".join(params[:8]) + (" …" if len(params) > 8 else "") or "defaults")
    grid.add_row("seed", str(lineage["seed"]))
    grid.add_row("device", lineage["device"])
    grid.add_row("parity", f"{lineage['parity_max_abs_diff']:.1e} (ONNX vs native)")
    grid.add_row("gates", "pass" if lineage["promotable"] else "fail")
    grid.add_row("created", fmt_time(lineage["created_at"]))
    libraries = lineage["library_versions"]
    grid.add_row(
        "libraries",
        ", ".join(
            f"{k} {libraries[k]}"
            for k in ("python", "scikit-learn", "onnxruntime", "torch")
            if k in libraries
        ),
    )
    for entry in lineage["history"]:
        grid.add_row(
            "audit",
            f"{fmt_time(entry['recorded_at'])} {entry['action']} by {entry['actor']}: "
            f"{entry['reason'] or ''}",
        )
    return grid
