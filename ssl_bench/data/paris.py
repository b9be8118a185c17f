"""Paris StreetView folders: the data of Pathak et al. 2016, Table 1 (PAPER.md §4).

Paris StreetView (Doersch et al., SIGGRAPH 2012, "What makes Paris look like Paris?") is not public on the
web; its authors send it on request. The context-encoder release uses it as two folders of images:

- ``paris_train_original/``: the training images (14,900 street-level photographs);
- ``paris_eval_gt/``: the held-out images of Table 1 (100 images).

A folder holding those two, or ``train/`` and ``test/`` (any other split of one's own), is read here; the
images may be in subfolders and of any size and format ``ImageFolderIndex`` reads. Nothing else is
assumed: no labels, no file names.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from ssl_bench.data.folder import ImageFolderIndex
from ssl_bench.errors import DataError

# (train folder, test folder) names, in the order they are looked for.
PARIS_LAYOUTS: tuple[tuple[str, str], ...] = (
    ("paris_train_original", "paris_eval_gt"),  # the public release (pathak22/context-encoder README)
    ("train", "test"),
)
PARIS_LAYOUT_HELP = " or ".join(f"{train}/ and {test}/" for train, test in PARIS_LAYOUTS)


@dataclass(frozen=True)
class ParisStreetView:
    """A Paris StreetView folder: its training images (the NN database) and its held-out test images."""

    root: Path
    train: Path
    test: Path

    def train_index(self) -> ImageFolderIndex:
        return ImageFolderIndex(self.train, labels="none")

    def test_index(self) -> ImageFolderIndex:
        return ImageFolderIndex(self.test, labels="none")


def find_paris_streetview(root: str | os.PathLike) -> ParisStreetView | None:
    """The first layout of ``PARIS_LAYOUTS`` whose two folders are both under ``root``; None if none is."""
    root = Path(root)
    for train, test in PARIS_LAYOUTS:
        if (root / train).is_dir() and (root / test).is_dir():
            return ParisStreetView(root, root / train, root / test)
    return None


def paris_streetview(root: str | os.PathLike) -> ParisStreetView:
    """The Paris StreetView folder at ``root``.

    Raises:
        DataError: ``root`` holds neither layout (the message names both and what ``root`` does hold), or
            its test folder is its train folder.
    """
    root = Path(root)
    found = find_paris_streetview(root)
    if found is None:
        present = sorted(p.name + "/" for p in root.iterdir() if p.is_dir()) if root.is_dir() else []
        raise DataError(
            f"{root}: not a Paris StreetView folder: expected {PARIS_LAYOUT_HELP} "
            f"(found {', '.join(present) if present else 'no folder'})"
        )
    if found.train.resolve() == found.test.resolve():
        raise DataError(f"{root}: the train and test folders are the same folder ({found.test.resolve()})")
    return found
