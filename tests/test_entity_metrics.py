"""Tests for tfx_transfer.evaluate.entities on hand-checked examples."""

import json

import pytest
from seqeval.metrics import classification_report

from tfx_transfer.evaluate.entities import entity_report
from tfx_transfer.evaluate.entities import format_entity_report

# Sentence 1: "Barack Obama" (PER) is predicted one word short, a boundary
# error; "Paris" (LOC) is right. Sentence 2: "Acme Corp" (ORG) is predicted
# as LOC, a type error; "Ann" (PER) is right.
TRUE = [
    ["B-PER", "I-PER", "O", "B-LOC", "O"],
    ["B-ORG", "I-ORG", "O", "B-PER"],
]
PREDICTED = [
    ["B-PER", "O", "O", "B-LOC", "O"],
    ["B-LOC", "I-LOC", "O", "B-PER"],
]


def test_scores_by_hand():
    metrics = entity_report(TRUE, PREDICTED)
    # LOC: 1 true, 2 predicted (Paris, and Acme Corp typed wrong), 1 right.
    assert metrics["entity_types"]["LOC"] == {
        "precision": 0.5,
        "recall": 1.0,
        "f1": pytest.approx(2 / 3),
        "support": 1,
    }
    # ORG: 1 true, none predicted.
    assert metrics["entity_types"]["ORG"] == {
        "precision": 0.0,
        "recall": 0.0,
        "f1": 0.0,
        "support": 1,
    }
    # PER: 2 true, 2 predicted ("Barack" alone does not count), 1 right.
    assert metrics["entity_types"]["PER"] == {
        "precision": 0.5,
        "recall": 0.5,
        "f1": 0.5,
        "support": 2,
    }
    # Micro: 2 right of 4 predicted and 4 true.
    assert metrics["micro"] == {
        "precision": 0.5,
        "recall": 0.5,
        "f1": 0.5,
        "support": 4,
    }
    # Macro: the mean over LOC, ORG and PER.
    assert metrics["macro"]["precision"] == pytest.approx((0.5 + 0 + 0.5) / 3)
    assert metrics["macro"]["recall"] == pytest.approx((1 + 0 + 0.5) / 3)
    assert metrics["macro"]["f1"] == pytest.approx((2 / 3 + 0 + 0.5) / 3)
    # Weighted by support 1, 1, 2.
    assert metrics["weighted"]["f1"] == pytest.approx((2 / 3 + 0 + 2 * 0.5) / 4)
    # Tokens: "Obama" wrong in 5; "Acme", "Corp" wrong in 4: 6 of 9 right.
    assert metrics["token_accuracy"] == pytest.approx(6 / 9)
    assert (metrics["num_sentences"], metrics["num_tokens"]) == (2, 9)
    assert json.loads(json.dumps(metrics)) == metrics


def test_conlleval_mode_reads_a_stray_i_as_a_start():
    # Default (conlleval) mode: "I-PER" after "O" starts an entity, so the
    # prediction matches; strict IOB2 would count it as no entity.
    metrics = entity_report([["O", "B-PER", "I-PER"]], [["O", "I-PER", "I-PER"]])
    assert metrics["micro"]["f1"] == 1.0
    assert metrics["mode"] == "conlleval"


def test_tuples_and_a_type_only_predicted():
    metrics = entity_report((("O", "O"),), (("O", "B-MISC"),))
    assert metrics["entity_types"]["MISC"]["support"] == 0
    assert metrics["micro"]["precision"] == 0.0
    assert metrics["token_accuracy"] == 0.5


def test_no_entities_at_all():
    metrics = entity_report([["O", "O"]], [["O", "O"]])
    assert metrics["entity_types"] == {}
    assert metrics["micro"]["support"] == 0
    assert metrics["token_accuracy"] == 1.0
    assert "token accuracy: 1.0000" in format_entity_report(metrics)


def test_format_matches_seqeval_text():
    text = format_entity_report(entity_report(TRUE, PREDICTED))
    assert text.startswith(
        classification_report(TRUE, PREDICTED, digits=4, zero_division=0)
    )
    assert text.endswith("token accuracy: 0.6667 (9 tokens in 2 sentences)\n")


def test_mismatched_lengths_are_errors():
    with pytest.raises(ValueError, match="Sentence 1 has 4 true tags but 3"):
        entity_report(TRUE, [PREDICTED[0], PREDICTED[1][:3]])
    with pytest.raises(ValueError, match="2 true, 1 predicted"):
        entity_report(TRUE, PREDICTED[:1])
