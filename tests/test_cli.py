import subprocess
import sys

from imageclef_concepts._cli import main


def test_evaluate_prints_official_score(tmp_path, capsys):
    gt = tmp_path / "gt.tsv"
    gt.write_text("a\tC1;C2\nb\tC3\nc\t\n")
    run = tmp_path / "run.tsv"
    run.write_text("a\tC1\nb\tC3\nc\tC4\n")
    assert main(["evaluate", str(run), str(gt)]) == 0
    out = capsys.readouterr().out
    assert "Mean F1 score: 0.8333333333333333" in out
    assert "2 of 3 images" in out


def test_evaluate_bad_run_is_one_clear_error_without_traceback(tmp_path):
    gt = tmp_path / "gt.tsv"
    gt.write_text("a\tC1\nb\tC2\n")
    run = tmp_path / "run.tsv"
    run.write_text("a\tC1\na\tC2\n")
    done = subprocess.run(
        [sys.executable, "-m", "imageclef_concepts", "evaluate", str(run), str(gt)],
        capture_output=True, text=True,
    )
    assert done.returncode == 2
    assert "Traceback" not in done.stderr
    assert f"{run}:2: duplicate image id 'a'" in done.stderr
    assert f"{gt}:2: image id 'b' is missing from the run" in done.stderr


def test_evaluate_missing_file(tmp_path, capsys):
    assert main(["evaluate", str(tmp_path / "nope.tsv"), str(tmp_path / "gt.tsv")]) == 2
    assert "not found" in capsys.readouterr().err
