"""Reading texts: JSON or JSON Lines by content, fields, sampling, and clear refusals."""

from __future__ import annotations

import json

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from headact.dump.data import parse_index_list, read_samples
from headact.errors import DataError


def write(tmp_path, name, content: str | bytes):
    path = tmp_path / name
    path.write_bytes(content if isinstance(content, bytes) else content.encode("utf-8"))
    return path


def test_json_array_of_mixed_records(tmp_path):
    path = write(tmp_path, "a.json", json.dumps(
        ["plain", {"input": "in"}, {"text": "tx"}, {"question": "q?"}]))
    s = read_samples(path)
    assert s.texts == ["plain", "in", "tx", "q?"] and s.index == [0, 1, 2, 3]
    assert s.data_format == "json"


def test_json_lines_decided_by_content_not_name(tmp_path):
    path = write(tmp_path, "a.json", '{"text": "one"}\n\n{"text": "two"}\n')
    s = read_samples(path)
    assert s.texts == ["one", "two"] and s.data_format == "jsonl"


def test_field_option_and_first_present_field(tmp_path):
    path = write(tmp_path, "a.jsonl", '{"body": "b", "text": "t"}\n{"body": "c", "input": "i"}\n')
    assert read_samples(path).texts == ["t", "i"]
    assert read_samples(path, field="body").texts == ["b", "c"]


def test_sample_num_is_seeded_and_sorted(tmp_path):
    path = write(tmp_path, "a.json", json.dumps([f"text {i}" for i in range(50)]))
    a = read_samples(path, sample_num=10, seed=1)
    b = read_samples(path, sample_num=10, seed=1)
    c = read_samples(path, sample_num=10, seed=2)
    assert a.index == b.index != c.index
    assert a.index == sorted(a.index)
    assert a.texts == [f"text {i}" for i in a.index]


def test_sample_num_above_count_uses_all_and_says_so(tmp_path):
    path = write(tmp_path, "a.json", json.dumps(["a", "b"]))
    s = read_samples(path, sample_num=5)
    assert s.index == [0, 1] and "asked for 5" in s.selection


@pytest.mark.parametrize("content, message", [
    ("", "is empty"),
    ("[1, 2", "not valid JSON"),
    ('{"a": 1}', "none of the fields"),
    ("[]", "holds no records"),
    ('[{"text": 3}]', "not a string"),
    ('["  "]', "text is empty"),
    ("[[1]]", "records must be strings"),
    (b'["\xff\xfe"]', "not valid UTF-8"),
])
def test_bad_files_are_refused_clearly(tmp_path, content, message):
    path = write(tmp_path, "bad.json", content)
    with pytest.raises(DataError, match=message):
        read_samples(path)


def test_missing_file_and_directory(tmp_path):
    with pytest.raises(DataError, match="no such data file"):
        read_samples(tmp_path / "nope.json")
    with pytest.raises(DataError, match="is a directory"):
        read_samples(tmp_path)


def test_index_lists():
    assert parse_index_list("0,2,5-7", 10, "layers") == [0, 2, 5, 6, 7]
    assert parse_index_list(None, 10, "layers") is None
    with pytest.raises(DataError, match="out of range"):
        parse_index_list("3-12", 10, "layers")


@settings(max_examples=40, deadline=None)
@given(texts=st.lists(st.text(min_size=1).filter(lambda t: t.strip()), min_size=1, max_size=20),
       as_lines=st.booleans(), sample=st.integers(min_value=1, max_value=25))
def test_reader_round_trips_any_texts(tmp_path_factory, texts, as_lines, sample):
    folder = tmp_path_factory.mktemp("prop")
    if as_lines:
        content = "\n".join(json.dumps({"text": t}) for t in texts)
    else:
        content = json.dumps([{"input": t} for t in texts])
    path = write(folder, "data.txt", content)
    s = read_samples(path, sample_num=sample, seed=3)
    assert len(s.texts) == min(sample, len(texts))
    assert s.texts == [texts[i] for i in s.index]
    assert np.all(np.diff(s.index) > 0)
