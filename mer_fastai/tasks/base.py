"""The task as a type: what a data set's labels are, and every rule that follows from it.

One `Task` object per task (`classification`, `regression`, `multilabel`), found by name with
`tasks.registry.get_task`.
Commands never compare task names: they ask the task (its label reader, target block, loss and monitors,
output activation, prediction columns, scores, tables and plots, baseline maker). Adding a task is one
new subclass and one line in `tasks.registry`.
"""

from __future__ import annotations

from typing import ClassVar


class Task:
    """What every task declares; subclasses fill in the class attributes and override the behaviour."""

    name: ClassVar[str]
    # what a model's outputs are called, as dataset.json, metrics.json and model files list them
    names_key: ClassVar[str]
    # what each fold and training split must hold at least one of ("class", "mood"), None: nothing
    learned: ClassVar[str | None]
    # prediction CSV columns: `<prefix>_<name>` per output, after the label columns
    column_prefix: ClassVar[str]
    label_columns: ClassVar[tuple[str, ...]]
    # the scores `--monitor` may pick (the first: what `auto` means) and the summary scores metrics.json holds
    monitors: ClassVar[tuple[str, ...]]
    scores: ClassVar[tuple[str, ...]]
    # what results.md and the terminal tables show per cell (the first: the heatmap's score)
    table_scores: ClassVar[tuple[str, ...]]
    # the probability at which an output counts as predicted (multilabel), None where outputs are not decided
    decision: ClassVar[float | None] = None
    # whether track labels are chosen from window probabilities (`--aggregate vote|max` need one label a window)
    chooses_one_label: ClassVar[bool] = False
    # whether `--loss` (mse|ccc) applies
    takes_loss: ClassVar[bool] = False

    def __repr__(self) -> str:
        return f"<task {self.name}>"

    def __str__(self) -> str:
        return self.name

    @property
    def is_default(self) -> bool:
        """Whether data sets and model files of this task are written without a `task` field (as in 0.1)."""
        return self.name == DEFAULT_TASK

    def columns(self, names: list[str]) -> list[str]:
        """The output columns of a prediction CSV: `prob_<class or mood>` or `pred_<target>`."""
        return [f"{self.column_prefix}_{name}" for name in names]


DEFAULT_TASK = "classification"  # what records written before tasks existed hold
