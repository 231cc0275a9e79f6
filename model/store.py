"""Find a saved model in the BentoML model store, by tag, without importing BentoML.

    python -m model.store --exists stance_classifier:latest   # exit 0 if the store has it

The store is BentoML's own: ``$BENTOML_HOME`` if set, else ``~/bentoml`` (BentoML's default),
so ``make train``, ``make serve``, ``stance score`` and ``bentoml list`` all see the same
models with nothing exported. Its layout is ``models/<name>/<version>/`` with a ``latest``
file naming the newest version; training writes it through ``bentoml.models.create``.
"""

from __future__ import annotations

import os
from pathlib import Path

MODEL_NAME = "stance_classifier"


class ModelNotFound(LookupError):
    pass


def home() -> Path:
    return Path(os.environ.get("BENTOML_HOME") or Path.home() / "bentoml")


def tags(name: str = MODEL_NAME) -> list[str]:
    """The tags of ``name`` in the store, newest first."""
    folder = home() / "models" / name
    if not folder.is_dir():
        return []
    versions = [p for p in folder.iterdir() if p.is_dir() and (p / "model.yaml").exists()]
    return [f"{name}:{p.name}" for p in sorted(versions, key=lambda p: p.stat().st_mtime, reverse=True)]


def find(tag: str = f"{MODEL_NAME}:latest") -> tuple[Path, str]:
    """(the model's folder, its resolved tag). Raises ModelNotFound with one line that names
    the store searched and the tags it holds."""
    name, _, version = tag.partition(":")
    version = version or "latest"
    folder = home() / "models" / name
    if version == "latest" and (folder / "latest").exists():
        version = (folder / "latest").read_text(encoding="utf-8").strip()
    path = folder / version
    if version == "latest" or not (path / "model.yaml").exists():
        held = tags(name)
        have = f"it holds {', '.join(held[:5])}{' …' if len(held) > 5 else ''}" if held else f"it holds no {name} model"
        raise ModelNotFound(f"no model {tag!r} in the BentoML store at {home()} ({have}); run `make train` first, "
                            "or set BENTOML_HOME to the store that has it")
    return path, f"{name}:{version}"


def main(argv=None) -> int:
    """``python -m model.store --exists TAG``: exit 0 and print the tag if the store has it
    (what `make serve` runs to decide whether to train first)."""
    import argparse
    import sys

    parser = argparse.ArgumentParser(description="Look a model up in the BentoML store.")
    parser.add_argument("--exists", metavar="TAG", default=f"{MODEL_NAME}:latest", help="exit 0 if TAG is in the store")
    args = parser.parse_args(argv)
    try:
        print(find(args.exists)[1])
        return 0
    except ModelNotFound as e:
        print(e, file=sys.stderr)
        return 1


if __name__ == "__main__":
    raise SystemExit(main())
