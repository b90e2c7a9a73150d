"""Tests for tfx_transfer.data.conll: CoNLL files, tag schemes, splits."""

import json

import pytest

from tfx_transfer.data.bundled import bundled_conll_path
from tfx_transfer.data.conll import Sentence
from tfx_transfer.data.conll import TokenData
from tfx_transfer.data.tag_schemes import detect_scheme
from tfx_transfer.data.conll import read_conll
from tfx_transfer.data.conll import read_token_data
from tfx_transfer.data.tag_schemes import to_bio

WNUT_TYPES = (
    "company",
    "facility",
    "geo-loc",
    "movie",
    "musicartist",
    "other",
    "person",
    "product",
    "sportsteam",
    "tvshow",
)


def write(path, text):
    path.write_text(text, encoding="utf-8")
    return path


def sentences_of(sentences):
    return [(s.words, s.tags) for s in sentences]


# Reading


def test_tab_and_space_separated_files_read_the_same(tmp_path):
    tab = write(
        tmp_path / "tab.txt", "Barack\tB-PER\nObama\tI-PER\nsmiled\tO\n\nParis\tB-LOC\n"
    )
    space = write(
        tmp_path / "space.txt", "Barack B-PER\nObama  I-PER\nsmiled O\n\nParis B-LOC"
    )
    expected = [
        (("Barack", "Obama", "smiled"), ("B-PER", "I-PER", "O")),
        (("Paris",), ("B-LOC",)),
    ]
    assert sentences_of(read_conll(tab)) == expected
    assert sentences_of(read_conll(space)) == expected


def test_conll2003_columns_docstart_and_locations(tmp_path):
    path = write(
        tmp_path / "eng.train",
        "-DOCSTART- -X- -X- O\n\n"
        "EU NNP B-NP B-ORG\nrejects VBZ B-VP O\nGerman JJ B-NP B-MISC\n\n"
        "-DOCSTART- -X- -X- O\n\n\n"
        "Peter NNP B-NP B-PER\nBlackburn NNP I-NP I-PER\n",
    )
    sentences = read_conll(path)
    assert sentences_of(sentences) == [
        (("EU", "rejects", "German"), ("B-ORG", "O", "B-MISC")),
        (("Peter", "Blackburn"), ("B-PER", "I-PER")),
    ]
    assert sentences[0].location == f"{path}:3"
    assert sentences[1].location == f"{path}:10"


def test_whitespace_only_lines_separate_sentences(tmp_path):
    # WNUT files separate sentences with a line holding only a tab.
    path = write(
        tmp_path / "wnut.txt", "@user\tO\nlol\tO\n\t\nNYC\tB-geo-loc\n  \r\nok\tO\r\n"
    )
    assert sentences_of(read_conll(path)) == [
        (("@user", "lol"), ("O", "O")),
        (("NYC",), ("B-geo-loc",)),
        (("ok",), ("O",)),
    ]


def test_one_column_line_is_named(tmp_path):
    path = write(tmp_path / "bad.txt", "a\tO\nb\tO\n\nlonely\nc\tO\n")
    with pytest.raises(
        ValueError, match=rf"{tmp_path}/bad.txt:4: one column.*'lonely'"
    ):
        read_conll(path)


def test_a_line_with_another_column_count_is_named(tmp_path):
    path = write(tmp_path / "bad.txt", "John\tB-PER\nran\tO\n\nNew York\tB-LOC\n"
                 "is\tO\n\nthree\tNN\tO\n")
    with pytest.raises(ValueError, match=r"bad.txt:7: 3 columns where line 1 has 2"):
        read_conll(path)
    spaced = write(tmp_path / "spaced.txt", "John B-PER\nran O\n\nNew York B-LOC\nis O\n")
    with pytest.raises(ValueError, match=r"spaced.txt:4: 3 columns where line 1 has 2 \(a "
                                         r"token with a space in it\?\)"):
        read_conll(spaced)
    # CoNLL-2003's four columns throughout are one layout: token first, tag last.
    four = write(tmp_path / "four.txt", "John NNP B-NP B-PER\nran VBD B-VP O\n")
    assert read_conll(four)[0].tags == ("B-PER", "O")


def test_empty_token_is_named(tmp_path):
    path = write(tmp_path / "bad.txt", "a\tO\n \tB-PER\n")
    with pytest.raises(ValueError, match=r"bad.txt:2: empty token"):
        read_conll(path)


@pytest.mark.parametrize("tag", ["X-PER", "B-", "PER", "b-PER"])
def test_invalid_tag_is_named(tmp_path, tag):
    path = write(tmp_path / "bad.txt", f"a O\n\nb O\nc {tag}\n")
    with pytest.raises(ValueError, match=rf"bad.txt:4: invalid tag '{tag}'") as error:
        read_conll(path)
    reason = "no entity type" if tag == "B-" else "neither 'O' nor"
    assert reason in str(error.value)


def test_tag_outside_the_given_scheme_is_named(tmp_path):
    path = write(tmp_path / "bad.txt", "a B-PER\nb E-PER\n")
    with pytest.raises(ValueError, match=r"bad.txt:2: invalid tag 'E-PER'.*bio scheme"):
        read_conll(path, scheme="bio")


def test_undecodable_byte_is_named(tmp_path):
    path = tmp_path / "latin1.txt"
    path.write_bytes("a\tO\nZ\u00fcrich\tB-LOC\n".encode("latin-1"))
    with pytest.raises(ValueError, match=r"latin1.txt:2: cannot decode byte 0xfc"):
        read_conll(path)


def test_empty_and_token_free_files_are_errors(tmp_path):
    with pytest.raises(ValueError, match="is empty"):
        read_conll(write(tmp_path / "empty.txt", " \n\t\n"))
    with pytest.raises(ValueError, match="holds no tokens"):
        read_conll(write(tmp_path / "docstart.txt", "-DOCSTART- O\n\n"))
    with pytest.raises(ValueError, match="does not exist"):
        read_conll(tmp_path / "missing.txt")


# Tag schemes


def test_iob1_is_detected_and_converted(tmp_path):
    # IOB1 (CoNLL-2003's original files): I- starts an entity; B- only
    # separates two adjacent entities of one type.
    path = write(
        tmp_path / "iob1.txt",
        "Peter I-PER\nBlackburn I-PER\nmet O\nAnn I-PER\nBob B-PER\n"
        "in O\nNew I-LOC\nYork I-LOC\n",
    )
    assert detect_scheme([["I-PER", "I-PER", "O", "I-PER", "B-PER"]]) == "iob1"
    (sentence,) = read_conll(path)
    assert sentence.tags == (
        "B-PER",
        "I-PER",
        "O",
        "B-PER",
        "B-PER",
        "O",
        "B-LOC",
        "I-LOC",
    )


def test_iobes_and_bilou_are_detected_and_converted(tmp_path):
    iobes = write(
        tmp_path / "iobes.txt",
        "Ann S-PER\nvisited O\nNew B-LOC\nYork I-LOC\nCity E-LOC\n",
    )
    bilou = write(
        tmp_path / "bilou.txt",
        "Ann U-PER\nvisited O\nNew B-LOC\nYork I-LOC\nCity L-LOC\n",
    )
    expected = ("B-PER", "O", "B-LOC", "I-LOC", "I-LOC")
    assert read_conll(iobes)[0].tags == expected
    assert read_conll(bilou, scheme="bilou")[0].tags == expected


def test_bio_with_b_after_o_stays_bio():
    tags = ["B-PER", "I-PER", "O", "B-LOC", "B-LOC"]
    assert detect_scheme([tags]) == "bio"
    assert to_bio(tags, "bio") == tuple(tags)
    # A stray I- in BIO starts an entity, as conlleval and seqeval read it.
    assert to_bio(["O", "I-PER", "I-LOC"], "bio") == ("O", "B-PER", "B-LOC")


def test_to_bio_rejects_unknown_scheme():
    with pytest.raises(ValueError, match="Received: scheme='ioe2'"):
        to_bio(["O"], "ioe2")


# Splits


def write_sentences(path, count, types=("PER", "LOC")):
    lines = []
    for i in range(count):
        entity_type = types[i % len(types)]
        lines += [
            f"w{i}\tO",
            f"name{i}\tB-{entity_type}",
            f"more{i}\tI-{entity_type}",
            "",
        ]
    return write(path, "\n".join(lines))


def test_seeded_split_sizes_and_determinism(tmp_path):
    path = write_sentences(tmp_path / "all.txt", 50)
    data = read_token_data(path, val_fraction=0.2, test_fraction=0.1, seed=3)
    assert {name: len(s) for name, s in data.splits.items()} == {
        "train": 35,
        "val": 10,
        "test": 5,
    }
    again = read_token_data(path, val_fraction=0.2, test_fraction=0.1, seed=3)
    assert data.splits == again.splits
    other = read_token_data(path, val_fraction=0.2, test_fraction=0.1, seed=4)
    assert data.splits["test"] != other.splits["test"]
    words = [s.words for split in data.splits.values() for s in split]
    assert len(set(words)) == 50
    locations = [int(s.location.rpartition(":")[2]) for s in data.splits["train"]]
    assert locations == sorted(locations)
    assert data.tag_names == ("O", "B-LOC", "B-PER", "I-LOC", "I-PER")
    assert data.split_source == "seeded split"


def test_report_is_json_ready(tmp_path):
    path = write_sentences(tmp_path / "all.txt", 20)
    data = read_token_data(path, val_fraction=0.25, test_fraction=0.25, seed=0)
    report = json.loads(json.dumps(data.report()))
    assert report["sentences"] == {"train": 10, "val": 5, "test": 5}
    assert report["totals"] == report["sentences"]
    assert report["tokens"] == {"train": 30, "val": 15, "test": 15}
    for name, sentences in data.splits.items():
        assert sum(report["counts"][name].values()) == len(sentences)
    assert report["num_skipped"] == 0 and report["skipped"] == []
    assert report["class_names"] == list(data.tag_names)
    assert data.num_classes == 5


def test_val_and_test_files_and_unseen_type(tmp_path):
    train = write_sentences(tmp_path / "train.txt", 10)
    test = write(tmp_path / "test.txt", "Ann B-PER\n\nto O\nParis B-LOC\n")
    data = read_token_data(train, test_path=test, val_fraction=0.2)
    assert data.split_source == "files"
    assert data.carved_splits == ("val",)
    assert [len(data.splits[n]) for n in ("train", "val", "test")] == [8, 2, 2]
    assert data.tag_ids(data.splits["test"][1]) == (0, 1)
    unseen = write(tmp_path / "val.txt", "Ann B-PER\n\nat O\nACME B-ORG\nInc I-ORG\n")
    with pytest.raises(ValueError, match=rf"{tmp_path}/val.txt:4: tag 'B-ORG'.*'ORG'"):
        read_token_data(train, val_path=unseen)


def test_sentence_requires_one_tag_per_word():
    with pytest.raises(ValueError, match="same length"):
        Sentence(("a", "b"), ("O",), "x:1")


# The bundled WNUT-16 file


def test_bundled_wnut_file():
    sentences = read_conll(bundled_conll_path())
    assert len(sentences) == 2394
    assert sum(len(s) for s in sentences) == 46469
    data = read_token_data(bundled_conll_path())
    assert isinstance(data, TokenData)
    assert data.tag_scheme == "bio"
    assert data.entity_types == WNUT_TYPES
    assert data.num_classes == 21
    report = data.report()
    assert sum(report["sentences"].values()) == 2394
    assert report["sentences"] == {"train": 1914, "val": 240, "test": 240}
    entities = sum(sum(counts.values()) for counts in report["counts"].values())
    assert entities == 1496


def test_skip_bad_rows_leaves_out_and_counts_whole_sentences(tmp_path):
    path = tmp_path / "bad.conll"
    path.write_text(
        "Paris\tB-loc\nis\tO\n\n"          # good
        "Rome\n\n"                          # one column
        "Oslo\tB-loc\ncold\tX-weird\n\n"    # invalid tag on its second line
        "Bob\tB-per\n\n"                    # good
        "a\tb\tc\tI-per\n"                  # four columns where the file has two
    )
    with pytest.raises(ValueError, match=r"bad.conll:4: one column"):
        read_token_data(path, val_fraction=0.0, test_fraction=0.0)
    data = read_token_data(path, val_fraction=0.0, test_fraction=0.0, skip_bad_rows=True)
    assert [s.words for s in data.splits["train"]] == [("Paris", "is"), ("Bob",)]
    report = data.report()
    assert report["num_skipped"] == 3
    locations = [location.rsplit(":", 1)[1] for location, _ in report["skipped"]]
    assert locations == ["4", "7", "11"]
    assert "one column" in report["skipped"][0][1] and "X-weird" in report["skipped"][1][1]
    assert report["skipped"][2][1].startswith("4 columns where line 1 has 2")
