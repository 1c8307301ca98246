"""GAN augmentation: DiffAugment, the diffaug backend, checkpoints, StyleGAN2-ADA command lines, quality."""

from __future__ import annotations

import json
import shutil
import sys
import textwrap
import types
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from typer.testing import CliRunner

from mer_fastai.cli.main import app
from mer_fastai.errors import MerError
from mer_fastai.gan import quality
from mer_fastai.gan import stylegan as sg
from mer_fastai.gan.diffaugment import diff_augment, parse_policy
from mer_fastai.gan.generate import generate_images, sample_diffaug
from mer_fastai.gan.model import load_checkpoint, save_checkpoint
from mer_fastai.gan.quality import fd_proxy, frechet_distance
from mer_fastai.gan.train import train_gan
from mer_fastai.runs.layout import GAN_CHECKPOINT
from mer_fastai.training.loaders import load_dataloaders

CLASSES = ["angry", "happy", "sad", "tender"]


def image_size(data: Path) -> tuple[int, int]:
    """(width, height) of the data set's images, as PIL reports sizes."""
    with Image.open(next((data / "train").glob("*/*.png"))) as image:
        return image.size


@pytest.fixture(scope="module", autouse=True)
def one_torch_thread():
    """Tiny tensors: one thread avoids OpenMP oversubscription, which slows steps 100× on a busy CPU."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def gan_run(tiny_data, tmp_path_factory) -> Path:
    """The diffaug backend trained for 5 steps at 16 px on the CPU."""
    out = tmp_path_factory.mktemp("gan") / "run"
    train_gan(tiny_data, out, steps=5, size=16, bs=4, seed=1, progress=False)
    return out


def test_diffaugment_keeps_shape_and_passes_gradients():
    torch.manual_seed(0)
    images = torch.rand(6, 1, 16, 24, requires_grad=True)
    augmented = diff_augment(images * 2 - 1)
    assert augmented.shape == images.shape
    augmented.sum().backward()
    assert images.grad is not None and images.grad.abs().sum() > 0
    cut = (diff_augment(torch.ones(64, 1, 16, 16), "cutout") == 0).float().mean(dim=(1, 2, 3))
    assert (cut > 0).all() and (cut <= 0.25).all()  # half × half, clipped at the borders
    assert parse_policy("none") == [] and parse_policy("translation, color") == ["translation", "color"]
    with pytest.raises(MerError, match="saturation"):
        parse_policy("color,saturation")


def test_training_writes_run_files(gan_run, tiny_data):
    meta = json.loads((gan_run / "gan.json").read_text())
    assert meta["backend"] == "diffaug" and meta["classes"] == CLASSES and meta["size"] == 16
    assert tuple(meta["image_size"]) == image_size(tiny_data)[::-1]
    assert meta["train_images"] == {c: len(list((tiny_data / "train" / c).glob("*.png"))) for c in CLASSES}
    metrics = json.loads((gan_run / "metrics.json").read_text())
    assert metrics["steps"] == 5 and metrics["losses"][-1]["step"] == 5
    assert all(np.isfinite([row["d_loss"], row["g_loss"]]).all() for row in metrics["losses"])
    proxy = metrics["quality"]["fd_proxy"]
    assert proxy["overall"] >= 0 and set(proxy["per_class"]) == set(CLASSES)
    assert metrics["quality"]["n_real"] == meta["train_images"]
    with Image.open(gan_run / "samples.png") as samples:
        assert samples.width > 100
    assert (gan_run / GAN_CHECKPOINT).is_file() and not list(gan_run.glob("*.pkl"))


def test_generate_writes_grayscale_class_folders_at_data_set_size(gan_run, tiny_data, tmp_path):
    written = generate_images(gan_run, 3, tmp_path / "gen", ["sad", "happy"], seed=7, progress=False)
    assert list(written) == ["sad", "happy"]
    assert sorted(p.name for p in (tmp_path / "gen").iterdir()) == ["happy", "sad"]
    for paths in written.values():
        assert len(paths) == 3
        for path in paths:
            with Image.open(path) as image:
                assert image.mode == "L" and image.size == image_size(tiny_data)
    again = generate_images(gan_run, 3, tmp_path / "again", ["sad"], seed=7, progress=False)
    assert [np.asarray(Image.open(p)).tolist() for p in again["sad"]] == [
        np.asarray(Image.open(p)).tolist() for p in written["sad"]
    ]


def test_generate_refuses_bad_requests(gan_run, tiny_data, tmp_path):
    with pytest.raises(MerError, match="inside the data set"):
        generate_images(gan_run, 2, tiny_data / "train" / "extra", progress=False)
    with pytest.raises(MerError, match="'calm'"):
        generate_images(gan_run, 2, tmp_path / "gen", ["calm"], progress=False)
    with pytest.raises(MerError, match="gan.json"):
        generate_images(tmp_path, 2, tmp_path / "gen", progress=False)
    with pytest.raises(MerError, match=r"--seed must be a whole number from 0 to .* \(got -1\)"):
        generate_images(gan_run, 2, tmp_path / "gen", seed=-1, progress=False)
    assert not (tmp_path / "gen").exists()
    with pytest.raises(MerError, match="power of two"):
        train_gan(tiny_data, tmp_path / "run", steps=1, size=24, progress=False)
    with pytest.raises(MerError, match="no class 'calm'"):
        train_gan(tiny_data, tmp_path / "run", ["calm"], steps=1, size=16, progress=False)


def test_training_refuses_a_data_set_without_classes(tiny_data, tmp_path):
    """The GAN is conditioned on classes: a multilabel (or regression) data set is refused in one line."""
    moods = tmp_path / "moods"
    moods.mkdir()
    for name in ("manifest.csv", "spectrogram.json"):  # a whole data set: it is opened before it is refused
        shutil.copy(tiny_data / name, moods / name)
    info = json.loads((tiny_data / "dataset.json").read_text())
    (moods / "dataset.json").write_text(json.dumps({**info, "task": "multilabel", "targets": ["happy", "sad"]}))
    with pytest.raises(MerError, match="is a multilabel data set; `mer-fastai gan train` handles classification"):
        train_gan(moods, tmp_path / "run", steps=1, size=16, progress=False)


def test_checkpoint_round_trip(gan_run, tmp_path):
    generator, meta = load_checkpoint(gan_run / GAN_CHECKPOINT)
    assert meta["classes"] == CLASSES and meta["latent_dim"] == generator.shape.latent_dim == 128
    copy = save_checkpoint(tmp_path / "copy.safetensors", generator, {"classes": meta["classes"]})
    reloaded, copied_meta = load_checkpoint(copy)
    assert copied_meta["classes"] == CLASSES
    for name, tensor in generator.state_dict().items():
        assert torch.equal(tensor, reloaded.state_dict()[name]), name
    size = tuple(meta["image_size"])
    first, second = sample_diffaug(generator, 2, 4, 0, size), sample_diffaug(reloaded, 2, 4, 0, size)
    assert all(np.array_equal(a, b) for a, b in zip(first, second, strict=True))
    assert first[0].shape == size and first[0].dtype == np.uint8
    (tmp_path / "broken.safetensors").write_bytes(b"\x00" * 16)
    with pytest.raises(MerError, match="not a readable GAN checkpoint"):
        load_checkpoint(tmp_path / "broken.safetensors")
    data = bytearray(copy.read_bytes())
    data[-5] ^= 0xFF  # a weight byte: the shared reader's checksum catches it, as for model files
    (tmp_path / "flipped.safetensors").write_bytes(bytes(data))
    with pytest.raises(MerError, match=r"is damaged \(checksum mismatch"):
        load_checkpoint(tmp_path / "flipped.safetensors")


def test_stylegan_command_lines(tmp_path):
    repo, python = tmp_path / "stylegan2-ada-pytorch", "/env/bin/python"
    assert sg.dataset_tool_command(repo, tmp_path / "src", tmp_path / "d.zip", python) == [
        python,
        f"{repo}/dataset_tool.py",
        f"--source={tmp_path}/src",
        f"--dest={tmp_path}/d.zip",
    ]
    assert sg.train_command(repo, tmp_path / "d.zip", tmp_path / "runs", 200, 32, 42, python) == [
        python,
        f"{repo}/train.py",
        f"--outdir={tmp_path}/runs",
        f"--data={tmp_path}/d.zip",
        "--gpus=1",
        "--cond=1",
        "--aug=ada",
        "--mirror=0",
        "--kimg=200",
        "--batch=32",
        "--seed=42",
        "--metrics=none",
    ]
    seeds = sg.class_seeds(1, 2, 5)
    assert seeds == range(10_200_000, 10_200_005)
    assert sg.generate_command(repo, tmp_path / "net.pkl", tmp_path / "gen", seeds, 2, python) == [
        python,
        f"{repo}/generate.py",
        f"--outdir={tmp_path}/gen",
        "--seeds=10200000-10200004",
        "--class=2",
        f"--network={tmp_path}/net.pkl",
        "--trunc=1",
    ]
    assert not set(sg.class_seeds(0, 0, 100_000)) & set(sg.class_seeds(0, 1, 100_000))
    with pytest.raises(MerError, match="--seed"):
        sg.class_seeds(10_000, 0, 10)


def test_stylegan_checkout_is_checked(tiny_data, tmp_path):
    with pytest.raises(MerError, match="needs --stylegan-dir"):
        train_gan(tiny_data, tmp_path / "run", backend="stylegan2-ada", progress=False)
    (tmp_path / "empty").mkdir()
    with pytest.raises(MerError, match="no train.py|no dataset_tool.py"):
        sg.check_stylegan_dir(tmp_path / "empty")
    with pytest.raises(MerError, match="unknown --backend"):
        train_gan(tiny_data, tmp_path / "run", backend="biggan", progress=False)


STUBS = {
    "dataset_tool.py": """
        import json, sys, zipfile, pathlib
        args = dict(a[2:].split("=", 1) for a in sys.argv[1:])
        source = pathlib.Path(args["source"])
        labels = json.loads((source / "dataset.json").read_text())["labels"]
        with zipfile.ZipFile(args["dest"], "w") as z:
            for name, label in labels:
                z.write(source / name, name)
            z.writestr("dataset.json", json.dumps({"labels": labels}))
    """,
    "train.py": """
        import json, sys, pathlib
        args = dict(a[2:].split("=", 1) for a in sys.argv[1:])
        run = pathlib.Path(args["outdir"]) / "00000-stylegan-dataset-cond-mirror0-auto1"
        run.mkdir(parents=True)
        (run / "network-snapshot-000000.pkl").write_bytes(b"early")
        (run / "network-snapshot-000001.pkl").write_bytes(json.dumps(args).encode())
        tick = {"Progress/kimg": {"mean": 1.0}, "Loss/G/loss": {"mean": 0.7}, "Loss/D/loss": {"mean": 1.3},
                "Progress/augment": {"mean": 0.05}}
        (run / "stats.jsonl").write_text(json.dumps(tick) + "\\n")
    """,
    "generate.py": """
        import sys, pathlib, numpy as np
        from PIL import Image
        args = dict(a[2:].split("=", 1) for a in sys.argv[1:])
        first, last = map(int, args["seeds"].split("-"))
        out = pathlib.Path(args["outdir"]); out.mkdir(parents=True, exist_ok=True)
        for seed in range(first, last + 1):
            rgb = np.full((16, 16, 3), 40 * int(args["class"]), np.uint8)
            Image.fromarray(rgb, "RGB").save(out / f"seed{seed:04d}.png")
    """,
}


def test_stylegan_backend_with_stub_scripts(tiny_data, tmp_path, monkeypatch):
    """The whole stylegan2-ada flow, with stand-ins for NVIDIA's scripts (no GPU needed)."""
    repo = tmp_path / "stylegan2-ada-pytorch"
    repo.mkdir()
    for name, code in STUBS.items():
        (repo / name).write_text(textwrap.dedent(code))
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    run = tmp_path / "run"
    result = train_gan(
        tiny_data,
        run,
        ["sad", "tender"],
        "stylegan2-ada",
        size=16,
        bs=8,
        kimg=3,
        stylegan_dir=repo,
        progress=False,
    )
    labels = json.loads((run / sg.EXPORT_DIR / "dataset.json").read_text())["labels"]
    assert {label for _, label in labels} == {0, 1} and all(name.startswith(("sad/", "tender/")) for name, _ in labels)
    with Image.open(run / sg.EXPORT_DIR / labels[0][0]) as exported:
        assert exported.mode == "RGB" and exported.size == (16, 16)
    meta = json.loads((run / "gan.json").read_text())
    assert meta["network"].endswith("network-snapshot-000001.pkl") and meta["stylegan_python"] == sys.executable
    trained_with = json.loads((run / meta["network"]).read_text())
    assert trained_with["kimg"] == "3" and trained_with["cond"] == "1" and trained_with["aug"] == "ada"
    assert result.metrics["losses"] == [{"kimg": 1.0, "g_loss": 0.7, "d_loss": 1.3, "augment_p": 0.05}]
    assert "fd_proxy" in result.metrics["quality"]
    written = generate_images(run, 2, tmp_path / "gen", ["tender"], progress=False)
    with Image.open(written["tender"][0]) as image:
        assert image.mode == "L" and image.size == image_size(tiny_data)
        assert np.asarray(image).max() == 40  # class index 1 → the stub's gray level 40


def test_fd_proxy_ranks_real_vs_real_below_real_vs_noise(tiny_data):
    images = np.stack([np.asarray(Image.open(p)) for p in sorted((tiny_data / "train").glob("*/*.png"))])
    rng = np.random.default_rng(0)
    order = rng.permutation(len(images))
    half_a, half_b = images[order[::2]], images[order[1::2]]
    noise = rng.integers(0, 256, size=half_b.shape, dtype=np.uint8)
    assert fd_proxy(half_a, half_b) < fd_proxy(half_a, noise)
    features = rng.normal(size=(50, 4))
    assert frechet_distance(features, features) == pytest.approx(0.0, abs=1e-6)
    assert frechet_distance(features, features + 3.0) == pytest.approx(4 * 9.0, rel=1e-6)


def test_fid_is_added_only_when_pytorch_fid_and_its_weights_are_there(tmp_path, monkeypatch):
    rng = np.random.default_rng(1)
    real = {"a": rng.integers(0, 256, (6, 20, 30), dtype=np.uint8)}
    fake = {"a": rng.integers(0, 256, (6, 20, 30), dtype=np.uint8)}
    monkeypatch.setitem(sys.modules, "pytorch_fid", None)  # not installed
    assert not quality.inception_available() and "fid" not in quality.quality_report(real, fake)

    class FakeInception(torch.nn.Module):
        BLOCK_INDEX_BY_DIM = {2048: 3}

        def __init__(self, blocks):
            super().__init__()

        def forward(self, x):
            return [torch.cat([x.mean(dim=(2, 3)), x.std(dim=(2, 3))], dim=1)[..., None, None]]

    package, module = types.ModuleType("pytorch_fid"), types.ModuleType("pytorch_fid.inception")
    module.FID_WEIGHTS_URL, module.InceptionV3 = "https://example.org/weights/pt_inception.pth", FakeInception
    monkeypatch.setitem(sys.modules, "pytorch_fid", package)
    monkeypatch.setitem(sys.modules, "pytorch_fid.inception", module)
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path))
    assert not quality.inception_available()  # installed, but its weights are not cached
    (tmp_path / "checkpoints").mkdir()
    (tmp_path / "checkpoints" / "pt_inception.pth").write_bytes(b"")
    assert quality.inception_available()
    scores = quality.quality_report(real, fake)
    assert scores["fid"]["overall"] >= 0 and set(scores["fid"]["per_class"]) == {"a"}


def test_augmentation_images_reach_training_only(gan_run, tiny_data, tmp_path):
    written = generate_images(gan_run, 2, tmp_path / "gen", progress=False)
    dls = load_dataloaders(tiny_data, size=32, bs=4, extra_train_dirs=[tmp_path / "gen"], num_workers=0)
    valid_dir = (tiny_data / "valid").resolve()
    assert dls.valid_ds.items and all(Path(p).resolve().is_relative_to(valid_dir) for p in dls.valid_ds.items)
    train_items = {Path(p).resolve() for p in dls.train_ds.items}
    generated = {p.resolve() for paths in written.values() for p in paths}
    assert len(generated) == 8 and generated <= train_items


def test_cli_train_and_generate(tiny_data, tmp_path):
    runner = CliRunner()
    run, gen = tmp_path / "run", tmp_path / "gen"
    trained = runner.invoke(
        app,
        [
            "gan",
            "train",
            str(tiny_data),
            "--class",
            "sad",
            "--steps",
            "2",
            "--size",
            "16",
            "--bs",
            "2",
            "-o",
            str(run),
        ],
    )
    assert trained.exit_code == 0, trained.output
    assert "fd_proxy" in trained.output and (run / "samples.png").is_file()
    made = runner.invoke(app, ["gan", "generate", str(run), "--n", "2", "--out", str(gen)])
    assert made.exit_code == 0, made.output
    assert sorted(p.name for p in gen.iterdir()) == ["sad"] and len(list((gen / "sad").glob("*.png"))) == 2
    refused = runner.invoke(app, ["gan", "train", str(tiny_data), "--backend", "stylegan2-ada", "-o", str(run)])
    assert isinstance(refused.exception, MerError) and "--stylegan-dir" in str(refused.exception)


def test_every_backend_trains_and_samples_from_its_table_entry(gan_run, tmp_path):
    """The backends are tables (`train.BACKENDS`, `generate.SAMPLERS`) of exactly the offered choices; a run whose
    gan.json names no known backend is refused in one line naming the file."""
    from mer_fastai.choices import GAN_BACKENDS
    from mer_fastai.gan.generate import SAMPLERS
    from mer_fastai.gan.train import BACKENDS

    assert tuple(BACKENDS) == tuple(SAMPLERS) == GAN_BACKENDS
    copy = tmp_path / "run"
    copy.mkdir()
    meta = json.loads((gan_run / "gan.json").read_text())
    (copy / "gan.json").write_text(json.dumps({**meta, "backend": "biggan"}))
    with pytest.raises(MerError, match=r"gan.json: unknown backend 'biggan'; pass a folder made by"):
        generate_images(copy, 1, tmp_path / "gen", progress=False)
