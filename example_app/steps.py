"""The "research brief" workflow: a diamond with fake LLM calls.

::

                 ┌─> summarize ─────────────────────────────┐
    fetch_sources ─> keywords:<model> x3 ─> keywords (quorum 2) ┼─> compile_brief ─> review ─> publish
                 └─> credibility ───────────────────────────┘

The three analyses are ``llm_step``s on the ``llm`` queue, paced by one rate
limit key (``LLM_KEY``, see ``create_app``); keywords are asked
of three models at once (``multi_model.fan_out``) and merged by a synthesis
step that goes ahead when two of the three answered. Every call records its
(fake) token usage, so the dashboard shows the brief's cost as it runs, against
its budget (``BRIEF_BUDGET_USD``: a brief that costs more is cancelled). The
summary is streamed word by word (``job.stream_from``), as a chat model's
answer would be: the dashboard shows it growing on the ``summarize`` row.
compiled brief then waits for an editor (``review`` returns ``WaitFor(...,
approval=True)``, holding no worker): Approve on its dashboard page publishes
it, Reject fails it, and no decision within a day discards it.

Every "LLM" here is a deterministic function of the topic (SHA-256 based), so
the example needs no network and no API key, gives the same brief for the same
topic on every machine, and can be asserted on in tests. Each step sleeps a
little (0.2-0.8 s, scaled by ``app.config["EXAMPLE_DELAY_SCALE"]``) so a run
is slow enough to watch in the dashboard, and instant in tests (scale 0).

The ``Baton`` is declared at import time, before any app exists, because the
web process and the Huey consumer must both import the same steps.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Iterator, Sequence
from typing import Any, TypeVar

from flask import current_app

from flask_baton import Baton, Discard, Job, WaitFor, Workflow
from flask_baton.multi_model import fan_out, model_results

baton = Baton()

#: The prefix of every brief workflow's name; the rest is the topic.
WORKFLOW_PREFIX = "brief:"
#: Longest topic accepted (workflow names are stored in 255 characters).
MAX_TOPIC_LENGTH = 120

_PUBLISHERS = (
    "arxiv.org",
    "nature.com",
    "acm.org",
    "ieee.org",
    "wikipedia.org",
    "theguardian.com",
    "reuters.com",
    "github.com",
    "medium.com",
    "substack.com",
)
_ANGLES = (
    "a survey of",
    "open problems in",
    "the economics of",
    "a critique of",
    "recent advances in",
    "a practitioner's guide to",
    "the history of",
    "benchmarks for",
)
_FINDINGS = (
    "progress is steady but uneven across groups",
    "most gains come from better data rather than new methods",
    "costs are falling faster than adoption is rising",
    "reproducibility remains the main open concern",
    "regulation is shaping the field more than research",
    "small teams ship most of the practical improvements",
)
_EXTRA_KEYWORDS = (
    "scalability",
    "evaluation",
    "safety",
    "cost",
    "latency",
    "open source",
    "benchmarks",
    "regulation",
    "adoption",
    "reproducibility",
    "tooling",
)

T = TypeVar("T")

#: The rate limit key every fake model call counts against (``BATON_RATE_LIMITS``).
LLM_KEY = "fake-llm"
#: Each brief's spend cap: a normal brief costs well under a cent, so only a
#: runaway one reaches it (``app.config["EXAMPLE_BRIEF_BUDGET_USD"]`` overrides it).
BRIEF_BUDGET_USD = 0.05


def _digest(*parts: str) -> bytes:
    """A stable pseudo-random byte string for ``parts`` (the fake model's "seed")."""
    return hashlib.sha256("\x1f".join(parts).encode("utf-8")).digest()


def _pick(options: Sequence[T], seed: bytes, index: int) -> T:
    """Choose one of ``options`` with byte ``index`` of ``seed``."""
    return options[seed[index % len(seed)] % len(options)]


def _think(seed: bytes, low: float = 0.2, high: float = 0.8) -> None:
    """Pretend to wait for a model: a topic-dependent pause, scaled by config.

    Reads the app config at run time (steps run inside the app context), so a
    test app sets ``EXAMPLE_DELAY_SCALE = 0`` and the same code runs instantly.
    """
    scale = float(current_app.config.get("EXAMPLE_DELAY_SCALE", 1.0))
    if scale > 0:
        time.sleep(scale * (low + (high - low) * seed[0] / 255))


# -- the fake "LLM" functions (pure: topic in, JSON-ready value out) ---------


def fake_sources(topic: str) -> list[dict[str, str]]:
    """Three to five made-up sources about ``topic``."""
    seed = _digest("sources", topic)
    slug = "-".join(topic.lower().split())[:40] or "topic"
    sources = []
    for n in range(3 + seed[1] % 3):
        publisher = _pick(_PUBLISHERS, seed, 2 + n)
        angle = _pick(_ANGLES, seed, 8 + n)
        sources.append(
            {
                "title": f"{angle.capitalize()} {topic}",
                "url": f"https://{publisher}/{slug}/{seed[16 + n]:02x}{n}",
                "snippet": f"On {topic}: {_pick(_FINDINGS, seed, 20 + n)}.",
            }
        )
    return sources


def fake_summary(topic: str, sources: list[dict[str, str]]) -> str:
    """A two-sentence summary that quotes the sources' findings."""
    findings = sorted({s["snippet"].split(": ", 1)[1].rstrip(".") for s in sources})
    return f"{len(sources)} sources on {topic} broadly agree that {findings[0]}." + (
        f" Others add that {'; '.join(findings[1:])}." if len(findings) > 1 else ""
    )


#: The models the keyword step is asked of (priced in flask_baton's default table).
KEYWORD_MODELS = ("gpt-4.1-mini", "claude-3-5-haiku", "gemini-1.5-flash")


def fake_keywords(topic: str, model: str = "") -> list[str]:
    """The topic's own words plus a few related terms (each model picks its own)."""
    seed = _digest("keywords", topic, model)
    words = [w.strip(".,;:!?()\"'").lower() for w in topic.split()]
    extra = [_pick(_EXTRA_KEYWORDS, seed, i) for i in range(3)]
    return list(dict.fromkeys(w for w in [*words, *extra] if len(w) > 2))


def fake_credibility(sources: list[dict[str, str]]) -> dict[str, Any]:
    """A 0-100 score per source URL and their rounded mean."""
    scores = {s["url"]: 40 + _digest("credibility", s["url"])[0] % 61 for s in sources}
    return {"scores": scores, "overall": round(sum(scores.values()) / len(scores))}


def _bill(job: Job, model: str, prompt: str, answer: Any) -> None:
    """Record what a real call of this size would have used, and keep its context."""
    job.record_usage(model=model, input_tokens=40 + len(prompt) // 4, output_tokens=20 + len(str(answer)) // 4)
    job.capture_context(messages=[{"role": "user", "content": prompt}], response=answer)


# -- the steps ---------------------------------------------------------------


@baton.step(retries=2, retry_delay=1)
def fetch_sources(job: Job) -> dict[str, Any]:
    """Root: "search the web" for the topic (retried, as real fetches fail)."""
    topic = job.args["topic"]
    _think(_digest("fetch", topic))
    return {"topic": topic, "sources": fake_sources(topic)}


def fake_stream(text: str, seed: bytes) -> Iterator[dict[str, Any]]:
    """``text`` word by word, shaped as OpenAI chat-completion chunks, with a pause before each word."""
    words = text.split(" ")
    for index, word in enumerate(words):
        _think(seed, 0.02, 0.08)
        yield {"choices": [{"delta": {"content": word if index == 0 else " " + word}}]}


@baton.llm_step(rate_limit=LLM_KEY)
def summarize(job: Job) -> dict[str, Any]:
    """Summarise what the sources say (one model call, its answer streamed as it comes)."""
    fetched = job.result("fetch_sources")
    seed = _digest("summarize", fetched["topic"])
    summary = job.stream_from(fake_stream(fake_summary(fetched["topic"], fetched["sources"]), seed))
    _bill(job, "gpt-4o-mini", f"Summarise: {fetched['sources']}", summary)
    return {"summary": summary}


@baton.llm_step(rate_limit=LLM_KEY)
def extract_keywords(job: Job) -> dict[str, Any]:
    """Ask one model (``job.args["model"]``) for keywords."""
    model, topic = job.args["model"], job.result("fetch_sources")["topic"]
    _think(_digest("keywords", topic, model))
    words = fake_keywords(topic, model)
    _bill(job, model, f"Keywords for: {topic}", words)
    return {"keywords": words}


@baton.step()
def merge_keywords(job: Job) -> dict[str, Any]:
    """Synthesis: keywords at least two models agree on, then the rest (no call)."""
    answers = model_results(job)
    counts: dict[str, int] = {}
    for answer in answers.values():
        for word in answer["keywords"]:
            counts[word] = counts.get(word, 0) + 1
    ranked = sorted(counts, key=lambda word: (-counts[word], word))
    return {"keywords": ranked, "models": sorted(answers)}


@baton.llm_step(rate_limit=LLM_KEY)
def credibility(job: Job) -> dict[str, Any]:
    """Score how far each source can be trusted (one model call)."""
    fetched = job.result("fetch_sources")
    _think(_digest("credibility", fetched["topic"]))
    scores = fake_credibility(fetched["sources"])
    _bill(job, "claude-3-5-haiku", f"Rate: {fetched['sources']}", scores)
    return scores


@baton.step()
def compile_brief(job: Job) -> dict[str, Any]:
    """Fan-in: combine the three analyses into the brief (runs exactly once)."""
    inputs = job.results()
    summary, words, trust = inputs["summarize"], inputs["keywords"], inputs["credibility"]
    topic = job.args["topic"]
    _think(_digest("compile", topic), 0.1, 0.3)
    text = "\n".join(
        [
            f"# Research brief: {topic}",
            "",
            summary["summary"],
            "",
            f"Keywords: {', '.join(words['keywords'])}",
            f"Source credibility: {trust['overall']}/100 over {len(trust['scores'])} sources",
        ]
    )
    return {"topic": topic, "brief": text, "summarize": summary, "keywords": words, "credibility": trust}


def clean_topic(topic: str) -> str:
    """``topic`` with its whitespace collapsed; ``ValueError`` if empty or over-long."""
    topic = " ".join(topic.split())
    if not topic:
        raise ValueError("the topic is empty")
    if len(topic) > MAX_TOPIC_LENGTH:
        raise ValueError(f"the topic is longer than {MAX_TOPIC_LENGTH} characters")
    return topic


#: Seconds a compiled brief waits for an editor's decision before it is discarded
#: (``app.config["EXAMPLE_REVIEW_TIMEOUT"]`` overrides it).
REVIEW_TIMEOUT = 24 * 3600


@baton.step()
def review(job: Job) -> Any:
    """An editor approves the brief (the dashboard's Approve / Reject) before it is published."""
    decision = job.signal("approval")
    if decision is None:
        timeout = float(current_app.config.get("EXAMPLE_REVIEW_TIMEOUT", REVIEW_TIMEOUT))
        return WaitFor("approval", timeout=timeout, approval=True)
    if not decision.get("approved"):
        raise Discard(f"rejected by {decision.get('by') or 'an editor'}: {decision.get('comment') or 'no comment'}")
    return {"approved_by": decision.get("by"), "comment": decision.get("comment") or ""}


@baton.step()
def publish(job: Job) -> dict[str, Any]:
    """Publish the approved brief (here: say so; a real app would post it somewhere)."""
    brief, approval = job.result("compile_brief"), job.result("review")
    return {"published": True, "topic": brief["topic"], "approved_by": approval["approved_by"]}


def start_brief(topic: str) -> str:
    """Insert the brief's workflow for ``topic`` (the diamond, then review and publish); return its id.

    Needs an app context (a request or a CLI command). Raises ``ValueError``
    for an empty or over-long topic, before anything is written.
    """
    topic = clean_topic(topic)
    budget = float(current_app.config.get("EXAMPLE_BRIEF_BUDGET_USD", BRIEF_BUDGET_USD))
    workflow = (
        Workflow(name=WORKFLOW_PREFIX + topic, budget_usd=budget)
        .add("fetch_sources", fetch_sources.new(topic=topic))
        .add("summarize", summarize.new(), deps=["fetch_sources"])
        .add("credibility", credibility.new(), deps=["fetch_sources"])
    )
    fan_out(
        workflow,
        "keywords",
        extract_keywords,
        models=KEYWORD_MODELS,
        deps=["fetch_sources"],
        synthesize=("keywords", merge_keywords),
        quorum=2,
    )
    workflow.add("compile_brief", compile_brief.new(topic=topic), deps=["summarize", "keywords", "credibility"])
    workflow.add("review", review.new(), deps=["compile_brief"])
    workflow.add("publish", publish.new(), deps=["compile_brief", "review"])
    workflow.insert()
    return workflow.workflow_id
