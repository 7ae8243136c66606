"""Turn a vision-language model's answer into a score on 0..10.

Two ways, best first:

1. **Answer distribution.** Where the adapter exposes logits, read the probability that the answer is
   exactly "0", "1", ..., "10" and take the expected value. This uses everything the model believes,
   not just its top token, and it cannot produce an unusable answer.
2. **Parsed text.** Otherwise generate the answer and read the number from it ("7", "7/10",
   "Score: 7.5", "seven out of ten").

When neither gives a usable number the score is the fallback (5.0) and the result says why, so that
the search's ledger can tell a judgement from a default. Pure functions: no model, no torch.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from enum import Enum

SCORE_MIN = 0.0
SCORE_MAX = 10.0
FALLBACK_SCORE = 5.0
ANSWERS = tuple(str(value) for value in range(11))
DEFAULT_SCORE_INSTRUCTION = "Answer with one integer from 0 to 10."

TokenIds = tuple[int, ...]
NextTokenProbabilities = Callable[[TokenIds], Sequence[float]]


class ScoreMethod(Enum):
    DIGIT_LOGITS = "digit_logits"
    PARSED_TEXT = "parsed_text"
    FALLBACK = "fallback"


@dataclass(frozen=True)
class Score:
    """A score on 0..10 and how it was obtained."""

    value: float
    method: ScoreMethod
    raw_answer: str = ""
    fallback_reason: str = ""
    # For DIGIT_LOGITS: normalised probabilities of the answers 0..10, and the next-token probability
    # those answers covered before normalising.
    answer_probabilities: tuple[float, ...] = field(default_factory=tuple)
    answer_mass: float = 0.0

    @property
    def fallback(self) -> bool:
        return self.method is ScoreMethod.FALLBACK


def exact_answer_probabilities(
    next_token_probabilities: NextTokenProbabilities, candidates: Sequence[TokenIds]
) -> list[float]:
    """Probability that the answer is exactly each candidate token sequence.

    `next_token_probabilities(prefix)` gives the model's distribution over the vocabulary for the token
    after the answer prefix `prefix` (the empty tuple for the answer's first token). A candidate's
    probability is the product of its tokens' probabilities; where a candidate is a strict prefix of
    another (byte-level tokenizers write "10" as "1", "0") the answer could continue, so "1" only counts
    with the probability that it does not go on into a longer candidate. One model call per distinct
    prefix: two for the answers 0..10 with a byte-level tokenizer, one where "10" is a single token.
    """
    if any(len(candidate) == 0 for candidate in candidates):
        raise ValueError("every candidate needs at least one token")
    candidate_set = set(candidates)
    prefixes: set[TokenIds] = {candidate[:i] for candidate in candidates for i in range(len(candidate))}
    continued = {c for c in candidate_set if any(o != c and o[: len(c)] == c for o in candidate_set)}
    distributions = {prefix: next_token_probabilities(prefix) for prefix in sorted(prefixes | continued)}

    result = []
    for candidate in candidates:
        probability = 1.0
        for i, token in enumerate(candidate):
            probability *= float(distributions[candidate[:i]][token])
        if candidate in continued:
            next_tokens = {
                o[len(candidate)] for o in candidate_set if len(o) > len(candidate) and o[: len(candidate)] == candidate
            }
            going_on = sum(float(distributions[candidate][token]) for token in next_tokens)
            probability *= max(0.0, 1.0 - going_on)
        result.append(probability)
    return result


def softmax(logits: Sequence[float]) -> list[float]:
    """A numerically stable softmax over plain floats (adapters pass one row of logits)."""
    top = max(logits)
    exps = [math.exp(value - top) for value in logits]
    total = sum(exps)
    return [value / total for value in exps]


def score_from_answer_probabilities(probabilities: Sequence[float], *, min_mass: float = 0.0) -> Score | None:
    """Expected value over the answers 0..10, or None when they cover less than `min_mass` of the model's
    probability (the model meant to say something else, so its digits are not a judgement)."""
    if len(probabilities) != len(ANSWERS):
        raise ValueError(f"need {len(ANSWERS)} answer probabilities (0..10), got {len(probabilities)}")
    if any(p < 0 or not math.isfinite(p) for p in probabilities):
        raise ValueError("answer probabilities must be finite and non-negative")
    mass = float(sum(probabilities))
    if mass <= 0.0 or mass < min_mass:
        return None
    normalised = tuple(p / mass for p in probabilities)
    expected = sum(value * p for value, p in enumerate(normalised))
    return Score(
        value=min(SCORE_MAX, max(SCORE_MIN, expected)),
        method=ScoreMethod.DIGIT_LOGITS,
        answer_probabilities=normalised,
        answer_mass=min(1.0, mass),
    )


_NUMBER_WORDS = {
    "zero": 0,
    "one": 1,
    "two": 2,
    "three": 3,
    "four": 4,
    "five": 5,
    "six": 6,
    "seven": 7,
    "eight": 8,
    "nine": 9,
    "ten": 10,
}
_NUMBER = r"(\d+(?:[.,]\d+)?|" + "|".join(_NUMBER_WORDS) + r")"
# The answer must lead with the number, optionally after a label ("Score: 7", "Rating - 8/10"); a
# number somewhere inside a sentence ("the 2 faces differ") is not a rating.
_LEADING_SCORE = re.compile(
    r"^\W*(?:(?:score|rating|answer|identity|consistency|realism)\s*(?:is)?\s*[:=\-]?\s*)?"
    + _NUMBER
    + r"(?:\s*(?:/|out\s+of|of)\s*(10|ten|100)\b)?",
    re.IGNORECASE,
)


def parse_score_text(answer: str) -> float | None:
    """The 0..10 score written at the start of `answer`, or None when there is none or it is out of range.

    Accepts "7", "7.5", "7,5", "7/10", "70/100", "seven out of ten", "Score: 8". Rejects "", "maybe",
    "11", "-3", and text that does not lead with the number.
    """
    match = _LEADING_SCORE.match(answer.strip())
    if match is None:
        return None
    token = match.group(1).lower()
    value = float(_NUMBER_WORDS[token]) if token in _NUMBER_WORDS else float(token.replace(",", "."))
    scale = match.group(2)
    if scale is not None and scale.lower() == "100":
        value /= 10.0
    prefix = answer.strip()[: match.start(1)]
    if "-" in prefix and not re.search(r"[A-Za-z]", prefix):
        return None  # a negative number, not a labelled one
    if not SCORE_MIN <= value <= SCORE_MAX:
        return None
    return value


def score_from_text(answer: str) -> Score:
    """The parsed score, or the fallback flagged with the reason."""
    value = parse_score_text(answer)
    if value is None:
        shown = answer.strip()[:80]
        return fallback_score(f"answer has no leading score on 0..10: {shown!r}", raw_answer=answer)
    return Score(value=value, method=ScoreMethod.PARSED_TEXT, raw_answer=answer)


def fallback_score(reason: str, *, raw_answer: str = "") -> Score:
    return Score(value=FALLBACK_SCORE, method=ScoreMethod.FALLBACK, raw_answer=raw_answer, fallback_reason=reason)


def scoring_question(question: str, instruction: str = DEFAULT_SCORE_INSTRUCTION) -> str:
    """The question as sent to the model: the caller's rubric, then the answer-format instruction."""
    question = question.strip()
    return f"{question} {instruction}".strip() if instruction else question
