// The page at /ui: a client of the public API, like any other (README, "The APIs").
//   POST ../segment         {"text"} -> the sentences, split as the batch CLI splits articles
//   POST ../classify_batch  {"items": [{"sentence", "explain": true}, ...]} -> stance, sentiment, evidence
// The URLs are relative to the page, so it also works behind a path prefix. No library, no
// build step: what is here is what runs.
"use strict";

// The API's documented limits: longer sentences are refused (422), and one batch may ask for
// evidence on at most 32 items.
const MAX_SENTENCE_CHARS = 2000;
const EXPLAIN_PER_REQUEST = 32;
const STANCES = ["support", "oppose", "neutral"];

function el(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined) node.textContent = text;
  return node;
}

function say(message, isError = false) {
  const status = document.getElementById("status");
  status.textContent = message;
  status.classList.toggle("error", isError);
}

async function post(path, body) {
  const response = await fetch(new URL(path, document.baseURI), {
    method: "POST", headers: {"Content-Type": "application/json"}, body: JSON.stringify(body),
  });
  let data = null;
  try { data = await response.json(); } catch (e) { /* an error page that is not JSON */ }
  if (!response.ok) throw new Error(data && data.error ? data.error : `the service answered HTTP ${response.status}`);
  return data;
}

function probabilities(probs) {
  return Object.entries(probs).map(([label, p]) => `${label} ${p.toFixed(2)}`).join(" · ");
}

function signed(x) {
  return (x > 0 ? "+" : "") + x.toFixed(2);
}

// The API counts characters (code points); JavaScript strings count UTF-16 units. unit[i] is
// where code point i starts, so offsets stay right past an emoji or a rare CJK character.
function codeUnits(text) {
  const unit = [0];
  for (const ch of text) unit.push(unit[unit.length - 1] + ch.length);
  return unit;
}

// Where the actor's mention is: its first whole-word occurrence not already taken by another actor.
function locate(sentence, mention, taken) {
  if (!mention) return null;
  const escaped = mention.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
  const pattern = new RegExp(`(?<![\\p{L}\\p{N}])${escaped}(?![\\p{L}\\p{N}])`, "gu");
  for (const m of sentence.matchAll(pattern)) {
    const span = [m.index, m.index + m[0].length];
    if (!taken.some(([a, b]) => a < span[1] && span[0] < b)) {
      taken.push(span);
      return span;
    }
  }
  return null;
}

function actorButton(actor, pressed, select) {
  const button = el("button", `actor stance-${actor.stance}`);
  button.type = "button";
  button.dataset.actor = actor.actor;
  button.dataset.stance = actor.stance;
  button.dataset.index = actor.index;
  button.setAttribute("aria-pressed", String(pressed));
  button.title = `${actor.actor}: ${probabilities(actor.stance_probs)}`;
  button.append(el("span", "name"), " ", el("span", "tag", actor.stance));
  button.addEventListener("click", () => select(actor.index));
  return button;
}

// The sentence as text, mention buttons and (for the selected actor) evidence spans.
function pieces(sentence, actors, selected, select) {
  const unit = codeUnits(sentence);
  const evidence = selected >= 0 ? (actors[selected].evidence || []).map(
    (e, index) => ({...e, index, a: unit[e.start], b: unit[e.end]})) : [];
  const cuts = new Set([0, sentence.length]);
  for (const actor of actors) if (actor.span) actor.span.forEach((c) => cuts.add(c));
  for (const e of evidence) { cuts.add(e.a); cuts.add(e.b); }
  const points = [...cuts].sort((x, y) => x - y);
  const out = [];
  let button = null, owner = null;
  for (let k = 0; k + 1 < points.length; k++) {
    const [a, b] = [points[k], points[k + 1]];
    const actor = actors.find((x) => x.span && x.span[0] <= a && b <= x.span[1]);
    const e = evidence.find((x) => x.a <= a && b <= x.b);
    let node = document.createTextNode(sentence.slice(a, b));
    if (e) {
      node = el("span", `evidence ${e.weight > 0 ? "for" : "against"}`, sentence.slice(a, b));
      node.dataset.evidence = e.index;  // a phrase across a mention is cut in two pieces
      node.title = `${e.weight > 0 ? "carried" : "pulled against"} ${actors[selected].stance}: ${signed(e.weight)}`;
    }
    if (actor) {
      if (owner !== actor) {
        button = actorButton(actor, actor.index === selected, select);
        out.push(button);
        owner = actor;
      }
      button.querySelector(".name").append(node);
    } else {
      owner = null;
      out.push(node);
    }
  }
  return out;
}

function details(actor) {
  const box = el("div", "details");
  const where = actor.affiliation ? ` (${actor.affiliation})` : "";
  box.append(el("h2", "", `${actor.actor}${where}: ${actor.stance}`));
  const probs = el("dl", "probs");
  probs.setAttribute("aria-label", "stance probabilities");
  for (const label of STANCES) {
    const p = actor.stance_probs[label];
    const pair = el("div");
    const value = el("dd", "", p.toFixed(2));
    const bar = el("span", `bar stance-${label}`);
    bar.style.width = `${(p * 4).toFixed(2)}rem`;
    value.append(bar);
    pair.append(el("dt", "", label), value);
    probs.append(pair);
  }
  box.append(probs);
  const evidence = actor.evidence || [];
  const line = el("p", "evidence-list", evidence.length ? `Evidence, as the fall of p(${actor.stance}) without the words: `
    : "Evidence: no single word moves this probability by 0.01 or more.");
  evidence.forEach((e, i) => {
    line.append(el("span", `evidence-item ${e.weight > 0 ? "for" : "against"}`, `“${e.text}” ${signed(e.weight)}`));
    if (i + 1 < evidence.length) line.append(", ");
  });
  box.append(line);
  return box;
}

function renderSentence(result) {
  const item = el("li", "sentence");
  item.dataset.sentiment = result.sentiment;
  const text = el("p", "text");
  const meta = el("div", "meta");
  const sentiment = el("span", "sentiment", `sentiment: ${result.sentiment} `);
  sentiment.append(el("span", "p", result.sentiment_probs[result.sentiment].toFixed(2)));
  sentiment.title = `sentence sentiment: ${probabilities(result.sentiment_probs)}`;
  meta.append(sentiment);
  const panel = el("div");
  item.append(text, meta, panel);
  const taken = [];
  const actors = result.actors.map((a, index) => ({...a, index, span: locate(result.sentence, a.mention, taken)}));
  let selected = actors.length ? 0 : -1;

  function select(index) {
    selected = index;
    draw();
    const button = item.querySelector(`button.actor[data-index="${index}"]`);
    if (button) button.focus();
  }

  function draw() {
    text.replaceChildren(...pieces(result.sentence, actors, selected, select));
    meta.replaceChildren(sentiment);
    // An actor named in the request but not found in the sentence has no mention to mark.
    for (const actor of actors.filter((a) => !a.span)) {
      meta.append(actorButton(actor, actor.index === selected, select));
      meta.lastChild.querySelector(".name").textContent = actor.actor;
    }
    if (!actors.length) meta.append(el("span", "skipped", "no actor found"));
    panel.replaceChildren(...(selected >= 0 ? [details(actors[selected])] : []));
  }

  draw();
  return item;
}

function renderSkipped(sentence) {
  const item = el("li", "sentence");
  item.append(el("p", "text", sentence), el("p", "skipped", `not scored: longer than ${MAX_SENTENCE_CHARS} characters`));
  return item;
}

async function classify(event) {
  event.preventDefault();
  const text = document.getElementById("text").value;
  const list = document.getElementById("sentences");
  const go = document.getElementById("go");
  if (!text.trim()) {
    say("Paste a sentence or an article first.", true);
    return;
  }
  go.disabled = true;
  list.replaceChildren();
  document.getElementById("legend").hidden = true;
  try {
    say("Splitting into sentences…");
    const {sentences} = await post("../segment", {text});
    let done = 0, actors = 0;
    for (let start = 0; start < sentences.length; start += EXPLAIN_PER_REQUEST) {
      const chunk = sentences.slice(start, start + EXPLAIN_PER_REQUEST).map((s) => s.text);
      const scorable = chunk.filter((s) => [...s].length <= MAX_SENTENCE_CHARS);
      say(`Scoring sentences ${start + 1}–${start + chunk.length} of ${sentences.length}…`);
      const {results} = scorable.length ? await post("../classify_batch",
        {items: scorable.map((sentence) => ({sentence, explain: true}))}) : {results: []};
      let k = 0;
      for (const sentence of chunk) {
        if ([...sentence].length > MAX_SENTENCE_CHARS) {
          list.append(renderSkipped(sentence));
          continue;
        }
        const result = results[k++];
        actors += result.actors.length;
        list.append(renderSentence(result));
      }
      done += chunk.length;
      document.getElementById("legend").hidden = false;
    }
    const plural = (n, word) => `${n} ${word}${n === 1 ? "" : "s"}`;
    say(`${plural(done, "sentence")}, ${plural(actors, "actor")}. Select an actor for its probabilities and evidence.`);
  } catch (error) {
    say(`Could not classify: ${error.message}`, true);
  } finally {
    go.disabled = false;
  }
}

document.addEventListener("DOMContentLoaded", () => {
  const form = document.getElementById("ask");
  form.addEventListener("submit", classify);
  document.getElementById("text").addEventListener("keydown", (event) => {
    if (event.key === "Enter" && (event.ctrlKey || event.metaKey)) {
      event.preventDefault();
      form.requestSubmit();
    }
  });
});
