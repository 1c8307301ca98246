"""Every ```python block of README.md and of the manual (docs/*.md) runs, on tiny generated data.

One test per page and block, so a failure names both; a traceback's line numbers are the page's own. Each
block runs in a fresh copy of one workspace holding the files and folders the examples name. docs/_incoming
holds other engineers' notes not yet merged into the pages and is left out.
"""

from __future__ import annotations

import re
import shutil
import warnings
from pathlib import Path

import pytest

from mer_fastai import SpecConfig, TrainConfig, prepare_dataset
from mer_fastai.api.training import train
from mer_fastai.data.synth import make_study_style_set

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
# Example text -> what runs instead: tiny data, no download, one epoch. Each must still occur in some block,
# so a changed example fails here instead of silently running at full size.
SUBSTITUTIONS = {
    '"song.mp3"': '"song.wav"',
    "segment_seconds=10)": "segment_seconds=1, n_mels=32)",
    "epochs=20": "epochs=1",
    'weights="imagenet"': 'weights="none", size=64, bs=8',
    'overrides=["epochs=5"]': 'archs=["squeezenet1_0"], modes=["freeze"], overrides=["epochs=1", "size=64", '
    '"bs=8", "lr=0.001", "weights=none", "datasets.small.audio=clips", '
    '"datasets.small.labels=mean_ratings_set1.csv", "spectrogram.segment_seconds=1.0", "spectrogram.n_mels=32"]',
    "steps=400": "steps=2",
    'generate_images("gan-run", 40,': 'generate_images("gan-run", 2,',
}
BLOCK = re.compile(r"^```python\n(.*?)^```", flags=re.S | re.M)


def python_blocks(page: Path) -> list[tuple[int, str]]:
    """The page's ```python blocks with the line number each starts on (read now: the test follows the page)."""
    text = page.read_text(encoding="utf-8")
    return [(text.count("\n", 0, m.start(1)) + 1, m.group(1)) for m in BLOCK.finditer(text)]


BLOCKS = [(page, n, line, code) for page in PAGES for n, (line, code) in enumerate(python_blocks(page), 1)]


def make_workspace(root: Path) -> None:
    """The files and folders the examples name, made of tiny generated audio."""
    audio, ratings = make_study_style_set(root / "study", clips_per_class=4, seconds=2.0, seed=3)
    for name in ("clips", "test-audio"):
        shutil.copytree(audio, root / name)
    for name in ("mean_ratings_set1.csv", "annotations.csv"):
        shutil.copy(ratings, root / name)
    clips = sorted(audio.glob("*.wav"))
    (root / "album").mkdir()
    for clip in clips[:2]:
        shutil.copy(clip, root / "album" / clip.name)
    shutil.copy(clips[2], root / "single.wav")
    shutil.copy(clips[3], root / "song.wav")
    spec = SpecConfig(segment_seconds=1.0, n_mels=32)
    prepare_dataset(audio, root / "data" / "emotions", "emotions", ratings, spec=spec, workers=1, progress=False)
    valence = prepare_dataset(
        audio, root / "study" / "valence", "valence", ratings, spec=spec, workers=1, progress=False
    )
    config = TrainConfig(arch="alexnet", mode="whole", epochs=1, lr=1e-3, weights="none", size=64, bs=8)
    train(valence.out_dir, config, root / "runs" / "alexnet", show=False)


@pytest.fixture(scope="module")
def workspace(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("docs-workspace")
    make_workspace(root)
    return root


def test_the_examples_are_found_and_every_substitution_is_used():
    pages = {page.name for page, *_ in BLOCKS}
    assert {"README.md", "python-api.md", "predict.md"} <= pages
    assert not [page for page in PAGES if "_incoming" in page.parts]
    text = "\n".join(code for *_, code in BLOCKS)
    assert [old for old in SUBSTITUTIONS if old not in text] == []


@pytest.mark.parametrize(("page", "number", "line", "code"), BLOCKS, ids=[f"{p.name}-block{n}" for p, n, *_ in BLOCKS])
def test_the_python_example_runs(page, number, line, code, workspace, tmp_path, monkeypatch):
    here = tmp_path / "ws"
    shutil.copytree(workspace, here, symlinks=True)
    monkeypatch.chdir(here)
    for old, new in SUBSTITUTIONS.items():
        code = code.replace(old, new)
    source = str(page.relative_to(ROOT))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", DeprecationWarning)
        exec(compile("\n" * (line - 1) + code, source, "exec"), {"__name__": "docs_example"})
    deprecated = [f"{w.lineno}: {w.message}" for w in caught if w.filename == source]
    assert deprecated == [], f"{source} block {number} uses deprecated API"
