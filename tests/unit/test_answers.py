"""Unit tests for final-answer extraction and gold matching."""

from __future__ import annotations

import threading

import pytest

from mstar_ray.core.answers import (
    MATCHERS,
    AnswerKind,
    answers_match,
    classify_answer,
    extract_answer,
    is_correct,
    parse_choices,
)

MATHVISTA_Q = (
    "Hint: Please answer the question and provide the correct option letter.\n"
    "Question: How many cubes are left?\nChoices:\n(A) 3\n(B) 5\n(C) 7\n(D) 9"
)
OPTIONS_Q = "What color is the car?\nOptions:\nA. red\nB. blue\nC. green"
COLON_Q = "Which shape is shaded?\nA: circle\nB: square\nC: the large triangle"
INLINE_Q = "What is the area of the square? Choices: (A) 4 (B) 8 (C) 16 (D) 32"
ABCD_5 = {"A": "3", "B": "5", "C": "7"}


def make_response(*steps: str, answer: str | None = None, heading: str = "# Answer") -> str:
    body = "\n\n".join(steps)
    return body if answer is None else f"{body}\n\n{heading}\n\n{answer}"


@pytest.mark.parametrize(
    ("response", "expected"),
    [
        (make_response("Step 1: count the cubes.", "Step 2: there are 5.", answer="5"), "5"),
        (make_response("Count them.", answer="5", heading="#Answer"), "5"),
        (make_response("Count them.", answer="5", heading="# Answer:"), "5"),
        (make_response("Count them.", answer="5", heading="## Answer"), "5"),
        (make_response("Count them.", answer="5", heading="# Answer   "), "5"),
        (make_response("Count them.", answer="5   \n"), "5"),
        ("Step 1: add.\n\n# Answer: 5", "5"),
        ("Step 1: add.\n\n# Answer 12", "12"),
        ("Step 1.\n\n# Answer\n\n7\n\nThis is because 3 + 4 = 7.", "7"),
        ("Step 1.\n\n# Answer\n\n\n\n  B  \nextra", "B"),
        (make_response("Compute.", answer="$\\frac{1}{2}$"), "\\frac{1}{2}"),
        (make_response("Compute.", answer="\\boxed{42}"), "42"),
        (make_response("Compute.", answer="$\\boxed{\\frac{3}{4}}$."), "\\frac{3}{4}"),
        (make_response("Compute.", answer="The answer is B."), "B"),
        (make_response("Compute.", answer="The final answer is: 12.5"), "12.5"),
        (make_response("Compute.", answer="red."), "red"),
        (make_response("Compute.", answer="**C**"), "C"),
        (make_response("Compute.", answer="$$\n\\sqrt{2}\n$$"), "\\sqrt{2}"),
        ("Step 1: I will write # Answer later.\n\n# Answer\n\n3\n\nStep 2.\n\n# Answer\n\n4", "4"),
        ("First, recall the format\n# Answer\n\nis required.\n\nStep 2: compute.\n\n# Answer\n\n9", "9"),
        ("Step 1.\n\n# Final Answer\n\n10", "10"),
        ("Step 1.\n\n# answer\n\nyes", "yes"),
    ],
)
def test_extract_answer(response: str, expected: str) -> None:
    assert extract_answer(response) == expected


@pytest.mark.parametrize(
    "response",
    [
        "",
        "Step 1: count.\n\nStep 2: there are 5 cubes.",
        "Step 1: count.\n\n# Answer",
        "Step 1: count.\n\n# Answer\n\n   \n\n",
        "Step 1: count.\n\n# Answer:   ",
        "# Answer\n\n$$",
        "Step 1.\n\n# Answer\n\n5\n\nStep 2: actually wait.\n\n# Answer\n\n",
        "The answer is 5.",
    ],
)
def test_extract_answer_missing(response: str) -> None:
    assert extract_answer(response) is None


@pytest.mark.parametrize(
    ("question", "expected"),
    [
        (MATHVISTA_Q, {"A": "3", "B": "5", "C": "7", "D": "9"}),
        (OPTIONS_Q, {"A": "red", "B": "blue", "C": "green"}),
        (COLON_Q, {"A": "circle", "B": "square", "C": "the large triangle"}),
        (INLINE_Q, {"A": "4", "B": "8", "C": "16", "D": "32"}),
        ("Pick one:\nA) yes\nB) no", {"A": "yes", "B": "no"}),
        ("How many apples are on the table?", {}),
        ("", {}),
        ("Point A: (1, 2). Where is it?", {}),
        ("A. only one option here", {}),
        ("Options:\nA. 1\nC. 3", {}),
    ],
)
def test_parse_choices(question: str, expected: dict[str, str]) -> None:
    assert parse_choices(question) == expected


@pytest.mark.parametrize(
    ("gold", "choices", "kind"),
    [
        ("B", ABCD_5, AnswerKind.CHOICE),
        ("5", ABCD_5, AnswerKind.CHOICE),
        ("blue", {"A": "red", "B": "blue"}, AnswerKind.CHOICE),
        ("B", {}, AnswerKind.TEXT),
        ("3", {}, AnswerKind.NUMBER),
        ("12.5%", {}, AnswerKind.NUMBER),
        ("1,000", {}, AnswerKind.NUMBER),
        ("-0.25", {}, AnswerKind.NUMBER),
        ("\\frac{1}{2}", {}, AnswerKind.MATH),
        ("2\\pi", {}, AnswerKind.MATH),
        ("x^2 + 1", {}, AnswerKind.MATH),
        ("(1, 2)", {}, AnswerKind.MATH),
        ("red", {}, AnswerKind.TEXT),
        ("Route 66", {}, AnswerKind.TEXT),
        ("11", ABCD_5, AnswerKind.NUMBER),
    ],
)
def test_classify_answer(gold: str, choices: dict[str, str], kind: AnswerKind) -> None:
    assert classify_answer(gold, choices) is kind


@pytest.mark.parametrize(
    ("predicted", "gold", "expected"),
    [
        ("3", "3.0", True),
        ("3.0", "3", True),
        ("1,000", "1000", True),
        ("1000", "1,000", True),
        ("12.5%", "12.5", True),
        ("12.5\\%", "12.5", True),
        ("0.5", "1/2", True),
        ("1/2", "0.5", True),
        ("-3", "3", False),
        ("\u22123", "-3", True),
        ("3 cm", "3", True),
        ("3cm", "3", True),
        ("5 apples", "5", True),
        ("3\\text{ cm}^2", "3", True),
        ("90^{\\circ}", "90", True),
        ("90°", "90", True),
        ("3.00001", "3", True),
        ("3.1", "3", False),
        ("x = 4", "4", True),
        ("2.99", "3", False),
        ("red", "3", False),
        ("", "3", False),
        ("three", "3", False),
        ("\\frac{1}{2}", "0.5", True),
        ("\\sqrt{4}", "2", True),
        ("1/0", "3", False),
    ],
)
def test_number_match(predicted: str, gold: str, expected: bool) -> None:
    assert answers_match(predicted, gold) is expected


def test_number_tolerance_is_configurable() -> None:
    assert not answers_match("3.01", "3")
    assert answers_match("3.01", "3", rel_tol=1e-2)
    assert answers_match("0.0000001", "0", abs_tol=1e-6)


@pytest.mark.parametrize(
    "predicted",
    [
        "B",
        "(B)",
        "B)",
        "B.",
        "B. 5",
        "(B) 5",
        "Option B",
        "the answer is B",
        "b",
        "5",
        "5.0",
        "The answer is (B).",
    ],
)
def test_choice_predictions_matching_b(predicted: str) -> None:
    assert answers_match(predicted, "B", ABCD_5)


@pytest.mark.parametrize(
    ("predicted", "gold", "choices", "expected"),
    [
        ("B", "5", ABCD_5, True),
        ("(B) 5", "5", ABCD_5, True),
        ("A", "B", ABCD_5, False),
        ("3", "B", ABCD_5, False),
        ("E", "B", ABCD_5, False),
        ("(C) 7", "B", ABCD_5, False),
        ("blue", "B", {"A": "red", "B": "blue"}, True),
        ("Blue.", "B", {"A": "red", "B": "blue"}, True),
        ("red", "B", {"A": "red", "B": "blue"}, False),
        ("the large triangle", "C", parse_choices(COLON_Q), True),
        ("nonsense", "B", ABCD_5, False),
    ],
)
def test_choice_match(predicted: str, gold: str, choices: dict[str, str], expected: bool) -> None:
    assert answers_match(predicted, gold, choices) is expected


@pytest.mark.parametrize(
    ("predicted", "gold", "expected"),
    [
        ("0.5", "\\frac{1}{2}", True),
        ("\\frac{2}{4}", "\\frac{1}{2}", True),
        ("1/2", "\\frac{1}{2}", True),
        ("\\sqrt{2}", "\\sqrt{2}", True),
        ("2\\pi", "\\pi", False),
        ("\\pi", "2\\pi", False),
        ("2\\pi", "2\\pi", True),
        ("\\pi \\cdot 2", "2\\pi", True),
        ("x^2+1", "1 + x^{2}", True),
        ("x^2-1", "x^2+1", False),
        ("\\frac{", "\\frac{1}{2}", False),
        ("red", "\\sqrt{2}", False),
    ],
)
def test_math_match(predicted: str, gold: str, expected: bool) -> None:
    assert answers_match(predicted, gold) is expected


@pytest.mark.parametrize(
    ("predicted", "gold", "expected"),
    [
        ("The red one.", "red one", True),
        ("red one", "The red one.", True),
        ("RED", "red", True),
        ("  yes  ", "Yes", True),
        ("a   big   dog", "big dog", True),
        ("blue", "red", False),
        ("red car", "red", False),
        ("A", "a", True),
        ("(B)", "B", True),
        ("\\text{red}", "red", True),
    ],
)
def test_text_match(predicted: str, gold: str, expected: bool) -> None:
    assert answers_match(predicted, gold) is expected


@pytest.mark.parametrize(
    ("response", "gold", "question", "expected"),
    [
        (
            make_response("Step 1: The image shows 5 cubes.", "Step 2: None are removed.", answer="B"),
            "B",
            MATHVISTA_Q,
            True,
        ),
        (make_response("Step 1: There are 5 cubes.", answer="5"), "B", MATHVISTA_Q, True),
        (make_response("Step 1: There are 7 cubes.", answer="(C) 7"), "B", MATHVISTA_Q, False),
        (make_response("Step 1: The car is blue.", answer="The answer is B."), "B", OPTIONS_Q, True),
        (make_response("Side is 4, so area is 16.", answer="C"), "16", INLINE_Q, True),
        (
            make_response("Step 1: Half of the circle is shaded.", "Step 2: So the ratio is 1/2.", answer="$0.5$"),
            "\\frac{1}{2}",
            "",
            True,
        ),
        (make_response("Step 1: The total is 1000.", answer="1,000 dollars"), "1000", "", True),
        (make_response("Step 1: The angle is a right angle.", answer="90^\\circ"), "90", "", True),
        (make_response("Step 1: The area is 2 pi.", answer="\\pi"), "2\\pi", "", False),
        (make_response("Step 1: The sky is blue.", answer="Blue."), "blue", "", True),
        (make_response("Step 1: The sky is blue.", "Step 2: I am not sure."), "blue", "", False),
        (make_response("Step 1: Count.", answer=""), "3", "", False),
        ("", "3", "", False),
        ("Step 1: # Answer is 3 per the draft.\n\n# Answer\n\n4", "4", "", True),
    ],
)
def test_is_correct(response: str, gold: str, question: str, expected: bool) -> None:
    assert is_correct(response, gold, question) is expected


GARBAGE = [
    "",
    " ",
    "\n\n",
    "$",
    "$$",
    "\\boxed{",
    "}{",
    "\\frac{1}{0}",
    "1/0",
    "(((((",
    "=" * 50,
    "ñ∀∃ 数学 🚀",
    "x" * 20000,
    "1" * 5000,
    "9" * 400 + ".5",
    "\\frac{" * 500,
    "(A) " * 2000,
    "# Answer\n\n" * 100,
    "\x00\x01\x02",
]


@pytest.mark.parametrize("garbage", GARBAGE)
@pytest.mark.parametrize("gold", ["3", "B", "\\frac{1}{2}", "red", ""])
def test_answers_match_never_raises(garbage: str, gold: str) -> None:
    result = answers_match(garbage, gold, ABCD_5)
    assert isinstance(result, bool)
    assert isinstance(answers_match(gold, garbage), bool)


@pytest.mark.parametrize("garbage", GARBAGE)
def test_other_functions_never_raise(garbage: str) -> None:
    assert isinstance(is_correct(garbage, "3", garbage), bool)
    assert extract_answer(garbage) is None or isinstance(extract_answer(garbage), str)
    assert isinstance(parse_choices(garbage), dict)


def test_math_match_from_non_main_thread() -> None:
    results: list[bool] = []
    errors: list[BaseException] = []

    def worker() -> None:
        try:
            results.append(answers_match("0.5", "\\frac{1}{2}"))
            results.append(answers_match("2\\pi", "\\pi"))
        except BaseException as exc:  # noqa: BLE001 - the assertion is that nothing escapes
            errors.append(exc)

    thread = threading.Thread(target=worker)
    thread.start()
    thread.join(timeout=60)
    assert errors == []
    assert results == [True, False]


def test_matcher_registry_is_extensible(monkeypatch: pytest.MonkeyPatch) -> None:
    assert set(MATCHERS) == set(AnswerKind)
    monkeypatch.setitem(MATCHERS, AnswerKind.TEXT, lambda pred, gold, choices, tol: True)
    assert answers_match("blue", "red")
