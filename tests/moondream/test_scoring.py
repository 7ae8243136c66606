"""Scores from answer probabilities and from text: pure functions, no model."""

from __future__ import annotations

import math

import pytest

from servers.moondream.scoring import (
    ANSWERS,
    FALLBACK_SCORE,
    ScoreMethod,
    exact_answer_probabilities,
    parse_score_text,
    score_from_answer_probabilities,
    score_from_text,
    scoring_question,
    softmax,
)

# A byte-level vocabulary: token i is the digit str(i) for i < 10; 10 is some other token.
DIGIT = {str(i): i for i in range(10)}
OTHER = 10
VOCAB = 11


def byte_level(text: str) -> tuple[int, ...]:
    return tuple(DIGIT[c] for c in text)


def distribution(weights: dict[int, float]) -> list[float]:
    row = [0.0] * VOCAB
    for token, p in weights.items():
        row[token] = p
    row[OTHER] += 1.0 - sum(row)
    return row


def test_expected_value_of_single_token_answers() -> None:
    first = distribution({7: 0.5, 8: 0.5})
    probabilities = exact_answer_probabilities(lambda prefix: first, [byte_level(a) for a in ANSWERS[:10]])
    assert probabilities[7] == pytest.approx(0.5) and probabilities[8] == pytest.approx(0.5)
    score = score_from_answer_probabilities([*probabilities, 0.0])
    assert score is not None and score.value == pytest.approx(7.5)
    assert score.method is ScoreMethod.DIGIT_LOGITS and not score.fallback


def test_ten_written_as_two_tokens_splits_the_mass_of_one() -> None:
    """With "10" = "1","0", P(answer is 1) = P(1) * P(not 0 | 1) and P(10) = P(1) * P(0 | 1)."""
    calls: list[tuple[int, ...]] = []

    def next_token(prefix: tuple[int, ...]) -> list[float]:
        calls.append(prefix)
        if prefix == ():
            return distribution({1: 0.8, 9: 0.2})
        if prefix == (1,):
            return distribution({0: 0.75})
        raise AssertionError(f"unexpected prefix {prefix}")

    probabilities = exact_answer_probabilities(next_token, [byte_level(a) for a in ANSWERS])
    assert probabilities[1] == pytest.approx(0.8 * 0.25)
    assert probabilities[10] == pytest.approx(0.8 * 0.75)
    assert probabilities[9] == pytest.approx(0.2)
    assert sorted(calls) == [(), (1,)]  # one model call per distinct prefix
    score = score_from_answer_probabilities(probabilities)
    assert score is not None
    assert score.value == pytest.approx(1 * 0.2 + 9 * 0.2 + 10 * 0.6)


def test_single_token_ten_needs_one_call() -> None:
    calls = []

    def next_token(prefix: tuple[int, ...]) -> list[float]:
        calls.append(prefix)
        return distribution({OTHER: 0.0, 3: 0.5}) if prefix == () else []

    candidates = [(i,) for i in range(10)] + [(OTHER,)]
    probabilities = exact_answer_probabilities(next_token, candidates)
    assert calls == [()]
    assert probabilities[3] == pytest.approx(0.5) and probabilities[10] == pytest.approx(0.5)


def test_low_answer_mass_is_not_a_judgement() -> None:
    probabilities = [0.01] * 11
    assert score_from_answer_probabilities(probabilities, min_mass=0.2) is None
    score = score_from_answer_probabilities(probabilities, min_mass=0.1)
    assert score is not None and score.value == pytest.approx(5.0)
    assert score.answer_mass == pytest.approx(0.11)
    assert sum(score.answer_probabilities) == pytest.approx(1.0)


def test_bad_probability_vectors_are_rejected() -> None:
    with pytest.raises(ValueError, match="11"):
        score_from_answer_probabilities([0.1] * 10)
    with pytest.raises(ValueError, match="finite"):
        score_from_answer_probabilities([math.nan] + [0.1] * 10)
    assert score_from_answer_probabilities([0.0] * 11) is None


def test_softmax_is_stable() -> None:
    result = softmax([1000.0, 1000.0, -1000.0])
    assert result == pytest.approx([0.5, 0.5, 0.0])


@pytest.mark.parametrize(
    ("answer", "expected"),
    [
        ("7", 7.0),
        ("  8.5 ", 8.5),
        ("7,5", 7.5),
        ("9/10", 9.0),
        ("70/100", 7.0),
        ("10", 10.0),
        ("0", 0.0),
        ("Score: 6", 6.0),
        ("Rating - 4 out of 10", 4.0),
        ("seven out of ten", 7.0),
        ("Ten.", 10.0),
        ("3. The faces differ in the jaw.", 3.0),
    ],
)
def test_parse_usable_answers(answer: str, expected: float) -> None:
    assert parse_score_text(answer) == pytest.approx(expected)


@pytest.mark.parametrize("answer", ["", "   ", "\n\n", "maybe", "11", "-3", "15/10", "The 2 faces differ", "yes"])
def test_parse_unusable_answers(answer: str) -> None:
    assert parse_score_text(answer) is None


def test_unusable_text_gives_flagged_fallback() -> None:
    score = score_from_text("I cannot tell.")
    assert score.fallback and score.method is ScoreMethod.FALLBACK
    assert score.value == FALLBACK_SCORE
    assert "I cannot tell." in score.fallback_reason
    parsed = score_from_text("8")
    assert not parsed.fallback and parsed.method is ScoreMethod.PARSED_TEXT and parsed.value == 8.0


def test_scoring_question_appends_the_format() -> None:
    assert scoring_question("  Same person? ", "Answer 0-10.") == "Same person? Answer 0-10."
    assert scoring_question("Same person?", "") == "Same person?"
