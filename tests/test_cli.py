"""What the commands share (tupe/cli/__init__.py): the records they resume from."""

import json

import pytest

from tupe.cli import read_json, write_json


def test_resume_records_are_written_whole_and_read_with_a_clear_error(tmp_path):
    """write_json replaces a record only with a whole new one: a failure while writing leaves the
    earlier file and no temporary; read_json names the file and line of a damaged one."""
    path = tmp_path / "study.json"
    write_json(path, {"runs": {"a": 1}})
    plain = tmp_path.parent / f"{tmp_path.name}-plain"
    plain.write_text("x")
    assert path.stat().st_mode & 0o777 == plain.stat().st_mode & 0o777      # readable as any new file, not owner-only
    with pytest.raises(TypeError):
        write_json(path, {"runs": {"b": object()}})            # fails while writing
    assert json.loads(path.read_text()) == {"runs": {"a": 1}} and [p.name for p in tmp_path.iterdir()] == ["study.json"]
    path.write_text('{"runs": {"a": 1}')
    with pytest.raises(ValueError, match=f"{path}:1: not JSON"):
        read_json(path)
