"""The page at /ui in a real browser: Debian's chromium, headless, driven by Playwright (no
browser download), against the service started as `make serve` starts it, on a loopback port
(the tiny model).

A person's path: open /ui, paste an article, press Classify by keyboard; every actor is marked
with the stance class and text tag the API gives it; selecting an actor by keyboard shows its
probabilities and underlines its evidence; at phone width nothing scrolls sideways; nothing is
fetched from anywhere but the service. Screenshots go to the test's tmp_path.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

CHROMIUM = Path("/usr/bin/chromium")
ARTICLE = ("Zelenskyy rejected any deal reached in Riyadh without Ukraine.\n\n"
           "Lavrov praised the talks as useful, and Mr. Rubio said the meeting was a first step. "
           "The weather in the Saudi capital was mild.\n"
           "Kyiv condemned the talks, while Moscow welcomed them.")


@pytest.fixture(scope="module")
def service_url(tiny_store, tmp_path_factory):
    """The service as `make serve` starts it (python -m serving.serve), on the tiny model, on a
    free loopback port. (A second in-process app would clash with the one of the `client`
    fixture: BentoML registers its metrics once per process.)"""
    from helpers import running_server

    with running_server(os.environ["BENTOML_HOME"], tmp_path_factory.mktemp("ui_server") / "server.log") as (client, _):
        yield str(client.base_url).rstrip("/")


@pytest.fixture(scope="module")
def browser():
    if not CHROMIUM.exists():  # `make test` installs it; never skip: the page would go untested
        pytest.fail(f"Debian's chromium is not at {CHROMIUM}: `make test` installs it (apt-get install -y chromium)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        # --no-sandbox: CI runs as root, where Chromium's sandbox refuses to start.
        browser = p.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=["--no-sandbox"])
        yield browser
        browser.close()


@pytest.fixture
def page(browser, service_url):
    """A fresh page on /ui/ that refuses, and records, any request leaving the service."""
    context = browser.new_context(viewport={"width": 1000, "height": 900})
    page = context.new_page()
    page.outside = []

    def route(r):
        if r.request.url.startswith(service_url + "/"):
            return r.continue_()
        page.outside.append(r.request.url)
        return r.abort()

    page.route("**/*", route)
    page.goto(f"{service_url}/ui")
    yield page
    context.close()


def paste_and_classify(page, text: str) -> None:
    page.get_by_label("Sentence or article").fill(text)
    page.get_by_role("button", name="Classify").focus()
    page.keyboard.press("Enter")  # by keyboard, as a person without a mouse would
    page.wait_for_function("document.getElementById('status').textContent.includes('Select an actor')", timeout=60_000)


def underlined(sentence) -> list[str]:
    """The evidence phrases underlined in a sentence, in the API's order (a phrase that spans
    another actor's mention is drawn in pieces, each with the phrase's index)."""
    return sentence.locator(".text .evidence").evaluate_all("""spans => {
        const phrases = [];
        for (const s of spans) phrases[+s.dataset.evidence] = (phrases[+s.dataset.evidence] || '') + s.textContent;
        return phrases.filter(p => p !== undefined);
    }""")


def api_results(service_url: str, text: str) -> list[dict]:
    import httpx

    sentences = [s["text"] for s in httpx.post(f"{service_url}/segment", json={"text": text}).json()["sentences"]]
    body = {"items": [{"sentence": s, "explain": True} for s in sentences]}
    return httpx.post(f"{service_url}/classify_batch", json=body, timeout=60).json()["results"]


def test_an_article_gets_its_actors_marked_with_the_stances_the_api_gives(page, service_url, tmp_path):
    assert page.url.endswith("/ui/")
    paste_and_classify(page, ARTICLE)
    expected = api_results(service_url, ARTICLE)
    shown = page.eval_on_selector_all("li.sentence", """items => items.map(li => ({
        sentence: li.querySelector('.text').textContent.replace(/\\s*(support|oppose|neutral)(?=\\W|$)/g, ''),
        sentiment: li.querySelector('.sentiment').firstChild.textContent,
        actors: [...li.querySelectorAll('button.actor')].map(b => ({
            actor: b.dataset.actor, classes: [...b.classList], tag: b.querySelector('.tag').textContent,
            mention: b.querySelector('.name').textContent}))}))""")
    assert len(shown) == len(expected) == 4
    for got, want in zip(shown, expected):
        assert got["sentiment"] == f"sentiment: {want['sentiment']} "
        assert [(a["actor"], a["mention"], a["tag"]) for a in got["actors"]] == [
            (a["actor"], a["mention"], a["stance"]) for a in want["actors"]]
        for a, w in zip(got["actors"], want["actors"]):
            assert f"stance-{w['stance']}" in a["classes"]
            assert [c for c in a["classes"] if c.startswith("stance-")] == [f"stance-{w['stance']}"]
    assert [a["actor"] for a in shown[0]["actors"]] == ["Volodymyr Zelensky", "Ukraine"]
    assert shown[2]["actors"] == []  # "The weather ..." names no actor
    assert page.outside == []
    page.screenshot(path=str(tmp_path / "ui.png"), full_page=True)


def test_selecting_an_actor_by_keyboard_shows_its_probabilities_and_evidence(page, service_url):
    paste_and_classify(page, ARTICLE)
    expected = api_results(service_url, ARTICLE)[3]  # "Kyiv condemned the talks, while Moscow welcomed them."
    second = page.locator("li.sentence").nth(3).locator("button.actor").nth(1)
    assert second.get_attribute("aria-pressed") == "false"
    second.focus()
    page.keyboard.press("Enter")
    second = page.locator("li.sentence").nth(3).locator("button.actor").nth(1)
    assert second.get_attribute("aria-pressed") == "true"
    assert page.evaluate("document.activeElement.dataset.actor") == expected["actors"][1]["actor"]
    actor = expected["actors"][1]
    details = page.locator("li.sentence").nth(3).locator(".details")
    assert details.locator("h2").inner_text() == f"{actor['actor']} ({actor['affiliation']}): {actor['stance']}"
    pairs = details.locator(".probs > div").evaluate_all("ds => ds.map(d => [d.querySelector('dt').textContent, d.querySelector('dd').textContent])")
    assert pairs == [[label, f"{p:.2f}"] for label, p in actor["stance_probs"].items()]
    assert underlined(page.locator("li.sentence").nth(3)) == [e["text"] for e in actor["evidence"]]
    assert second.get_attribute("title") == actor["actor"] + ": " + " · ".join(
        f"{label} {p:.2f}" for label, p in actor["stance_probs"].items())


def test_evidence_is_underlined_at_the_api_offsets_even_past_an_emoji(page):
    """The API's offsets count characters; the page must not drift after a character that
    JavaScript counts twice. The API's answer is stubbed here, to pin the evidence."""
    sentence = "🙂 Lavrov praised the talks, but Kyiv condemned them."
    result = {"sentence": sentence, "sentiment": "neutral", "sentiment_probs": {"positive": 0.2, "negative": 0.3, "neutral": 0.5},
              "model": "stub", "actors": [
                  {"actor": "Sergey Lavrov", "mention": "Lavrov", "affiliation": "Russia", "stance": "support",
                   "stance_probs": {"support": 0.8, "oppose": 0.1, "neutral": 0.1},
                   "evidence": [{"text": "praised", "start": 9, "end": 16, "weight": 0.4},
                                {"text": "condemned", "start": 37, "end": 46, "weight": -0.05}]},
                  {"actor": "Ukraine", "mention": "Kyiv", "affiliation": "Ukraine", "stance": "oppose",
                   "stance_probs": {"support": 0.1, "oppose": 0.7, "neutral": 0.2}, "evidence": []}]}
    assert sentence[9:16] == "praised" and sentence[37:46] == "condemned"
    page.route("**/classify_batch", lambda r: r.fulfill(json={"results": [result]}))
    paste_and_classify(page, sentence)
    text = page.locator("li.sentence .text")
    assert text.locator(".evidence.for").all_inner_texts() == ["praised"]
    assert text.locator(".evidence.against").all_inner_texts() == ["condemned"]
    assert underlined(page.locator("li.sentence")) == ["praised", "condemned"]
    assert page.locator(".details .evidence-item").all_inner_texts() == ["“praised” +0.40", "“condemned” -0.05"]


def test_errors_of_the_api_are_shown_in_words(page):
    page.get_by_role("button", name="Classify").click()
    assert page.locator("#status").inner_text() == "Paste a sentence or an article first."
    page.route("**/segment", lambda r: r.fulfill(status=503, json={"error": "model: not available (x); retry later", "field": "model"}))
    page.get_by_label("Sentence or article").fill("Lavrov spoke.")
    page.get_by_label("Sentence or article").press("Control+Enter")
    page.wait_for_function("document.getElementById('status').classList.contains('error')")
    assert page.locator("#status").inner_text() == "Could not classify: model: not available (x); retry later"


def test_at_phone_width_nothing_scrolls_sideways(page, tmp_path):
    page.set_viewport_size({"width": 360, "height": 740})
    paste_and_classify(page, ARTICLE)
    assert page.evaluate("document.documentElement.scrollWidth") <= 360
    page.screenshot(path=str(tmp_path / "ui_phone.png"), full_page=True)


def test_the_page_is_not_an_api_operation(service_url):
    import httpx

    doc = httpx.get(f"{service_url}/docs.json").json()
    assert not [p for p in doc["paths"] if p.startswith("/ui")]
    for asset in ("ui.js", "ui.css"):
        assert httpx.get(f"{service_url}/ui/{asset}").status_code == 200
