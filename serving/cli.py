"""The batch-scoring CLI for analysts: score new coverage, then summarise it.

    stance score data/articles/*.txt --out scored.csv            # or: make score ARGS="..."
    stance score export.csv more/*.jsonl --out scored.parquet --model stance_classifier:abc123
    stance score exports/ --out scored.parquet --engine ray       # on Ray (pip install -e '.[scale]')
    stance report scored.csv --out-dir reports/scored

`score` reads every input before loading the model, so bad input fails in a second, not
after an hour of scoring; it predicts through model.predictor.Predictor, the same batched
predictor as the HTTP service, in this process (--engine local) or in a pool of Ray actors
(--engine ray, serving/scale.py). Formats and columns: README.md, "Batch scoring".
"""

from __future__ import annotations

import sys
import time
from contextlib import contextmanager
from enum import Enum
from pathlib import Path
from typing import Annotated, Iterator, Optional

import typer

from serving.batch import (ADDED, OUTPUT_FORMATS, BadInput, Record, expand, input_columns, output_name,
                           parquet_types, read_records, read_scored, score_records, write_rows)
from serving.store import MODEL_NAME, ModelNotFound, load_predictor

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_show_locals=False,
                  help="Score news sentences for actor stance and sentiment, and summarise the result.")

# Items per predictor call: the predictor sorts each call's sentences by length into
# batches of --batch-size, so a call of several batches wastes little on padding, and
# the progress bar still moves every few seconds.
BATCHES_PER_CALL = 16
MAX_LISTED = 10  # skipped rows listed one by one; beyond that only counted


class Engine(str, Enum):
    local = "local"
    ray = "ray"


def _fail(message: str, code: int = 1):
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(code)


@contextmanager
def _loading(model: str) -> Iterator[None]:
    """Errors of loading ``model`` (on either engine) as one line, not a traceback."""
    try:
        yield
    except ModelNotFound as e:
        _fail(str(e))
    except Exception as e:  # a malformed tag, a model saved by other code: say so in one line
        _fail(f"cannot load model {model!r}: {e}")


@contextmanager
def _writing(out: Path) -> Iterator[None]:
    """Errors of scoring into ``out`` as one line; the writers leave no partial output."""
    try:
        yield
    except KeyboardInterrupt:
        _fail(f"interrupted; {out} was not written", 130)
    except OSError as e:
        _fail(f"cannot write {out} ({e.strerror or e})")


def _plural(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"


def _read_all(paths: list[str], skip_bad: bool) -> tuple[list[Record], list[BadInput]]:
    skipped: list[BadInput] = []
    on_bad = skipped.append if skip_bad else None
    records: list[Record] = []
    for path in paths:
        try:
            records.extend(read_records(path, on_bad))
        except BadInput as e:
            if not (skip_bad and e.whole_file):
                raise
            skipped.append(e)
    return records, skipped


def _report_skipped(skipped: list[BadInput]) -> None:
    for e in skipped[:MAX_LISTED]:
        typer.echo(f"warning: skipped {e}", err=True)
    if len(skipped) > MAX_LISTED:
        typer.echo(f"warning: ... and {len(skipped) - MAX_LISTED} more", err=True)
    files = sum(e.whole_file for e in skipped)
    rows = len(skipped) - files
    typer.echo(f"skipped {_plural(rows, 'bad row')}" + (f" and {_plural(files, 'bad file')}" if files else ""), err=True)


def _scored_chunks(predictor, records: list[Record], batch_size: int, stats: dict) -> Iterator[list[dict]]:
    from tqdm import tqdm

    step = batch_size * BATCHES_PER_CALL
    start = time.perf_counter()
    with tqdm(total=len(records), desc="scoring", unit="sentence", file=sys.stderr, mininterval=0.5) as bar:
        for i in range(0, len(records), step):
            rows, pairs, no_actor = score_records(predictor, records[i : i + step], progress=bar.update)
            stats["pairs"] += pairs
            stats["no_actor"] += no_actor
            bar.set_postfix_str(f"{stats['pairs'] / (time.perf_counter() - start):.0f} pairs/s", refresh=False)
            yield rows


@app.command()
def score(
    inputs: Annotated[list[str], typer.Argument(help="Files, folders or globs: .txt articles, .jsonl, .csv or .parquet "
                                                     "tables with a 'sentence' column (and optional 'actor', 'mention').",
                                                metavar="INPUTS", show_default=False)],
    out: Annotated[Path, typer.Option("--out", help="Output; its extension picks the format: .jsonl, .csv or .parquet "
                                                    "(with --engine ray, .parquet is a folder of Parquet files).",
                                      show_default=False)],
    model: Annotated[str, typer.Option("--model", help="Model tag in the BentoML store ($BENTOML_HOME).")] = f"{MODEL_NAME}:latest",
    batch_size: Annotated[int, typer.Option("--batch-size", min=1, help="Sentences or pairs per forward pass.")] = 32,
    skip_bad: Annotated[bool, typer.Option("--skip-bad", help="Skip bad rows and unreadable files (and say how many) "
                                                              "instead of stopping.")] = False,
    engine: Annotated[Engine, typer.Option("--engine", help="Where the model runs: in this process (local), or in a pool "
                                                            "of Ray actors (ray; needs pip install -e '.\\[scale]').")] = Engine.local,
    ray_address: Annotated[Optional[str], typer.Option("--ray-address", envvar="RAY_ADDRESS", show_envvar=True,
                                                       help="With --engine ray: the Ray cluster to join, e.g. auto (the one this "
                                                            "machine is part of) or head-node:6379 (default: start a "
                                                            "local Ray instance sized to this machine).",
                                                       show_default=False)] = None,
    workers: Annotated[Optional[int], typer.Option("--workers", min=1, help="With --engine ray: actors in the pool, each "
                                                                            "with one CPU and its own copy of the model "
                                                                            "(default: one per CPU of the Ray cluster).",
                                                   show_default=False)] = None,
) -> None:
    """Score sentences: one output row per (sentence, actor) pair, or one with an empty actor."""
    if out.suffix.lower() not in OUTPUT_FORMATS:
        _fail(f"--out {out}: unsupported format {out.suffix or '(none)'!r}; expected .jsonl, .csv or .parquet", 2)
    if engine is Engine.ray:
        from serving.scale import RayMissing, require_ray

        try:
            require_ray()
        except RayMissing as e:
            _fail(str(e))
    elif workers is not None:
        _fail("--workers is for --engine ray; the local engine scores in this process", 2)
    try:
        paths = expand(inputs)
    except BadInput as e:
        _fail(str(e))
    try:
        records, skipped = _read_all(paths, skip_bad)
    except BadInput as e:
        _fail(f"{e}; use --skip-bad to skip it")
    if skipped:
        _report_skipped(skipped)
    if not records:
        _fail("nothing to score: the inputs hold no sentences")

    columns = [output_name(c) for c in input_columns(records)] + list(ADDED)
    types = parquet_types(records) if out.suffix.lower() == ".parquet" else None
    stats = {"pairs": 0, "no_actor": 0}
    if engine is Engine.ray:
        start = time.perf_counter()  # Ray's start-up and the actors' model loading are part of its time
        n, tag, how = _score_on_ray(records, out, columns, types, model, batch_size, ray_address, workers, stats)
    else:
        with _loading(model):
            predictor = load_predictor(model, batch_size=batch_size)
        start = time.perf_counter()
        with _writing(out):
            n = write_rows(out, columns, _scored_chunks(predictor, records, batch_size, stats), types)
        tag, how = predictor.tag, ""
    seconds = time.perf_counter() - start
    typer.echo(f"wrote {_plural(n, 'row')} to {out}: {_plural(stats['pairs'], 'pair')} and "
               f"{_plural(stats['no_actor'], 'sentence')} without an actor, from {_plural(len(records), 'input sentence')}; "
               f"model {tag}; {seconds:.1f}s ({stats['pairs'] / seconds:.0f} pairs/s){how}", err=True)


def _score_on_ray(records, out, columns, types, model, batch_size, address, workers, stats) -> tuple[int, str, str]:
    """`score` with --engine ray: the same records, chunks and output, scored by Ray actors."""
    from serving.scale import RayRun, RayUnavailable, load_model_files

    with _loading(model):
        files, tag = load_model_files(model)
    run = RayRun(files, tag, batch_size=batch_size, chunk=batch_size * BATCHES_PER_CALL, address=address, workers=workers)
    with _writing(out):
        try:
            n = run.score(records, out, columns, types, stats)
        except RayUnavailable as e:
            _fail(str(e))
    return n, tag, f"; on Ray, {_plural(run.workers, 'worker')} (Ray up in {run.startup:.1f}s)"


@app.command()
def report(
    scored: Annotated[Path, typer.Argument(help="A file written by `stance score` (.jsonl, .csv or .parquet).",
                                           metavar="SCORED", show_default=False)],
    out_dir: Annotated[Optional[Path], typer.Option("--out-dir", help="Folder for summary.md, summary.csv and "
                                                                      "stance_by_actor.png (default: the folder "
                                                                      "SCORED-NAME_report beside the scored file)", show_default=False)] = None,
    min_pairs: Annotated[int, typer.Option("--min-pairs", min=1, help="Leave actors with fewer pairs out of the chart "
                                                                      "(the tables keep them).")] = 1,
) -> None:
    """Summarise a scored file per actor (and per source): Markdown, CSV and a PNG chart."""
    from serving.report import write_report

    out_dir = out_dir or scored.with_name(f"{scored.stem}_report")
    try:
        paths = write_report(str(scored), out_dir, read_scored(str(scored)), min_pairs)
    except BadInput as e:
        _fail(str(e))
    for path in paths.values():
        typer.echo(f"wrote {path}", err=True)


if __name__ == "__main__":
    app()
