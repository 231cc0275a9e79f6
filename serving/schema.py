"""The API's request and response types: BentoML parses with them and builds the OpenAPI
document from them. The guard (serving/guard.py) enforces the limits before BentoML sees a
request; the constraints here state the same limits for the document."""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field

from model.items import MAX_ACTOR_CHARS
from serving.guard import MAX_BATCH_ITEMS, MAX_EXPLAIN_ITEMS, MAX_SENTENCE_CHARS, MAX_TEXT_CHARS

EXAMPLE = "Zelenskyy said Ukraine would not accept any deal reached in Riyadh without it."

Sentence = Annotated[str, Field(min_length=1, max_length=MAX_SENTENCE_CHARS, description="the sentence to classify",
                                examples=[EXAMPLE])]
Actor = Annotated[str | None, Field(max_length=MAX_ACTOR_CHARS, description="an actor (registry name, alias or free "
                                    "text) to get the stance of; null for every registry actor found in the sentence",
                                    examples=[None, "Volodymyr Zelensky"])]
Explain = Annotated[bool, Field(description="also return, for each actor, the evidence: the words of the sentence that "
                                "carried its stance (costs about one forward pass per word; at most "
                                f"{MAX_EXPLAIN_ITEMS} items of a batch may ask for it)", examples=[False, True])]
Text = Annotated[str, Field(min_length=1, max_length=MAX_TEXT_CHARS, description="an article, or any text, to split "
                            "into sentences", examples=[f"{EXAMPLE} Lavrov praised the talks."])]


class ClassifyRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    sentence: Sentence
    actor: Actor = None
    explain: Explain = False


Items = Annotated[list[ClassifyRequest], Field(min_length=1, max_length=MAX_BATCH_ITEMS)]


class Evidence(BaseModel):
    text: str = Field(description="a word or phrase of the sentence: sentence[start:end]")
    start: int = Field(description="character offset of its first character in the sentence")
    end: int = Field(description="character offset just past its last character")
    weight: float = Field(description="how much the probability of the predicted stance falls when these words are "
                                      "deleted; negative: they pulled against it")


class ActorStance(BaseModel):
    actor: str = Field(description="registry name, or the free-text actor as given")
    mention: str | None = Field(description="the words of the sentence that name the actor; null if not found")
    affiliation: str | None = Field(description="the actor's side in the registry; null for a free-text actor")
    stance: str = Field(description="support, oppose or neutral, toward the talks")
    stance_probs: dict[str, float]
    # Only with "explain": true; otherwise the key is absent, so the response is as before.
    evidence: list[Evidence] | None = Field(default=None, exclude_if=lambda v: v is None, description=(
        "with explain only: the words that carried the stance, strongest first (empty if no word moved it)"))


class Classification(BaseModel):
    sentence: str
    sentiment: str = Field(description="positive, negative or neutral")
    sentiment_probs: dict[str, float]
    actors: list[ActorStance]
    model: str = Field(description="the model store tag that produced this result")


class BatchResult(BaseModel):
    results: list[Classification] = Field(description="one result per item, in input order")


class SentenceSpan(BaseModel):
    text: str = Field(description="the sentence: text[start:end] of the request")
    start: int
    end: int


class Segments(BaseModel):
    sentences: list[SentenceSpan] = Field(description="the sentences in order; page furniture (bylines, links, "
                                                      "captions) left out, as the batch CLI does")
