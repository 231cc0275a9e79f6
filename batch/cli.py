"""The batch-scoring CLI for analysts: score new coverage, then summarise it.

    stance score data/articles/*.txt --out scored.csv            # or: make score ARGS="..."
    stance score export.csv.gz more/*.jsonl --out scored.parquet --text-column body
    zcat feed.csv.gz | stance score - --format csv --out - --out-format csv > scored.csv
    stance score exports/ --out scored.parquet --engine ray       # on Ray (pip install -e '.[scale]')
    stance score data/articles/*.txt --out scored.jsonl --explain  # + each pair's evidence (slower)
    stance report scored.csv --out-dir reports/scored
    stance --version

`score` reads and checks every input before loading the model, so bad input fails in a
second, not after an hour of scoring; it predicts through model.predictor.Predictor, the
same batched predictor as the HTTP service, in this process (--engine local,
batch/scoring.py) or in a pool of Ray actors (--engine ray, batch/ray_engine.py). This
module only turns options into calls and errors into one line on stderr (exit code 1 for
bad input, 2 for bad options). Formats and columns: README.md, "Batch scoring".
"""

from __future__ import annotations

import sys
import time
from contextlib import contextmanager
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import Annotated, Iterator, Optional

import typer

from batch.inputs import (ACTOR_COLUMNS, INPUT_FORMATS, MENTION_COLUMNS, STDIN, TEXT_COLUMNS, BadInput, Columns,
                          ReadOptions, Record, expand, read_inputs)
from batch.ray_engine import RayMissing, RayUnavailable, require_ray
from batch.report import DATE_COLUMNS, DAYS_BY_DAY, OUTLET_NAMES, PERIODS, ReportOptions
from batch.rows import output_columns
from batch.scoring import Tally, score_locally
from batch.writers import STREAM_FORMATS, BadOutput, Output, check_not_an_input, output, parquet_types, write_rows
from model.store import MODEL_NAME, ModelNotFound

DISTRIBUTION = "riyadh-stance"  # the name pyproject.toml installs the project under
MAX_LISTED = 10  # skipped rows and furniture lines listed one by one; beyond that only counted
FURNITURE_CHARS = 80  # a skipped line is shown up to this length

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_show_locals=False,
                  help="Score news sentences for actor stance and sentiment, and summarise the result.")

Engine = Enum("Engine", {"local": "local", "ray": "ray"}, type=str)
InputFormat = Enum("InputFormat", {f[1:]: f[1:] for f in INPUT_FORMATS}, type=str)
OutFormat = Enum("OutFormat", {f[1:]: f[1:] for f in STREAM_FORMATS}, type=str)
Period = Enum("Period", {p: p for p in PERIODS}, type=str)


def _names(names: tuple[str, ...]) -> str:
    return ", ".join(names[:-1]) + f" or {names[-1]}" if len(names) > 1 else names[0]


def _fail(message: str, code: int = 1):
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(code)


def _say(line: str) -> None:
    """A line on stderr that leaves a progress bar intact."""
    from tqdm import tqdm

    tqdm.write(line, file=sys.stderr)


def _plural(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"


def _version(value: bool) -> None:
    if value:
        from importlib.metadata import PackageNotFoundError, version

        try:
            typer.echo(f"stance {version(DISTRIBUTION)}")
        except PackageNotFoundError:
            typer.echo("stance (not installed: pip install -e .)")
        raise typer.Exit()


@app.callback()
def main(version: Annotated[bool, typer.Option("--version", callback=_version, is_eager=True,
                                               help="Print the version and exit.")] = False) -> None:
    """Score news sentences for actor stance and sentiment, and summarise the result."""


class Skips:
    """What a run leaves out, on stderr: each bad row or file and each line of page
    furniture, the first MAX_LISTED of each listed, all counted at the end. Without
    --skip-bad, a bad row stops the run instead."""

    def __init__(self, skip_bad: bool):
        self.skip_bad, self.bad, self.furniture = skip_bad, [], 0

    def bad_input(self, error: BadInput) -> None:
        if not self.skip_bad:
            raise error
        self.bad.append(error)
        if len(self.bad) <= MAX_LISTED:
            _say(f"warning: skipped {error}")

    def furniture_line(self, path: str, line: int, text: str) -> None:
        self.furniture += 1
        if self.furniture <= MAX_LISTED:
            shown = text if len(text) <= FURNITURE_CHARS else text[: FURNITURE_CHARS - 1] + "…"
            _say(f"{path}:{line}: skipped '{shown}' (page furniture)")

    def summary(self) -> Iterator[str]:
        if self.furniture:
            listed = f" (the first {MAX_LISTED} listed above)" if self.furniture > MAX_LISTED else ""
            yield f"skipped {_plural(self.furniture, 'line')} of page furniture{listed}"
        if self.bad:
            files = sum(e.whole_file for e in self.bad)
            listed = f" (the first {MAX_LISTED} listed above)" if len(self.bad) > MAX_LISTED else ""
            yield (f"skipped {_plural(len(self.bad) - files, 'bad row')}"
                   + (f" and {_plural(files, 'bad file')}" if files else "") + listed)


@contextmanager
def _loading(model: str) -> Iterator[None]:
    """Errors of loading ``model`` (on either engine) as one line, not a traceback."""
    try:
        yield
    except ModelNotFound as e:
        _fail(str(e))
    except Exception as e:  # a precision the model failed, a corrupt model: say so in one line
        _fail(f"cannot load model {model!r}: {e}")


@contextmanager
def _running(out: Output) -> Iterator[None]:
    """Errors of scoring into ``out`` as one line; the writers leave no partial file."""
    try:
        yield
    except BadInput as e:  # a row whose scoring failed, without --skip-bad
        _fail(f"{e}; use --skip-bad to skip it")
    except RayUnavailable as e:
        _fail(str(e))
    except KeyboardInterrupt:
        _fail("interrupted" + (f"; {out} was not written" if out.path else ""), 130)
    except BrokenPipeError:
        if out.path is not None:
            raise
        _reader_gone()
    except OSError as e:
        _fail(f"cannot write {out} ({e.strerror or e})")


def _reader_gone():
    """Stop quietly when the reader of --out - has closed the pipe (`stance score ... --out - | head`),
    as a Unix tool killed by SIGPIPE does (exit code 141), without a last failed flush at exit."""
    import os

    try:
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    except (OSError, ValueError):  # no file descriptor behind stdout (a test runner's buffer)
        pass
    raise typer.Exit(141)


@dataclass
class Job:
    """A `stance score` run once its inputs are read: what to score, where, and with what."""

    records: list[Record]
    target: Output
    skips: Skips
    model: str
    precision: str
    backend: str
    batch_size: int
    explain: bool = False

    def __post_init__(self):
        self.columns = output_columns(self.records, self.explain)
        self.types = parquet_types(self.records) if self.target.fmt == ".parquet" else None
        self.tally = Tally(len(self.records))


def _check_options(out: str, out_format, inputs: list[str], input_format, encoding: str, precision: str,
                   engine, workers) -> Output:
    """The options that are wrong whatever the input holds: exit code 2."""
    import codecs

    try:
        target = output(out, out_format.value if out_format else None)
    except BadOutput as e:
        _fail(str(e), 2)
    if (STDIN in inputs) != (input_format is not None):
        _fail("reading stdin (-) needs --format" if STDIN in inputs else
              "--format is for stdin (-); a file's extension names its format", 2)
    try:
        codecs.lookup(encoding)
    except LookupError:
        _fail(f"--encoding {encoding}: unknown encoding", 2)
    from model.precision import PRECISIONS  # imports torch: after the checks that need nothing

    if precision not in PRECISIONS:
        _fail(f"--precision {precision}: expected one of {', '.join(PRECISIONS)}", 2)
    if engine is Engine.ray:
        try:
            require_ray()
        except RayMissing as e:
            _fail(str(e))
    elif workers is not None:
        _fail("--workers is for --engine ray; the local engine scores in this process", 2)
    return target


@app.command()
def score(
    inputs: Annotated[list[str], typer.Argument(
        help="Files, folders or globs: .txt articles; .jsonl, .csv, .tsv or .parquet tables with a text column (and "
             "optionally actor and mention columns); any of them .gz; - for stdin (with --format).",
        metavar="INPUTS", show_default=False)],
    out: Annotated[str, typer.Option("--out", help="Output; its extension picks the format: .jsonl, .csv or .parquet "
                                                   "(with --engine ray, .parquet is a folder of Parquet files); - streams "
                                                   "JSONL (or --out-format csv) to stdout.", show_default=False)],
    out_format: Annotated[Optional[OutFormat], typer.Option("--out-format", help="With --out -: the format streamed "
                                                                                 "to stdout (default: jsonl).",
                                                            show_default=False)] = None,
    model: Annotated[str, typer.Option("--model", help="Model tag in the BentoML store ($BENTOML_HOME, else ~/bentoml).")
                     ] = f"{MODEL_NAME}:latest",
    precision: Annotated[str, typer.Option("--precision", help="Encoder precision: auto (bf16 where the CPU has bf16 "
                                                               "matrix units and the model passed its bf16 check, else "
                                                               "fp32), fp32, bf16 or int8.")] = "auto",
    backend: Annotated[str, typer.Option("--backend", help="The encoder's runtime: auto (with fp32, the faster of "
                                                           "PyTorch and ONNX Runtime, timed at the first load and "
                                                           "remembered in STANCE_CACHE_DIR), torch or onnx.")
                       ] = "auto",
    batch_size: Annotated[int, typer.Option("--batch-size", min=1, help="Sentences or pairs per forward pass.")] = 32,
    skip_bad: Annotated[bool, typer.Option("--skip-bad", help="Skip bad rows, rows whose scoring fails and unreadable "
                                                              "files (and say how many) instead of stopping.")] = False,
    text_column: Annotated[Optional[str], typer.Option("--text-column", help="The column of the sentences (default: "
                                                                             f"{_names(TEXT_COLUMNS)}, in any case).",
                                                       show_default=False)] = None,
    actor_column: Annotated[Optional[str], typer.Option("--actor-column", help="The column of the actors (default: "
                                                                               f"{_names(ACTOR_COLUMNS)}, in any case, "
                                                                               "if there is one).",
                                                        show_default=False)] = None,
    mention_column: Annotated[Optional[str], typer.Option("--mention-column", help="The column of the mentions "
                                                                                   f"(default: {_names(MENTION_COLUMNS)}"
                                                                                   ", in any case, if there is one).",
                                                          show_default=False)] = None,
    input_format: Annotated[Optional[InputFormat], typer.Option("--format", help="The format of stdin (-).",
                                                                show_default=False)] = None,
    encoding: Annotated[str, typer.Option("--encoding", help="The text encoding of .txt, .jsonl, .csv and .tsv inputs, "
                                                             "e.g. cp1252 or latin-1.")] = "utf-8",
    engine: Annotated[Engine, typer.Option("--engine", help="Where the model runs: in this process (local), or in a pool "
                                                            "of Ray actors (ray; needs pip install -e '.\\[scale]').")
                      ] = Engine.local,
    ray_address: Annotated[Optional[str], typer.Option("--ray-address", envvar="RAY_ADDRESS", show_envvar=True,
                                                       help="With --engine ray: the Ray cluster to join, e.g. auto (the one this "
                                                            "machine is part of) or head-node:6379 (default: start a "
                                                            "local Ray instance sized to this machine).",
                                                       show_default=False)] = None,
    workers: Annotated[Optional[int], typer.Option("--workers", min=1, help="With --engine ray: actors in the pool, each "
                                                                            "with one CPU and its own copy of the model "
                                                                            "(default: one per CPU of the Ray cluster).",
                                                   show_default=False)] = None,
    explain: Annotated[bool, typer.Option("--explain", help="Add an evidence column: per pair, the words that carried its "
                                                            "stance, each with how much the stance's probability falls "
                                                            "without it. Costs one forward row per word of the sentence "
                                                            "and actor: a run takes about 12 times as long.")] = False,
) -> None:
    """Score sentences: one output row per (sentence, actor) pair, or one with an empty actor."""
    target = _check_options(out, out_format, inputs, input_format, encoding, precision, engine, workers)
    try:
        paths = expand(inputs)
        check_not_an_input(target, paths)
    except BadInput as e:
        _fail(str(e))
    except BadOutput as e:
        _fail(str(e), 2)
    skips = Skips(skip_bad)
    options = ReadOptions(Columns(text_column, actor_column, mention_column), encoding,
                          input_format.value if input_format else None)
    try:
        records = read_inputs(paths, options, skips.bad_input, skips.furniture_line)
    except BadInput as e:
        _fail(f"{e}; use --skip-bad to skip it")
    if not records:
        _fail("nothing to score: the inputs hold no sentences")

    job = Job(records, target, skips, model, precision, backend, batch_size, explain)
    if engine is Engine.ray:
        start = time.perf_counter()  # Ray's start-up and the actors' model loading are part of its time
        n, tag, how = _score_on_ray(job, ray_address, workers)
    else:
        n, tag, start = _score_here(job)
        how = ""
    seconds = time.perf_counter() - start
    typer.echo(f"wrote {_plural(n, 'row')} to {target}: {_plural(job.tally.pairs, 'pair')} and "
               f"{_plural(job.tally.no_actor, 'sentence')} without an actor, from "
               f"{_plural(len(records), 'input sentence')}; model {tag}; {seconds:.1f}s "
               f"({job.tally.pairs / seconds:.0f} pairs/s){how}", err=True)
    for line in skips.summary():
        typer.echo(line, err=True)


def _score_here(job: Job) -> tuple[int, str, float]:
    """`score` with --engine local: (rows written, model tag, when scoring started)."""
    from model.predictor import Predictor

    start = time.perf_counter()
    with _loading(job.model):
        predictor = Predictor.from_store(job.model, precision=job.precision, backend=job.backend,
                                         batch_size=job.batch_size)
    typer.echo(f"model {predictor.tag} loaded in {time.perf_counter() - start:.1f}s: {predictor.choice}", err=True)
    start = time.perf_counter()
    job.tally.start()
    with _running(job.target):
        try:
            chunks = score_locally(predictor, job.records, job.batch_size, job.tally, job.skips.bad_input, job.explain)
            n = write_rows(job.target, job.columns, chunks, job.types)
        finally:
            job.tally.close()  # before any message: the bar's last state, then the message
    return n, predictor.tag, start


def _score_on_ray(job: Job, address: str | None, workers: int | None) -> tuple[int, str, str]:
    """`score` with --engine ray: the same records, chunks and output, scored by Ray actors."""
    from batch.ray_engine import RayRun, load_model_files

    with _loading(job.model):
        files, tag = load_model_files(job.model)
    run = RayRun(files, tag, batch_size=job.batch_size, precision=job.precision, backend=job.backend, address=address,
                 explain=job.explain,
                 workers=workers)
    with _running(job.target):
        try:
            n = run.score(job.records, job.target, job.columns, job.types, job.tally, job.skips.bad_input)
        finally:
            job.tally.close()
    return n, tag, f"; on Ray, {_plural(run.workers, 'worker')} (Ray up in {run.startup:.1f}s)"


@app.command()
def report(
    scored: Annotated[Path, typer.Argument(help="A file written by `stance score` (.jsonl, .csv or .parquet, or .gz).",
                                           metavar="SCORED", show_default=False)],
    out_dir: Annotated[Optional[Path], typer.Option("--out-dir", help="Folder for the report (default: the folder "
                                                                      "SCORED-NAME_report beside the scored file).",
                                                    show_default=False)] = None,
    min_pairs: Annotated[int, typer.Option("--min-pairs", min=1, help="Leave actors with fewer pairs out of the charts "
                                                                      "(the summary tables keep them).")] = 1,
    date_column: Annotated[Optional[str], typer.Option("--date-column", help="The column of the dates, for the stance "
                                                                             f"over time (default: {_names(DATE_COLUMNS)}"
                                                                             ", in any case, if there is one).",
                                                       show_default=False)] = None,
    period: Annotated[Period, typer.Option("--period", help="Stance over time per day or per week; auto: per day when "
                                                            f"the dates span at most {DAYS_BY_DAY} days, else per "
                                                            "week.")] = Period.auto,
    outlet_column: Annotated[Optional[str], typer.Option("--outlet-column", help="The column of the outlets, for the "
                                                                                 "stance per outlet (default: "
                                                                                 f"{_names(OUTLET_NAMES)}, in any case, "
                                                                                 "other than the source column `stance "
                                                                                 "score` adds).",
                                                         show_default=False)] = None,
) -> None:
    """Summarise a scored file per actor (and per source, over time, per outlet): Markdown, CSV and PNG charts."""
    from batch.report import write_report
    from batch.scored import read_scored

    out_dir = out_dir or scored.with_name(f"{Path(scored.name.removesuffix('.gz')).stem}_report")
    options = ReportOptions(min_pairs, date_column, period.value, outlet_column)
    try:
        rows, lines = read_scored(str(scored))
        paths, notes = write_report(str(scored), out_dir, rows, lines, options)
    except BadInput as e:
        _fail(str(e))
    for note in notes:
        typer.echo(f"warning: {note}", err=True)
    for path in paths.values():
        typer.echo(f"wrote {path}", err=True)


if __name__ == "__main__":
    app()
