"""The benchmark code runs end to end on a 12-image data set (in one process, nothing timed)."""

from __future__ import annotations

import json
from pathlib import Path

from benchmarks import tasks
from benchmarks.report import ANALYSIS_MARK, write_report
from benchmarks.run import Journal, Settings, measure, parse_args, subset_dataset


def in_process(name: str, work: Path, **kwargs) -> dict:
    """`run.run_task` without the fresh process."""
    return {**tasks.TASKS[name](**kwargs), "peak_rss_mb": 1.0, "child_peak_rss_mb": 0.0, "others_cpu_share": 0.0}


def test_quick_pieces_run_and_report(tiny_data, tiny_audio, tmp_path):
    data = subset_dataset(tiny_data, tmp_path / "data12", (2, 1))
    assert sum(1 for _ in data.glob("*/*/*.png")) == 12
    settings = Settings(
        data=data,
        audio=tiny_audio,
        archs=["squeezenet1_0"],
        epochs=1,
        freeze_epochs=2,
        ablation_epochs=1,
        bs=4,
        size=32,
        study_size=32,
        sizes=[48],
        prepare_files=4,
        memory_files=2,
        predict_files=2,
        floor_steps=1,
        lr="1e-3",
        work=tmp_path / "work",
    )
    results = measure(settings, run_task=in_process)
    (whole, freeze) = results["training"]
    assert whole["study"]["epoch_seconds"] and len(freeze["toolkit"]["epoch_seconds"]) == 2
    assert freeze["toolkit"]["cached_features"] and not whole["toolkit"]["cached_features"]
    assert results["prepare"]["toolkit"]["segments"] == results["prepare"]["serial"]["segments"] == 4
    assert results["predict"]["tracks"] == 2
    report = tmp_path / "BENCHMARKS.md"
    report.write_text(f"old\n{ANALYSIS_MARK}\nhand-written notes\n")
    results["command"] = "python benchmarks/run.py --test"
    printed = write_report(report, json.loads(json.dumps(results)))  # as saved and read back by --render
    text = report.read_text()
    assert "| squeezenet1_0 | freeze |" in printed and "prepare (2 workers)" in printed
    assert "python benchmarks/run.py --test" in text and text.endswith("hand-written notes\n")


def test_task_entry_writes_json_with_memory(tmp_path):
    out = tmp_path / "floor.json"
    kwargs = {"arch": "squeezenet1_0", "size": 32, "bs": 2, "n_classes": 3, "steps": 1}
    tasks.main(["floor", json.dumps(kwargs), str(out)])
    result = json.loads(out.read_text())
    assert result["train_step"] > 0 and result["eval_step"] > 0 and result["peak_rss_mb"] > 50


def test_quick_settings():
    settings, render, fresh = parse_args(["--quick", "--arch", "alexnet", "--per-class", "8,4"])
    assert render is None and not fresh
    assert settings.quick and settings.archs == ["alexnet"] and settings.per_class == (8, 4)
    assert settings.out.name == "benchmarks-quick.md" and settings.freeze_epochs < 20
    assert parse_args(["--sizes", "96,128"])[0].sizes == [96, 128]
    assert parse_args(["--fresh"])[2]


def test_journal_replays_finished_tasks_after_an_interruption(tmp_path):
    calls = []

    def runner(name, work, **kwargs):
        calls.append((name, kwargs))
        return {"wall": float(len(calls))}

    path = tmp_path / "progress.jsonl"
    first = Journal(path, runner)
    assert first("prepare", tmp_path, n=1) == {"wall": 1.0}
    assert first("prepare", tmp_path, n=1) == {"wall": 2.0}  # a repeated measurement is measured again
    with path.open("a") as journal:
        journal.write('{"key": "torn')  # the run was killed while writing
    again = Journal(path, runner)
    assert again("prepare", tmp_path, n=1) == {"wall": 1.0}
    assert again("prepare", tmp_path, n=1) == {"wall": 2.0}
    assert again("prepare", tmp_path, n=2) == {"wall": 3.0}  # new arguments: measured
    assert len(calls) == 3
    assert Journal(path, runner)("prepare", tmp_path, n=2) == {"wall": 3.0} and len(calls) == 3


def test_startup_section_is_replaced_and_the_rest_kept(tmp_path):
    from benchmarks.startup import write_section

    report = tmp_path / "BENCHMARKS.md"
    report.write_text(f"# Benchmarks\n\n{ANALYSIS_MARK}\nhand-written analysis\n")
    write_section(report, "| first |", 0.5)
    write_section(report, "| second |", 0.7)
    text = report.read_text()
    assert text.count("<!-- startup: begin -->") == 1 and text.count("<!-- startup: end -->") == 1
    assert "| second |" in text and "| first |" not in text and "load average 0.70" in text
    assert text.startswith(f"# Benchmarks\n\n{ANALYSIS_MARK}\nhand-written analysis\n")


def _track_file(path: Path, rows: list[tuple[str, str, list[float]]], classes: list[str]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = [",".join(["clip_id", "source", "windows", "true", "predicted", *[f"prob_{c}" for c in classes]])]
    for clip, true, probs in rows:
        predicted = classes[max(range(len(probs)), key=probs.__getitem__)]
        lines.append(",".join([clip, f"{clip}.mp3", "3", true, predicted, *map(str, probs)]))
    path.write_text("\n".join(lines) + "\n")


def test_accuracy_fusion_averages_each_held_out_clips_probabilities(tmp_path):
    """Late fusion per fold: the mean of the CNN's and the baseline's track probabilities, scored per fold."""
    from benchmarks.accuracy import fold_dirs, fusion_row, row_folder, table

    classes = ["Q1", "Q2"]
    folds = {  # clip → (truth, CNN probabilities, baseline probabilities)
        0: {"a": ("Q1", [0.6, 0.4], [0.3, 0.7]), "b": ("Q2", [0.45, 0.55], [0.8, 0.2])},
        1: {"c": ("Q2", [0.2, 0.8], [0.9, 0.1]), "d": ("Q1", [0.4, 0.6], [0.9, 0.1])},
    }
    for k, clips in folds.items():
        for where, pick in (
            (fold_dirs(row_folder(tmp_path, "scratch"), 2)[k], 1),
            (fold_dirs(tmp_path / "baseline", 2)[k] / "svm", 2),
        ):
            _track_file(where / "track_predictions.csv", [(c, v[0], v[pick]) for c, v in clips.items()], classes)
    classic = [fold / "svm" for fold in fold_dirs(tmp_path / "baseline", 2)]
    row = fusion_row(fold_dirs(row_folder(tmp_path, "scratch"), 2), classic, "mean of scratch and svm", 3.5)
    expected = []
    for clips in folds.values():
        right = [truth == classes[int(sum(p[1] for p in (cnn, base)) > sum(p[0] for p in (cnn, base)))]
                 for truth, cnn, base in clips.values()]  # fmt: skip
        expected.append(sum(right) / len(right))
    assert row["summary"]["track_accuracy"]["values"] == expected
    assert row["summary"]["track_accuracy"]["mean"] == sum(expected) / 2
    text = table({"scratch + svm": row}, 2)
    assert f"| scratch + svm | {row['settings']} | {sum(expected) / 2:.3f} ± " in text and text.endswith("| – | 3.5 |")


def test_accuracy_reports_what_choosing_the_epoch_on_the_held_out_fold_would_have_added(tmp_path):
    """cv keeps each fold's last epoch; the benchmark shows beside it the best epoch's window accuracy."""
    from benchmarks.accuracy import best_epoch_accuracy

    folds = {"0": [0.5, 0.7, 0.6], "1": [0.4, 0.45, 0.65]}
    for name, values in folds.items():
        (tmp_path / name).mkdir()
        history = [{"epoch": i, "accuracy": value, "valid_loss": 1.0} for i, value in enumerate(values)]
        (tmp_path / name / "history.json").write_text(json.dumps({"history": history}))
    assert best_epoch_accuracy([tmp_path / "0", tmp_path / "1"]) == [0.7, 0.65]
