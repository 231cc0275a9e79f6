"""Plain helpers shared by the test modules (fixtures are in conftest.py). pytest puts this
folder on the path (pyproject.toml), so a test module imports them as ``from helpers import …``."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

TINY_ROWS = [
    # (sentence, actor, mention, stance, sentiment)
    ("Lavrov praised the talks in Riyadh as useful.", "Sergey Lavrov", "Lavrov", "support", "positive"),
    ("Zelensky rejected any deal made without Ukraine.", "Volodymyr Zelensky", "Zelensky", "oppose", "negative"),
    ("Rubio attended the meeting on Tuesday.", "Marco Rubio", "Rubio", "neutral", "neutral"),
    ("Kyiv condemned the talks, while Moscow welcomed them.", "Ukraine", "Kyiv", "oppose", "negative"),
    ("Kyiv condemned the talks, while Moscow welcomed them.", "Russia", "Moscow", "support", "negative"),
    ("The Saudis hosted the delegations at a palace.", "Saudi Arabia", "The Saudis", "neutral", "neutral"),
]


def tiny_rows(articles=("a", "b"), copies: int = 2) -> list[dict]:
    """Annotation rows (data/annotations/README.md) of TINY_ROWS, spread over ``articles``."""
    rows = []
    for k, (sentence, actor, mention, stance, sentiment) in enumerate(TINY_ROWS * copies):
        start = sentence.index(mention)
        art = articles[k % len(articles)]
        rows.append({"id": f"{art}-{k}:{actor}", "sentence_id": f"{art}-{k}", "article": art, "sentence": sentence,
                     "actor": actor, "mention": mention, "mention_start": start, "mention_end": start + len(mention),
                     "stance": stance, "sentiment": sentiment, "ambiguous": False, "note": ""})
    return rows


def tiny_dataset(articles=("a", "b")):
    from training.data import to_dataset

    return to_dataset(tiny_rows(articles))


def tiny_config(**overrides):
    from training.config import load_config

    return load_config(None, **{"encoder": "tiny", "epochs": 2, "batch_size": 4, "max_steps": 4, "head_lr": 1e-2,
                                "workers": 1, "precision": "fp32", **overrides})


def write_annotations(folder: Path) -> Path:
    """A tiny annotations folder: real pairs in three articles, and written, dev and challenge sets."""
    folder.mkdir(parents=True, exist_ok=True)
    files = {"pairs.jsonl": tiny_rows(("a", "b", "c")), "written.jsonl": tiny_rows(("written",), 1),
             "dev.jsonl": tiny_rows(("dev",), 1), "challenge.jsonl": tiny_rows(("challenge",), 1)}
    for name, rows in files.items():
        (folder / name).write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return folder


# -- the HTTP API's contract: shared by the in-process and the real-server tests --------------
RESULT_KEYS = {"sentence", "sentiment", "sentiment_probs", "actors", "model"}
ACTOR_KEYS = {"actor", "mention", "affiliation", "stance", "stance_probs"}
TWO_ACTORS = "Zelenskyy rejected the deal, while Lavrov praised the Riyadh talks."


def long_text(n: int) -> str:
    return ("Lavrov spoke. " * (n // 14 + 1))[:n]


def batch(n: int) -> dict:
    return {"items": [{"sentence": "Rubio spoke."}] * n}


BAD = [
    # (id, path, raw body, status, error message)
    ("invalid JSON", "/classify", b'{"sentence": "x",}', 400,
     "body: is not valid JSON (Expecting property name enclosed in double quotes at line 1 column 18)"),
    ("truncated JSON", "/classify", b'{"sentence": "x"', 400,
     "body: is not valid JSON (Expecting ',' delimiter at line 1 column 17)"),
    ("empty body", "/classify", b"", 400, 'body: is empty; send a JSON object such as {"sentence": "..."}'),
    ("blank body", "/classify_batch", b"  \n", 400, 'body: is empty; send a JSON object such as {"sentence": "..."}'),
    ("not UTF-8", "/classify", b'{"sentence": "\xff\xfe"}', 400, "body: is not valid UTF-8 (byte 14)"),
    ("nested too deeply", "/classify", b"[" * 100_000, 400, "body: is nested too deeply"),
    ("missing sentence", "/classify", {"actor": "Rubio"}, 422, "sentence: is required"),
    ("empty object", "/classify", {}, 422, "sentence: is required"),
    ("sentence number", "/classify", {"sentence": 42}, 422, "sentence: must be a string, got number"),
    ("sentence boolean", "/classify", {"sentence": True}, 422, "sentence: must be a string, got boolean"),
    ("sentence object", "/classify", {"sentence": {"text": "x"}}, 422, "sentence: must be a string, got object"),
    ("null body", "/classify", None, 422, "body: must be a JSON object, got null"),
    ("null sentence", "/classify", {"sentence": None}, 422, "sentence: must be a string, got null"),
    ("array body", "/classify", ["Rubio spoke."], 422, "body: must be a JSON object, got array"),
    ("string body", "/classify", "Rubio spoke.", 422, "body: must be a JSON object, got string"),
    ("list sentence", "/classify", {"sentence": ["Rubio spoke."]}, 422, "sentence: must be a string, got array"),
    ("list actor", "/classify", {"sentence": "Rubio spoke.", "actor": ["Rubio"]}, 422,
     "actor: must be a string or null, got array"),
    ("empty sentence", "/classify", {"sentence": ""}, 422, "sentence: must not be empty or whitespace only"),
    ("whitespace sentence", "/classify", {"sentence": " \t\n\u00a0"}, 422, "sentence: must not be empty or whitespace only"),
    ("control-only sentence", "/classify", {"sentence": "\x00\x01 "}, 422, "sentence: must not be empty or whitespace only"),
    ("sentence too long", "/classify", {"sentence": long_text(2001)}, 422, "sentence: must be at most 2000 characters, got 2001"),
    ("actor too long", "/classify", {"sentence": "Rubio spoke.", "actor": "R" * 201}, 422,
     "actor: must be at most 200 characters, got 201"),
    ("actor of punctuation", "/classify", {"sentence": "Rubio spoke.", "actor": "!" * 200}, 422,
     "actor: must contain a letter or a digit: it is the name of an actor"),
    ("actor number", "/classify", {"sentence": "Rubio spoke.", "actor": 7}, 422, "actor: must be a string or null, got number"),
    ("actor object", "/classify", {"sentence": "Rubio spoke.", "actor": {"name": "Rubio"}}, 422,
     "actor: must be a string or null, got object"),
    ("empty actor", "/classify", {"sentence": "Rubio spoke.", "actor": " "}, 422,
     "actor: must not be empty or whitespace only; use null to get every registry actor found in the sentence"),
    ("lone surrogate", "/classify", b'{"sentence": "Rubio \\ud800 spoke."}', 422,
     "sentence: contains a lone surrogate (U+D800) at index 6, which is not valid Unicode"),
    ("lone surrogate actor", "/classify", b'{"sentence": "Rubio spoke.", "actor": "\\udfff"}', 422,
     "actor: contains a lone surrogate (U+DFFF) at index 0, which is not valid Unicode"),
    ("unknown field", "/classify", {"sentence": "Rubio spoke.", "actr": "Rubio"}, 422,
     "actr: is not a known field; the fields are sentence, actor, explain"),
    ("empty batch", "/classify_batch", {"items": []}, 422, "items: must not be empty"),
    ("batch over max", "/classify_batch", batch(257), 422, "items: must hold at most 256 items, got 257; split the batch"),
    ("batch missing items", "/classify_batch", {}, 422, "items: is required"),
    ("batch items not a list", "/classify_batch", {"items": "Rubio spoke."}, 422, "items: must be an array, got string"),
    ("batch null items", "/classify_batch", {"items": None}, 422, "items: must be an array, got null"),
    ("batch item not an object", "/classify_batch", {"items": [{"sentence": "ok"}, "Rubio spoke."]}, 422,
     "items[1]: must be a JSON object, got string"),
    ("batch item bad sentence", "/classify_batch", {"items": [{"sentence": "ok"}, {"sentence": 1}]}, 422,
     "items[1].sentence: must be a string, got number"),
    ("batch item unknown field", "/classify_batch", {"items": [{"sentence": "ok", "lang": "en"}]}, 422,
     "items[0].lang: is not a known field; the fields are sentence, actor, explain"),
    ("batch unknown field", "/classify_batch", {"items": [{"sentence": "ok"}], "mode": "fast"}, 422,
     "mode: is not a known field; the only field is items"),
    ("batch as single", "/classify_batch", {"sentence": "Rubio spoke."}, 422, "sentence: is not a known field; the only field is items"),
    ("explain string", "/classify", {"sentence": "Rubio spoke.", "explain": "yes"}, 422, "explain: must be true or false, got string"),
    ("explain null", "/classify", {"sentence": "Rubio spoke.", "explain": None}, 422, "explain: must be true or false, got null"),
    ("batch explain number", "/classify_batch", {"items": [{"sentence": "ok", "explain": 1}]}, 422,
     "items[0].explain: must be true or false, got number"),
    ("batch explains too many", "/classify_batch", {"items": [{"sentence": "Rubio spoke.", "explain": True}] * 33}, 422,
     "items: at most 32 items may ask for explain, got 33; split the batch"),
    ("segment missing text", "/segment", {}, 422, "text: is required"),
    ("segment unknown field", "/segment", {"text": "Rubio spoke.", "lang": "en"}, 422, "lang: is not a known field; the only field is text"),
    ("segment text number", "/segment", {"text": 3}, 422, "text: must be a string, got number"),
    ("segment blank text", "/segment", {"text": " \n"}, 422, "text: must not be empty or whitespace only"),
    ("segment text too long", "/segment", {"text": long_text(100_001)}, 422, "text: must be at most 100000 characters, got 100001"),
    ("segment array body", "/segment", ["Rubio spoke."], 422, "body: must be a JSON object, got array"),
    ("segment empty body", "/segment", b"", 400, 'body: is empty; send a JSON object such as {"sentence": "..."}'),
]


# -- the batch CLI (`stance score`, `stance report`, score_frame): shared by its test modules ---
ARTICLE = (
    "Talks in Riyadh\n\n"
    "Lavrov praised the talks in Riyadh as useful. The weather was mild on Tuesday.\n"
    "Kyiv condemned the talks, while Moscow welcomed them.\n"
)
# The article's sentences and the actors detected in each (registry names), in order.
ARTICLE_SENTENCES = [
    ("Talks in Riyadh", []),
    ("Lavrov praised the talks in Riyadh as useful.", ["Sergey Lavrov"]),
    ("The weather was mild on Tuesday.", []),
    ("Kyiv condemned the talks, while Moscow welcomed them.", ["Ukraine", "Russia"]),
]


def write(path: Path, text: str) -> str:
    """Write ``text`` to ``path`` (UTF-8); return the file's name, as a test passes it to the CLI."""
    path.write_text(text, encoding="utf-8")
    return path.name


def write_csv(path: Path, rows: list[list], delimiter: str = ",") -> str:
    import csv

    with path.open("w", encoding="utf-8", newline="") as f:
        csv.writer(f, delimiter=delimiter).writerows(rows)
    return path.name


def write_jsonl(path: Path, rows: list[dict]) -> str:
    return write(path, "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))


def read_out(path: Path) -> list[dict]:
    """The rows of a file `stance score` (or `stance report`) wrote: .jsonl, .csv or .parquet."""
    import csv

    if path.suffix == ".jsonl":
        return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]
    if path.suffix == ".csv":
        with path.open(encoding="utf-8", newline="") as f:
            return list(csv.DictReader(f))
    import pyarrow.parquet as pq

    return pq.read_table(path).to_pylist()


# -- a real server: `python -m serving.serve` as a subprocess (the slow tests, the browser test) -
READY_WITHIN = 120  # seconds; generous for a loaded CI machine (the goal on an idle one is 10)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def stop(proc: subprocess.Popen, sig=signal.SIGTERM) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, sig)  # its session: serve -> bentoml -> workers
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


@contextmanager
def running_server(home: str, log_path: Path, *args: str):
    """A server on a free port; yields (httpx client, process). Stopped on exit."""
    import httpx

    port = free_port()
    env = {**os.environ, "BENTOML_HOME": home, "PORT": str(port)}
    with log_path.open("wb") as log:
        proc = subprocess.Popen([sys.executable, "-m", "serving.serve", *args], cwd=ROOT, env=env, stdout=log,
                                stderr=subprocess.STDOUT, start_new_session=True)
        url = f"http://127.0.0.1:{port}"
        try:
            deadline = time.monotonic() + READY_WITHIN
            while True:
                assert proc.poll() is None, f"the server exited ({proc.returncode}):\n{log_path.read_text()}"
                assert time.monotonic() < deadline, f"not ready in {READY_WITHIN} s:\n{log_path.read_text()}"
                try:
                    if httpx.get(f"{url}/readyz", timeout=1).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                time.sleep(0.2)
            with httpx.Client(base_url=url, timeout=60) as client:
                yield client, proc
        finally:
            stop(proc)
