"""Pairing audio files with the rows of a `LabelTable`: clip ids from paths, and the files matched, left out
or unlabelled.

An id with a folder separator names a clip by its path relative to the audio folder; any other id names it by
file name. File and folder names are compared in Unicode NFC; two names that differ only in normalisation
are refused (`check_unicode_aliases`).
"""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

from ..bounds import quote
from ..errors import MerError
from .audio import SkippedFile
from .labelfiles import ClipLabel, LabelTable, code_points, nfc, normalize_id, shown_id


def clip_id(audio_dir: str | Path, file: Path) -> str:
    """A clip's identity: its path relative to the audio folder, without extension, with `/` separators, in NFC."""
    return nfc(_relative(Path(audio_dir), file).with_suffix("").as_posix())


def _relative(root: Path, file: Path) -> Path:
    """`file` relative to the audio folder `root` (just its name where it lies elsewhere)."""
    return file.relative_to(root) if root.is_dir() and file.is_relative_to(root) else Path(file.name)


def check_unicode_aliases(audio_dir: str | Path, files: list[Path]) -> None:
    """Refuse two file or folder names in one folder that differ only in Unicode normalisation (e.g. folders
    `Café` with a composed and with a decomposed `é`): they print alike and would name one clip, or one class."""
    root = Path(audio_dir)
    seen: dict[str, tuple[str, ...]] = {}
    for file in files:
        parts = _relative(root, file).parts
        for end in range(1, len(parts) + 1):
            other = seen.setdefault(nfc("/".join(parts[:end])), parts[:end])
            if other != parts[:end]:
                kind = "file names" if end == len(parts) else "folder names"
                raise MerError(
                    f"{root.joinpath(*parts[: end - 1])}: the {kind} {code_points(other[-1])} and "
                    f"{code_points(parts[end - 1])} differ only in how their accents are encoded (Unicode "
                    "normalisation), so they would name one clip or class; rename or merge one of them"
                )


def match_clips(
    audio_dir: str | Path, files: list[Path], table: LabelTable
) -> tuple[list[tuple[Path, str, ClipLabel]], list[tuple[Path, str]], list[Path]]:
    """Pair audio files with the table's rows: `(file, clip id, label)` of the labelled files, `(file, why)`
    of those the table leaves out, and the files without a row.

    An id with a folder separator names a clip by its path relative to `audio_dir`; any other id names it
    by file name, and must then name one clip only. Names are compared in NFC (see `check_unicode_aliases`).
    """
    check_unicode_aliases(audio_dir, files)
    ids = {file: clip_id(audio_dir, file) for file in files}
    by_path: dict[str, list[Path]] = defaultdict(list)
    by_stem: dict[str, list[Path]] = defaultdict(list)
    for file, name in ids.items():
        by_path[normalize_id(name)].append(file)
        by_stem[normalize_id(file.name)].append(file)
    found: dict[Path, tuple[str, ClipLabel | str]] = {}
    for key, value in [*table.labels.items(), *table.excluded.items()]:
        candidates = (by_path if "/" in key else by_stem).get(key, [])
        if len(candidates) > 1:
            first, second = candidates[:2]
            raise MerError(
                f"{table.source}: id {quote(key)} matches more than one clip ({first} and {second}); use ids with the "
                f"folder, relative to {audio_dir} (e.g. {quote(ids[first])}), or rename one of the files"
            )
        for file in candidates:
            earlier = found.setdefault(file, (key, value))
            if earlier[1] != value:
                raise MerError(
                    f"{table.source}: ids {quote(earlier[0])} and {quote(key)} both name {file} "
                    "but give different labels; "
                    "keep one of the rows"
                )
    matched: list[tuple[Path, str, ClipLabel]] = []
    excluded: list[tuple[Path, str]] = []
    unlabeled: list[Path] = []
    for file in files:
        value = found.get(file, ("", None))[1]
        if isinstance(value, ClipLabel):
            matched.append((file, ids[file], value))
        elif value is not None:
            excluded.append((file, value))
        else:
            unlabeled.append(file)
    return matched, excluded, unlabeled


def unlabeled_error(audio_dir: str | Path, unlabeled: list[Path], table: LabelTable) -> MerError:
    """The one-line error for audio files without a row in the labels file."""
    first = unlabeled[0]
    return MerError(
        f"{first}: id {shown_id(clip_id(audio_dir, first))} has no row in {table.source} ({len(unlabeled)} file(s) "
        "unlabeled); add the rows or pass --skip-unlabeled"
    )


def labelled_files(
    audio_dir: str | Path, files: list[Path], table: LabelTable, skip_unlabeled: bool
) -> tuple[list[tuple[Path, str, ClipLabel]], list[SkippedFile]]:
    """`match_clips` for the inference verbs (evaluate, embed): the matched files, and those left out with
    why (left out by the feature, or with --skip-unlabeled no row); unlabeled files are otherwise an error."""
    matched, excluded, unlabeled = match_clips(audio_dir, files, table)
    if unlabeled and not skip_unlabeled:
        raise unlabeled_error(audio_dir, unlabeled, table)
    skipped = [SkippedFile(str(file), f"{reason} ({table.source})") for file, reason in excluded]
    skipped += [SkippedFile(str(file), f"no row in {table.source}") for file in unlabeled]
    return matched, skipped
