"""Load the predictor from the BentoML model store: serving's side of the contract with
training (they meet only through the store tag).

    python -m serving.store --exists stance_classifier:latest   # exit 0 if the store has it
"""

from __future__ import annotations

import argparse
import sys

MODEL_NAME = "stance_classifier"


class ModelNotFound(RuntimeError):
    pass


def get_model(tag: str = f"{MODEL_NAME}:latest"):
    import bentoml

    try:
        return bentoml.models.get(tag)
    except bentoml.exceptions.NotFound:
        raise ModelNotFound(f"no model {tag!r} in the BentoML store; run `make train` first") from None


def load_predictor(tag: str = f"{MODEL_NAME}:latest", **kwargs):
    from model.predictor import Predictor

    bento_model = get_model(tag)
    return Predictor.load(bento_model.path, tag=str(bento_model.tag), **kwargs)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description="Query the model store.")
    parser.add_argument("--exists", metavar="TAG", default=f"{MODEL_NAME}:latest", help="exit 0 if TAG is in the store")
    args = parser.parse_args(argv)
    try:
        print(get_model(args.exists).tag)
        return 0
    except ModelNotFound as e:
        print(e, file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
