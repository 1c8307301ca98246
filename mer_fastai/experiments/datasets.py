"""The data a recipe's cells train on, made once in the grid folder and reused on every rerun.

Under --out: `demo-audio/` (the built-in demo set, synthesised once), `data/<dataset>-<feature>[-<preset>]/`
(each data set prepared per feature, and again in an architecture's own input preset where the recipe's
spectrogram does not fit it), `baseline/<dataset>-<feature>/` (the classic-ML reference rows, once per data
version) and `gan/<dataset>-<feature>-<backend>-<steps>steps/` (a GAN trained on the training split and the
images it generated, Experiment C).
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from .._plumbing.progress import console
from ..bounds import quote
from ..data.dataset import DATASET_FILE
from ..data.spectrogram import SpecConfig, preset
from ..data.synth import demo_set
from ..models.archs import contract_differences, get_arch
from ..preparation.prepare import prepare_dataset
from ..runs.layout import GAN_DONE, GAN_GENERATED, GAN_MODEL, GRID_BASELINE, GRID_DATA, GRID_DEMO_AUDIO, GRID_GAN
from .recipe_schema import DatasetSpec, Recipe, stage_archs
from .state import State

BASELINE_SCORING = "tracks/1"  # change when the baseline's rows change, so that grids redo them once


class RecipeData:
    """Where a recipe's data sets, demo audio, baseline and GAN folders lie under `out`, and how each is made."""

    def __init__(self, recipe: Recipe, out: Path, spec: SpecConfig, aggregate: str):
        """`spec`: the recipe's spectrogram; `aggregate`: how the cells combine a track's windows (the
        baseline's tracks are combined the same way)."""
        self.recipe, self.out, self.spec, self.aggregate = recipe, out, spec, aggregate

    def folders(self) -> list[Path]:
        """Every folder the recipe's data takes under `out` (checked before anything is written)."""
        paths = []
        for stage in self.recipe.stages:
            spec = self.recipe.datasets[stage.dataset]
            if spec.is_demo:
                paths.append(self.demo_folder(stage.dataset, spec))
            for feature in stage.features:
                paths.extend(self.data_dir(stage.dataset, feature, own) for own in self.own_inputs())
                if self.recipe.baseline:
                    paths.append(self.baseline_dir(stage.dataset, feature))
                if "gan" in stage.augmentations:
                    paths.append(self.gan_folder(stage.dataset, feature))
        return paths

    def demo_folder(self, name: str, spec: DatasetSpec) -> Path:
        demo = spec.demo
        return self.out / GRID_DEMO_AUDIO / f"{name}-{demo.clips_per_class}x{demo.seconds:g}s-seed{demo.seed}"

    def data_dir(self, name: str, feature: str, preset: str | None = None) -> Path:
        """The data set of `name` and `feature`; `preset`: the one prepared with an architecture's own input."""
        return self.out / GRID_DATA / (f"{name}-{feature}" + (f"-{preset}" if preset else ""))

    def baseline_dir(self, name: str, feature: str) -> Path:
        return self.out / GRID_BASELINE / f"{name}-{feature}"

    def gan_folder(self, name: str, feature: str) -> Path:
        gan = self.recipe.gan
        return self.out / GRID_GAN / f"{name}-{feature}-{gan.backend}-{gan.steps}steps"

    def arch_input(self, arch: str) -> str | None:
        """The spectrogram preset `arch` reads when the recipe's spectrogram does not fit it (e.g. musicnn in
        expB, whose data sets are 10 s dB images): its cells get a data set of their own. None: the recipe's."""
        table = get_arch(arch)
        return table.spectrogram if contract_differences(table, self.spec) else None

    def own_inputs(self) -> list[str | None]:
        """The inputs the recipe's data sets are prepared in: None (the recipe's spectrogram) and each preset."""
        archs = [arch for stage in self.recipe.stages for arch in stage_archs(self.recipe, stage)]
        return list(dict.fromkeys([None, *(self.arch_input(arch) for arch in archs)]))

    def prepare(self, state: State, name: str, feature: str, own: str | None = None) -> Path:
        """The data set of `name` and `feature` (prepared or resumed); `own`: an architecture's input preset,
        whose data set is the same clips and split in that input (the baseline reads the recipe's only and
        records its rows in `state`)."""
        spec = self.recipe.datasets[name]
        audio, labels = self._audio(name, spec)
        data_dir = self.data_dir(name, feature, own)
        prepare_dataset(
            audio,
            data_dir,
            feature,
            spec.label_source(labels, self.recipe),
            spec=preset(own) if own else self.spec,
            valid_pct=self.recipe.valid_pct,
            test_pct=self.recipe.test_pct,
            seed=self.recipe.seed,
            task=self.recipe.task,
        )
        if self.recipe.baseline and own is None:
            self._baseline(state, name, feature, data_dir)
        return data_dir

    def gan_images(self, name: str, feature: str, data_dir: Path) -> str:
        """Train the GAN on the training split once and generate images per class (Experiment C)."""
        from ..gan.generate import generate_images
        from ..gan.train import train_gan

        gan = self.recipe.gan
        folder = self.gan_folder(name, feature)
        generated = folder / GAN_GENERATED
        if not (folder / GAN_DONE).exists():
            console.rule(f"[bold]GAN ({gan.backend}) for {name} · {feature}")
            options = {"stylegan_dir": gan.stylegan_dir} if gan.stylegan_dir else {}
            train_gan(
                data_dir,
                folder / GAN_MODEL,
                backend=gan.backend,
                steps=gan.steps,
                size=gan.size,
                seed=self.recipe.seed,
                **options,
            )
            generate_images(folder / GAN_MODEL, gan.images_per_class, generated)
            (folder / GAN_DONE).write_text("ok\n")
        return str(generated)

    def _audio(self, name: str, spec: DatasetSpec) -> tuple[Path, Path | None]:
        """A data set's audio folder and labels file; the built-in demo set is synthesised once."""
        if not spec.is_demo:
            return Path(spec.audio), Path(spec.labels) if spec.labels else None
        folder = self.demo_folder(name, spec)
        demo, note = spec.demo, f"synthesising the built-in demo set {quote(name)} into {folder}"
        return demo_set(folder, demo.clips_per_class, demo.seconds, seed=demo.seed, announce=note)

    def _baseline(self, state: State, name: str, feature: str, data_dir: Path) -> None:
        """The classic-ML reference rows for this data set and feature (once per data version)."""
        from ..evaluation.baseline.classic import run_baseline
        from ..evaluation.baseline.folds import cross_validate_baseline

        recipe = self.recipe
        marker = f"{recipe.experiment}-baseline-{name}-{feature}"
        folds = f":cv{recipe.folds}x{recipe.repeats}" if recipe.folds else ""  # none: as before
        scoring = f"{BASELINE_SCORING}:{self.aggregate}{folds}".encode()
        fingerprint = hashlib.sha1((data_dir / DATASET_FILE).read_bytes() + scoring).hexdigest()[:16]
        if state.cells.get(marker, {}).get("fingerprint") == fingerprint:
            return
        console.rule(f"[bold]classic-ML reference for {name} · {feature}")
        out = self.baseline_dir(name, feature)
        if recipe.folds:  # scored on the folds the cells cross-validate (same clips, same seed)
            rows = cross_validate_baseline(
                data_dir, out, recipe.folds, recipe.repeats, seed=recipe.seed, aggregate=self.aggregate
            ).rows
        else:
            rows = run_baseline(data_dir, out, seed=recipe.seed, aggregate=self.aggregate)
        for row in rows:
            row.update(experiment=recipe.experiment, dataset=name, stage="baseline", task=recipe.task)
            state.record(f"{marker}-{row['arch']}", {"status": "done", "fingerprint": fingerprint, "row": row})
        state.record(marker, {"status": "marker", "fingerprint": fingerprint})
