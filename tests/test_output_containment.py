"""Nothing lost, nothing escapes: every command that takes --out, pointed at each of its inputs, at the audio folder
and at its parent, either refuses in one line with exit 2 and changes nothing, or writes only new files inside its
--out — every file of the workspace that was there before is byte for byte the same (hashes before and after).

The workspace (audio in class folders, a labels file, a prepared data set, two trained runs, a GAN run and a
recipe over the audio) is built once; each case runs the real CLI entry point on a copy of it.
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch

from mer_fastai.models.modelfile import read_model, save_model_file
from mer_fastai.preparation.prepare import prepare_dataset
from tests.conftest import TINY_SPEC
from tests.inference.test_predict import train_run
from tests.test_bad_inputs import snapshot
from tests.test_cli import run_main

W = "{W}"  # replaced by the workspace folder
AUDIO, PARENT = f"{W}/audio", W
LABELS = ["--labels", f"{W}/labels.csv", "--id-column", "file", "--label-column", "mood"]
PREPARE = ["prepare", AUDIO, "--feature", "emotions", "--workers", "1", "--segment-seconds", "1", "--n-mels", "32",
           *LABELS]  # fmt: skip
COMMON = ["--arch", "squeezenet1_0", "--mode", "whole", "--bs", "4", "--size", "64", "--workers", "0"]
TRAINING = [*COMMON, "--epochs", "1", "--lr", "1e-3"]
LRFIND = ["lrfind", f"{W}/data", *COMMON, "--weights", "none"]
TRAIN = ["train", f"{W}/data", *TRAINING, "--weights", f"{W}/run"]  # the run's model is an input too
CV = ["cv", f"{W}/data", *TRAINING, "--weights", "none", "--folds", "2", "--no-ensemble"]
BASELINE = ["baseline", f"{W}/data", "--classifier", "knn", "--workers", "1"]
GAN_TRAIN = ["gan", "train", f"{W}/data", "--steps", "1", "--size", "16", "--bs", "4"]
GENERATE = ["gan", "generate", f"{W}/gan", "--n", "1"]
EVALUATE = ["evaluate", f"{W}/run", AUDIO, *LABELS]
PREDICT = ["predict", f"{W}/run", AUDIO]
EMBED = ["embed", f"{W}/run", AUDIO, *LABELS]
ENSEMBLE = ["ensemble", f"{W}/run", f"{W}/run2"]
RUN = ["run", f"{W}/recipe.yaml"]
DEMO = ["demo", "--epochs", "1", "--clips", "2", "--size", "64"]
RECIPE = """
experiment: walk
description: the workspace's audio, one tiny cell
datasets:
  mine: {audio: w/audio}
stages:
  - {name: one, dataset: mine, features: [emotions], modes: [whole]}
archs: [squeezenet1_0]
epochs: 1
bs: 4
size: 64
lr: 0.001
weights: none
num_workers: 0
valid_pct: 0.25
spectrogram: {segment_seconds: 1.0, n_mels: 32}
"""


@dataclass(frozen=True)
class Walk:
    """One command with --out at one place: `refused` (one line naming `phrase`, exit 2, nothing changed) or not
    (exit 0, only new files, all inside --out or at the workspace paths `also`)."""

    command: list[str]
    out: str
    refused: bool
    phrase: str = ""
    also: tuple[str, ...] = ()

    @property
    def name(self) -> str:
        return " ".join(self.command[:2] if self.command[0] == "gan" else self.command[:1])


def refused(command: list[str], out: str, phrase: str) -> Walk:
    return Walk(command, out, True, phrase)


def writes(command: list[str], out: str, *also: str) -> Walk:
    return Walk(command, out, False, also=also)


WALKS = [
    # prepare: never into (or around) the audio it scans, --overwrite least of all; never over its labels
    refused(PREPARE, AUDIO, "audio"),
    refused(PREPARE, PARENT, "audio"),
    refused([*PREPARE, "--overwrite"], AUDIO, "audio"),
    refused([*PREPARE, "--overwrite"], PARENT, "audio"),
    refused(PREPARE, f"{W}/labels.csv", "labels.csv"),
    # commands that read a data set: never into it, nor over their starting model
    refused(LRFIND, f"{W}/data", "the data set"),
    writes(LRFIND, AUDIO),
    writes(LRFIND, PARENT),
    refused(TRAIN, f"{W}/data", "the data set"),
    refused(TRAIN, f"{W}/data/train", "lies inside the data set"),
    refused(TRAIN, f"{W}/run", "the --weights model"),
    refused(TRAIN, f"{W}/run/model.safetensors", "the --weights model"),
    writes(TRAIN, AUDIO),
    writes(TRAIN, PARENT),
    refused(CV, f"{W}/data", "the data set"),
    writes(CV, AUDIO),
    writes(CV, PARENT),
    refused(BASELINE, f"{W}/data", "the data set"),
    writes(BASELINE, AUDIO),
    writes(BASELINE, PARENT),
    refused(GAN_TRAIN, f"{W}/data", "the data set"),
    writes(GAN_TRAIN, AUDIO),
    writes(GAN_TRAIN, PARENT),
    refused(GENERATE, f"{W}/data/train", "data set"),
    refused(GENERATE, f"{W}/gan", "the GAN run folder"),
    writes(GENERATE, AUDIO),
    writes(GENERATE, PARENT),
    # commands that read a model, audio and labels: never over any of them (links and hard links included)
    refused(EVALUATE, AUDIO, "the audio folder"),
    refused(EVALUATE, f"{W}/run", "the run folder of the model"),
    refused(EVALUATE, f"{W}/labels.csv", "the labels file"),
    refused(EVALUATE, f"{W}/run/model.safetensors", "the model"),
    refused(
        ["evaluate", f"{W}/run", AUDIO, *LABELS[2:], "--labels", f"{W}/ev/predictions.csv"],
        f"{W}/ev",
        "the labels file",
    ),  # fmt: skip
    writes(EVALUATE, PARENT),
    refused([*PREDICT, "--format", "json"], f"{W}/run/model.safetensors", "the model"),
    refused(PREDICT, f"{W}/run/metrics.json", "a record of the model"),
    refused([*PREDICT, "--format", "csv"], f"{W}/audio/happy/happy_00.wav", "audio file"),
    refused(PREDICT, f"{W}/preds.json", "the model"),  # a hard link to it
    refused(PREDICT, AUDIO, "folder"),
    refused(PREDICT, PARENT, "folder"),
    refused(EMBED, f"{W}/labels.npz", "the labels file"),  # a symbolic link to it
    refused([*EMBED, "--map"], f"{W}/model.npz", "the model"),  # model-map.html: a symbolic link to it
    refused(EMBED, AUDIO, "extension"),
    refused(EMBED, PARENT, "extension"),
    writes([*EMBED, "--map"], f"{W}/run/emb.npz", "run/emb-map.png", "run/emb-map.html"),
    refused(["export", f"{W}/run"], f"{W}/run", "the model exported"),
    refused(["export", f"{W}/run"], f"{W}/run/model.safetensors", "the model exported"),
    refused(["export", f"{W}/run"], f"{W}/hard.safetensors", "the model exported"),  # a hard link to it
    refused(["export", f"{W}/run", "--onnx"], f"{W}/run/metrics.safetensors", "the model exported"),  # .onnx: a link
    writes(["export", f"{W}/run"], AUDIO),
    writes(["export", f"{W}/run"], PARENT),
    refused(ENSEMBLE, f"{W}/run/model.safetensors", "an ensemble member"),
    refused(ENSEMBLE, f"{W}/run2/model.safetensors", "an ensemble member"),
    refused(ENSEMBLE, f"{W}/run2", "an ensemble member"),
    refused(ENSEMBLE, f"{W}/link.safetensors", "an ensemble member"),  # a symbolic link to run2's model
    writes(ENSEMBLE, AUDIO),
    writes(ENSEMBLE, PARENT),
    refused(["report", f"{W}/run"], f"{W}/run/metrics.json", ".html"),
    refused(["report", f"{W}/run"], f"{W}/run", "folder"),
    refused(["report", f"{W}/run"], AUDIO, "folder"),
    refused(["report", f"{W}/run"], PARENT, "folder"),
    writes(["report", f"{W}/run"], f"{W}/run/other.html"),
    # run: never over its recipe or labels, never into its audio; all it writes stays inside --out
    refused(RUN, f"{W}/recipe.yaml", "recipe.yaml"),
    refused(RUN, AUDIO, "the audio folder of data set 'mine'"),
    refused(RUN, f"{W}/audio/happy", "the audio folder of data set 'mine'"),
    refused([*RUN, "--set", f"datasets.mine.labels={W}/grid/results.csv"], f"{W}/grid", "the labels file"),
    refused(["run", "demo", "--set", "experiment=x/../../../victim"], f"{W}/grid", "experiment"),
    writes(RUN, PARENT),
    # the demo: a new or empty folder, or one it made
    refused(DEMO, AUDIO, "the demo did not write"),
    refused(DEMO, PARENT, "the demo did not write"),
    refused(DEMO, f"{W}/run", "the demo did not write"),
]


def _second_model(run: Path, out: Path) -> None:
    """`run`'s model with slightly other weights (another member for an ensemble)."""
    from mer_fastai.models.modelfile import build_network

    state, meta = read_model(run)
    model = build_network(meta)
    model.load_state_dict({name: t + 0.01 if t.is_floating_point() else t for name, t in state.items()})
    out.mkdir()
    save_model_file(out / "model.safetensors", model, meta)


@pytest.fixture(scope="module")
def workspace(tmp_path_factory, tiny_audio) -> Path:
    """Audio, labels, a data set, two runs, a GAN run, a recipe over the audio (relative to the folder above)."""
    from mer_fastai.gan.train import train_gan

    root = tmp_path_factory.mktemp("walk") / "w"
    shutil.copytree(tiny_audio, root / "audio")
    clips = sorted(p.relative_to(root / "audio").with_suffix("").as_posix() for p in (root / "audio").rglob("*.wav"))
    (root / "labels.csv").write_text("file,mood\n" + "".join(f"{c},{c.split('/')[0]}\n" for c in clips))
    prepare_dataset(root / "audio", root / "data", "emotions", spec=TINY_SPEC, valid_pct=0.25, workers=1,
                    progress=False)  # fmt: skip
    train_run(root / "data", root / "run")
    _second_model(root / "run", root / "run2")
    torch.manual_seed(0)
    train_gan(root / "data", root / "gan", steps=1, size=16, bs=4, progress=False)
    (root / "recipe.yaml").write_text(RECIPE)
    return root


def _links(root: Path) -> None:
    """Other names for inputs: hard links to the model, symbolic links to the labels and to models and records."""
    os.link(root / "run" / "model.safetensors", root / "preds.json")
    os.link(root / "run" / "model.safetensors", root / "hard.safetensors")
    (root / "labels.npz").symlink_to(root / "labels.csv")
    (root / "link.safetensors").symlink_to(root / "run2" / "model.safetensors")
    (root / "model-map.html").symlink_to(root / "run" / "model.safetensors")
    (root / "run" / "metrics.onnx").symlink_to(root / "run" / "metrics.json")
    (root / "ev").mkdir()
    shutil.copy(root / "labels.csv", root / "ev" / "predictions.csv")  # a labels file named as evaluate's output
    (root / "grid").mkdir()
    gan = json.loads((root / "gan" / "gan.json").read_text())  # the GAN run records its data set's absolute path
    (root / "gan" / "gan.json").write_text(json.dumps({**gan, "data_dir": str((root / "data").resolve())}))
    shutil.copy(root / "labels.csv", root / "grid" / "results.csv")  # ... and as run's


def _inside(key: str, allowed: list[str]) -> bool:
    return any(prefix in (".", key) or key.startswith(f"{prefix}/") for prefix in allowed)


@pytest.mark.parametrize(
    "walk", WALKS, ids=[f"{i:02d} {w.name} --out {w.out.replace(W, 'W')}" for i, w in enumerate(WALKS)]
)
def test_out_at_an_input_is_refused_or_writes_only_new_files_inside_it(walk, workspace, tmp_path, capsys, monkeypatch):
    root = tmp_path / "w"
    shutil.copytree(workspace, root, symlinks=True)
    _links(root)
    monkeypatch.chdir(tmp_path)  # the recipe names its audio `w/audio`
    before = snapshot(root)
    code, err = run_main([a.replace(W, str(root)) for a in [*walk.command, "--out", walk.out]], capsys, monkeypatch)
    after = snapshot(root)
    assert "Traceback" not in err and not [key for key in after if key.endswith(".tmp")], err
    if walk.refused:
        errors = [line for line in err.splitlines() if line.startswith("error:")]
        assert code == 2 and len(errors) == 1 and walk.phrase.lower() in errors[0].lower(), err
        assert after == before, f"a refused command changed files: {sorted(set(after.items()) ^ set(before.items()))}"
        return
    assert code == 0, err
    changed = sorted(key for key, digest in before.items() if after.get(key) != digest)
    assert not changed, f"files that were there before changed or went: {changed}"
    out = Path(walk.out.replace(W, str(root))).relative_to(root).as_posix()
    new = set(after) - set(before)
    assert new, "the command wrote nothing"
    outside = sorted(key for key in new if not _inside(key, [out, *walk.also]))
    assert not outside, f"written outside --out: {outside}"


def test_every_command_that_takes_out_is_walked_at_the_audio_folder_and_its_parent():
    """`results` only prints, so it is the one command left out."""
    commands = {walk.name for walk in WALKS}
    assert commands == {"prepare", "lrfind", "train", "cv", "baseline", "gan train", "gan generate", "evaluate",
                        "predict", "embed", "export", "ensemble", "report", "run", "demo"}  # fmt: skip
    for command in commands:
        outs = {walk.out for walk in WALKS if walk.name == command}
        assert {AUDIO, PARENT} <= outs, command


# --- #26 B: outputs replace only what the same command wrote ---
OWNERSHIP = [
    refused(ENSEMBLE, f"{W}/other", "other holds the output of a training run"),
    refused(["export", f"{W}/run"], f"{W}/other/model.safetensors", "other holds the output of a training run"),
    refused(["export", f"{W}/run"], f"{W}/other", "other holds the output of a training run"),
    refused(TRAIN, f"{W}/mine", "metrics.json: mer-fastai did not write it"),
    refused(LRFIND, f"{W}/evaluated", "holds the output of `mer-fastai evaluate`"),
    refused(EVALUATE, f"{W}/mine", "metrics.json: mer-fastai did not write it"),
    refused(EVALUATE, f"{W}/other", "holds the output of a training run"),
    refused([*PREDICT, "--format", "csv"], f"{W}/locked.csv", "write-protected"),
    refused([*EMBED], f"{W}/locked.npz", "write-protected"),
    refused(ENSEMBLE, f"{W}/mine.safetensors", "is not a model file"),
    refused(["export", f"{W}/run"], f"{W}/run2/model.safetensors", "is a model file another command"),
    writes(ENSEMBLE, f"{W}/mine/ens.safetensors"),  # a new file beside the user's: nothing of theirs replaced
]


def _owned(root: Path) -> None:
    """Another run's folder, a folder of the user's files, an evaluate folder, write-protected files."""
    shutil.copytree(root / "run", root / "other")
    (root / "mine").mkdir()
    (root / "mine" / "metrics.json").write_text('{"accuracy": 0.99}\n')
    (root / "mine" / "curves.png").write_bytes(b"the user's picture")
    (root / "evaluated").mkdir()
    (root / "evaluated" / "metrics.json").write_text('{"audio_dir": "a", "model": "m"}\n')  # an older evaluate's
    (root / "evaluated" / "lr_find.png").write_bytes(b"named like lrfind's plot")
    for name in ("locked.csv", "locked.npz", "mine.safetensors"):
        (root / name).write_text("the user's own\n")
    (root / "locked.csv").chmod(0o444)
    (root / "locked.npz").chmod(0o444)


@pytest.mark.parametrize("walk", OWNERSHIP, ids=[f"{w.name} --out {w.out.replace(W, 'W')}" for w in OWNERSHIP])
def test_out_holding_what_the_command_did_not_write_is_refused(walk, workspace, tmp_path, capsys, monkeypatch):
    root = tmp_path / "w"
    shutil.copytree(workspace, root, symlinks=True)
    _owned(root)
    monkeypatch.chdir(tmp_path)
    before = snapshot(root)
    code, err = run_main([a.replace(W, str(root)) for a in [*walk.command, "--out", walk.out]], capsys, monkeypatch)
    after = snapshot(root)
    errors = [line for line in err.splitlines() if line.startswith("error:")]
    assert "Traceback" not in err and not [key for key in after if key.endswith(".tmp")], err
    changed = sorted(key for key, digest in before.items() if after.get(key) != digest)
    assert not changed, f"files that were there before changed or went: {changed}"
    if walk.refused:
        assert code == 2 and len(errors) == 1 and walk.phrase.lower() in errors[0].lower(), err
        assert after == before
    else:
        assert code == 0 and set(after) - set(before) == {"mine/ens.safetensors"}, err


def test_a_command_replaces_its_own_earlier_output(workspace, tmp_path, capsys, monkeypatch):
    """ensemble over its own file, export over its own file, evaluate into its own folder: allowed, and the
    marks say who wrote them."""
    from mer_fastai.runs.layout import OWNER_FILE, model_writer

    root = tmp_path / "w"
    shutil.copytree(workspace, root, symlinks=True)
    for command, out in ((ENSEMBLE, f"{W}/e.safetensors"), (["export", f"{W}/run"], f"{W}/x.safetensors"),
                         (EVALUATE, f"{W}/ev")):  # fmt: skip
        for _ in range(2):
            code, err = run_main([a.replace(W, str(root)) for a in [*command, "--out", out]], capsys, monkeypatch)
            assert code == 0, err
    assert model_writer(root / "e.safetensors") == "ensemble" and model_writer(root / "x.safetensors") == "export"
    assert model_writer(root / "run") == "train" and (root / "run" / OWNER_FILE).read_text() == "run\n"
    assert (root / "ev" / OWNER_FILE).read_text() == "evaluate\n"


def test_export_attaches_only_the_metrics_of_its_model(workspace, tmp_path, capsys, monkeypatch):
    """A run's metrics.json is bound to its model file by checksum: after the model file is swapped for another
    (here run2's), export leaves the metrics out and says so; the run's own model gets them."""
    from mer_fastai.models.modelfile import read_model
    from mer_fastai.runs.layout import MODEL_CHECKSUM, model_header, read_metrics

    root = tmp_path / "w"
    shutil.copytree(workspace, root, symlinks=True)
    metrics = read_metrics(root / "run")
    assert metrics[MODEL_CHECKSUM] == model_header(root / "run")["checksum"]
    code, err = run_main(["export", str(root / "run"), "--out", str(root / "own.safetensors")], capsys, monkeypatch)
    assert code == 0, err
    assert read_model(root / "own.safetensors")[1].metrics.get(MODEL_CHECKSUM) == metrics[MODEL_CHECKSUM]
    shutil.copy(root / "run2" / "model.safetensors", root / "run" / "model.safetensors")
    code, err = run_main(["export", str(root / "run"), "--out", str(root / "swapped.safetensors")], capsys, monkeypatch)
    assert code == 0, err
    assert "describes another model file" in err and "left out" in err, err
    swapped = read_model(root / "swapped.safetensors")[1].metrics
    assert MODEL_CHECKSUM not in swapped and "valid" not in swapped


# --- #26 D ---
OWN_FILES = [
    refused(PREDICT, f"{W}/mine.csv", "mine.csv: predict did not write this file"),
    refused(PREDICT, f"{W}/mine.json", "mine.json: predict did not write this file"),
    refused([*PREDICT, "--format", "json"], f"{W}/embedded.npz", "embedded.npz: predict did not write this file"),
    refused(EMBED, f"{W}/mine.npz", "mine.npz: embed did not write this file"),
    refused(EMBED, f"{W}/predicted.npz", "predicted.npz: embed did not write this file"),
    refused([*EMBED, "--map"], f"{W}/mapped.npz", "mapped-map.html: embed did not write this file"),
]


@pytest.mark.parametrize("walk", OWN_FILES, ids=[f"{w.name} --out {w.out.replace(W, 'W')}" for w in OWN_FILES])
def test_predict_and_embed_refuse_a_file_they_did_not_write(walk, workspace, tmp_path, capsys, monkeypatch):
    root = tmp_path / "w"
    shutil.copytree(workspace, root, symlinks=True)
    for name, text in (
        ("mine.csv", "file,duration\nmine.wav,1.0\n"),
        ("mine.json", '{"tracks": [], "model": 1}\n'),
        ("mine.npz", "the user's own\n"),
        ("mapped-map.html", "<html><title>notes</title></html>\n"),
    ):
        (root / name).write_text(text)  # fmt: skip
    for command, out in (([*PREDICT, "--format", "csv"], "predicted.npz"), (EMBED, "embedded.npz")):
        code, err = run_main([a.replace(W, str(root)) for a in [*command, "--out", f"{W}/{out}"]], capsys, monkeypatch)
        assert code == 0, err
    monkeypatch.chdir(tmp_path)
    before = snapshot(root)
    code, err = run_main([a.replace(W, str(root)) for a in [*walk.command, "--out", walk.out]], capsys, monkeypatch)
    errors = [line for line in err.splitlines() if line.startswith("error:")]
    assert code == 2 and len(errors) == 1 and walk.phrase.lower() in errors[0].lower(), err
    assert snapshot(root) == before, "a refused command changed files"


def test_predict_and_embed_replace_their_own_output_and_an_empty_file(workspace, tmp_path, capsys, monkeypatch):
    """A rerun over its own output (each format, embed's map and companions) and a file the user emptied."""
    root = tmp_path / "w"
    shutil.copytree(workspace, root, symlinks=True)
    (root / "empty.csv").write_text("")
    runs = [(PREDICT, "p.csv"), (PREDICT, "p.json"), ([*PREDICT, "--format", "csv"], "p.txt"),
            ([*PREDICT, "--format", "json"], "p.txt"), (PREDICT, "empty.csv"),
            ([*EMBED, "--map"], "e.npz")]  # fmt: skip
    for command, out in runs:
        for _ in range(2):
            code, err = run_main(
                [a.replace(W, str(root)) for a in [*command, "--out", f"{W}/{out}"]], capsys, monkeypatch
            )
            assert code == 0, err
    assert (root / "p.csv").read_text().startswith("file,")
    assert json.loads((root / "p.txt").read_text())["tracks"]  # the JSON run replaced the CSV one
    assert (root / "empty.csv").read_text().startswith("file,")
    assert {p.name for p in root.glob("e*")} >= {"e.npz", "e-map.png", "e-map.html"}
