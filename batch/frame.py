"""``score_frame``: `stance score` for a pandas DataFrame, in Python.

    from batch.frame import score_frame
    scored = score_frame(df, text_column="text", actor_column="actor")

The rows are read, checked, scored and shaped by the code `stance score` runs, and the
result has the columns and types of its Parquet output: the input columns (one named like
an added column kept as input_<name>), then source, sentence_index, actor, mention,
affiliation, stance, stance_<label>..., sentiment, sentiment_<label>..., model. pandas is
an optional extra: pip install -e '.[frame]'. With ``explain=True``, an ``evidence`` column
follows (as `stance score --explain` writes it).
"""

from __future__ import annotations

from batch.inputs import Columns, records_from_rows
from batch.rows import ADDED, EVIDENCE, output_name
from batch.scoring import chunks, score_records
from batch.writers import parquet_schema, parquet_table, parquet_types

FLAGS = ("text_column", "actor_column", "mention_column")  # what messages name


def score_frame(df, text_column: str | None = None, actor_column: str | None = None, mention_column: str | None = None,
                *, predictor=None, model: str = "stance_classifier:latest", precision: str = "auto",
                batch_size: int = 32, source: str = "frame", skip_bad: bool = False, explain: bool = False):
    """The scored rows of ``df``, one per (sentence, actor) pair (or one with an empty actor
    for a sentence with none), as a new DataFrame.

    ``text_column``, ``actor_column``, ``mention_column``: as `stance score`'s options (None:
    sentence or text, actor, mention, in any case). ``predictor``: a loaded
    ``model.predictor.Predictor``; without one, ``model`` is loaded from the store. A bad
    row raises ``BadInput`` ("frame:3: actor must be ...", the row's number from 1), or is
    left out with ``skip_bad``; so is a row whose scoring fails. ``source`` fills the
    ``source`` column. ``explain``: add each pair's evidence (model/explain.py)."""
    try:
        import pandas  # noqa: F401 - Arrow's to_pandas needs it
    except ImportError:
        raise ImportError("score_frame needs pandas: pip install -e '.[frame]'") from None
    import pyarrow as pa

    df = df.rename(columns=str)  # a copy; Arrow and the messages need text names
    # Missing values (NaN, None, NaT, pd.NA) become None, which the rules read as null.
    rows = df.astype(object).where(df.notna(), None).to_dict("records")
    columns = Columns(text_column, actor_column, mention_column, FLAGS)
    records = records_from_rows(source, list(df.columns), rows, columns, (lambda e: None) if skip_bad else None)
    types = parquet_types(records)
    schema = parquet_schema([output_name(c) for c in df.columns] + list(ADDED) + ([EVIDENCE] if explain else []), types)
    if predictor is None:
        from model.predictor import Predictor

        predictor = Predictor.from_store(model, precision=precision, batch_size=batch_size)
    tables = []
    for chunk in chunks(records, batch_size):
        scored = score_records(predictor, chunk, explain)
        if scored.failures and not skip_bad:
            raise scored.failures[0]
        tables.append(parquet_table(scored.rows, schema, types))
    return (pa.concat_tables(tables) if tables else schema.empty_table()).to_pandas()
