"""The task store: `<root>/<task_id>/` holds a task's three images.

    tasks/
      71680285/
        init.png        (or .jpg, .jpeg, .webp)
        mask.png
        character.jpg

Task ids are letters, digits, '-' and '_' (at most 128), so that no id can name a path outside the
store. Results written by the CLI go next to the images under `<root>/<task_id>/out/` unless another
output folder is given.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from orchestrator.errors import InvalidInputError

TASK_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,127}$")
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp")
ROLES = ("init", "mask", "character")


@dataclass(frozen=True)
class TaskFiles:
    task_id: str
    folder: Path
    init: Path
    mask: Path
    character: Path

    def read(self) -> tuple[bytes, bytes, bytes]:
        return self.init.read_bytes(), self.mask.read_bytes(), self.character.read_bytes()


class TaskStore:
    def __init__(self, root: Path) -> None:
        self.root = root

    def folder(self, task_id: str) -> Path:
        if not TASK_ID.fullmatch(task_id):
            raise InvalidInputError(
                "task_id", f"{task_id!r} is not a task id (letters, digits, '-' and '_', at most 128 characters)"
            )
        folder = (self.root / task_id).resolve()
        if folder.parent != self.root.resolve():  # belt and braces: the pattern already forbids it
            raise InvalidInputError("task_id", f"{task_id!r} points outside the task store")
        return folder

    def find(self, task_id: str) -> TaskFiles:
        folder = self.folder(task_id)
        if not folder.is_dir():
            raise InvalidInputError("task_id", f"no task {task_id!r} in the task store {self.root}")
        found: dict[str, Path] = {}
        for role in ROLES:
            candidates = [
                folder / f"{role}{suffix}" for suffix in IMAGE_SUFFIXES if (folder / f"{role}{suffix}").is_file()
            ]
            if not candidates:
                names = "|".join(s.lstrip(".") for s in IMAGE_SUFFIXES)
                raise InvalidInputError("task_id", f"task {task_id!r} has no {role}.{{{names}}} in {folder}")
            if len(candidates) > 1:
                raise InvalidInputError(
                    "task_id", f"task {task_id!r} has several {role} images: {[c.name for c in candidates]}"
                )
            found[role] = candidates[0]
        return TaskFiles(task_id, folder, found["init"], found["mask"], found["character"])
