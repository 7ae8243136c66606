"""Score one rating question with whatever the adapter offers: answer probabilities first, then text.

Transport-neutral: the servicer calls it inside the work queue, tests and benchmarks can call it directly.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from servers.common.cancellation import CancelToken
from servers.common.errors import ServiceError
from servers.moondream.model import PreparedImage, VisionLanguageModel
from servers.moondream.scoring import (
    ANSWERS,
    DEFAULT_SCORE_INSTRUCTION,
    Score,
    score_from_answer_probabilities,
    score_from_text,
    scoring_question,
)

log = logging.getLogger("inpaint.moondream.scorer")


@dataclass(frozen=True)
class ScoredQuestion:
    score: Score
    # True when the vision encoder ran for this question (False: the encoding came from the cache).
    image_encoded: bool


def score_question(
    model: VisionLanguageModel,
    image: PreparedImage,
    question: str,
    *,
    use_answer_probabilities: bool = True,
    min_answer_mass: float = 0.2,
    max_new_tokens: int = 8,
    instruction: str = DEFAULT_SCORE_INSTRUCTION,
    token: CancelToken | None = None,
) -> ScoredQuestion:
    """The question's score on 0..10.

    Args:
        use_answer_probabilities: read the answers' probabilities where the adapter can; False always parses text.
        min_answer_mass: below this share of next-token probability on the answers 0..10, parse text instead.
        max_new_tokens: tokens to generate when parsing text.
        instruction: appended to the question (the answer format the parsers expect).
        token: the caller's deadline and cancellation, checked between model calls.
    """
    prompt = scoring_question(question, instruction)
    encoded = False
    if use_answer_probabilities and model.supports_answer_probabilities:
        try:
            distribution = model.answer_probabilities(image, prompt, ANSWERS, token=token)
        except ServiceError:
            raise  # deadlines, cancellations, bad input: not a reason to try text
        except Exception:
            # The logits path leans on model internals (moondream2's private prefill); if it breaks, the
            # model can still answer in text, and the log says why the method changed.
            log.warning("answer probabilities failed; parsing the text answer instead", exc_info=True)
        else:
            encoded = distribution.image_encoded
            score = score_from_answer_probabilities(distribution.probabilities, min_mass=min_answer_mass)
            if score is not None:
                return ScoredQuestion(score=score, image_encoded=encoded)
    answer = model.answer(image, prompt, max_new_tokens=max_new_tokens, token=token)
    return ScoredQuestion(score=score_from_text(answer.text), image_encoded=encoded or answer.image_encoded)
