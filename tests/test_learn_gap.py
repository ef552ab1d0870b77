"""scripts.learn_gap refuses a benchmark file without the asked-for row (one line, exit 2)."""

import json

from scripts.learn_gap import main


def test_missing_row_is_a_one_line_error(tmp_path, capsys):
    rows = tmp_path / "rows.json"
    rows.write_text(json.dumps([{"model": "mobilenet_v2", "method": "pca", "target": 2.0,
                                 "k": {}}]))
    assert main(["--ks", str(rows), "--target", "1.34"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [(f"python -m scripts.learn_gap: error: no MobileNetV2 PCA row at target "
                    f"1.34 in {rows}")]


def test_unreadable_file_is_a_one_line_error(tmp_path, capsys):
    assert main(["--ks", str(tmp_path / "none.json"), "--target", "3.0"]) == 2
    assert len(capsys.readouterr().err.strip().splitlines()) == 1
