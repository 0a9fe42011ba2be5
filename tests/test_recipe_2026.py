"""The 2026-style system in one command: the layout, the dry run, resuming, and refusals."""

import contextlib
import dataclasses
import io
import json
import shutil

import pytest

from imageclef_concepts import (
    _recipe_parts,
    evaluate_run,
    find_imageclef_layout,
    make_imageclef_layout,
    read_concepts,
    run_recipe_2026,
)
from imageclef_concepts._cli import main
from imageclef_concepts._editions import SECONDARY_CUIS
from imageclef_concepts._recipe_2026 import DRY_RUN


def test_the_2026_layout_is_read_as_the_2026_evaluator_reads_it(tmp_path):
    splits = make_imageclef_layout(tmp_path, n_train=12, n_valid=6, n_test=6, test_truth=False)
    layout = find_imageclef_layout(tmp_path)
    assert layout["test"].concepts is None and layout["test"].manual is None
    for split in ("train", "valid"):
        truth = read_concepts(layout[split].concepts, edition="2026")
        manual = read_concepts(layout[split].manual, edition="2026")
        assert truth.ids == manual.ids == splits[split].ids
        for concepts, validated in zip(truth.concepts, manual.concepts):
            assert validated  # a 2026 ground truth line always holds a concept
            assert set(validated) == (set(concepts) & SECONDARY_CUIS or set(concepts))
    assert len(list(layout["train"].images.glob("*.jpg"))) == 12
    # The released data's names are found too: <split>_concepts.csv beside <split>/.
    flat = tmp_path / "flat"
    for split in ("train", "valid"):
        shutil.copytree(tmp_path / split / "images", flat / split)
        shutil.copy(tmp_path / split / "concepts.csv", flat / f"{split}_concepts.csv")
    found = find_imageclef_layout(flat)
    assert set(found) == {"train", "valid"} and found["valid"].manual is None
    (flat / "valid_concepts.csv").unlink()
    with pytest.raises(FileNotFoundError, match="valid_concepts.csv"):
        find_imageclef_layout(flat)


@pytest.fixture(scope="module")
def dry_run(tmp_path_factory):
    output = tmp_path_factory.mktemp("recipe") / "out"
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        status = main(["recipe-2026", "--dry-run", "--output", str(output)])
    assert status == 0
    return output, printed.getvalue(), json.loads((output / "summary.json").read_text())


def test_the_dry_run_prints_its_plan_then_writes_a_checked_scored_run(dry_run):
    output, printed, summary = dry_run
    assert printed.index("Plan (imageclef-concepts recipe-2026)") < printed.index("Estimate: ")
    assert printed.index("Estimate: 4 members x 80 images x 2 epochs") < printed.index(
        "Member 1/4")
    truth = output / "data" / "test" / "concepts.csv"
    run = read_concepts(output / "run.csv", edition="2026")  # the 2026 reader accepts it
    assert run.ids == read_concepts(truth, edition="2026").ids  # in the truth's order
    scored = evaluate_run(output / "run.csv", truth, edition="2026",
                          secondary_truth=output / "data" / "test" / "concepts_manual.csv")
    assert summary["primary"] == scored.score and summary["secondary"] == scored.secondary_score
    assert f"{scored.score:.4f}" in printed
    assert (output / "report.html").read_text().count("<html") == 1
    assert sorted(p.name for p in (output / "members").iterdir()) == [
        f"member-{i:02d}.zip" for i in range(4)]
    # The kept decision is the better of votes and mean + count on validation.
    tuned = summary["validation_scores"]
    assert summary["chosen"] == max(["mean+count", "votes"], key=tuned.get)
    assert summary["n_trained"] == 4 and summary["n_loaded"] == 0


def test_a_rerun_with_other_settings_is_refused_naming_them(dry_run, capsys):
    output, _, _ = dry_run
    plan = (output / "plan.json").read_bytes()
    assert main(["recipe-2026", "--dry-run", "--output", str(output), "--epochs", "5"]) == 2
    error = capsys.readouterr().err
    assert "estimator_params" in error and "other settings" in error
    assert len(error.strip().splitlines()) == 1
    assert (output / "plan.json").read_bytes() == plan


def test_an_interrupted_run_resumes_loading_the_members_it_saved(tmp_path, monkeypatch):
    recipe = dataclasses.replace(DRY_RUN, grid={"filters": [(8,)], "random_state": [0, 1]})
    fits = []
    real_fit = _recipe_parts.fit_member

    def interrupted_at_the_second(member, paths, concepts):
        fits.append(member.random_state)
        if len(fits) == 2:
            raise KeyboardInterrupt
        return real_fit(member, paths, concepts)

    monkeypatch.setattr(_recipe_parts, "fit_member", interrupted_at_the_second)
    lines = []
    with pytest.raises(KeyboardInterrupt):
        run_recipe_2026(None, tmp_path / "out", recipe=recipe, dry_run=True, say=lines.append)
    members = tmp_path / "out" / "members"
    assert sorted(p.name for p in members.iterdir()) == ["member-00.zip"]
    monkeypatch.setattr(_recipe_parts, "fit_member", real_fit)
    counted = []
    monkeypatch.setattr(_recipe_parts, "fit_member",
                        lambda *args: counted.append(1) or real_fit(*args))
    result = run_recipe_2026(None, tmp_path / "out", recipe=recipe, dry_run=True,
                             say=lines.append)
    assert (result.n_loaded, result.n_trained, len(counted)) == (1, 1, 1)
    assert "Loaded 1 member(s) saved by an earlier run." in lines
    assert read_concepts(result.run_file, edition="2026").ids


def test_user_mistakes_are_one_line_and_touch_nothing(tmp_path, capsys):
    assert main(["recipe-2026", "--data", str(tmp_path / "absent"),
                 "--output", str(tmp_path / "o")]) == 2
    assert "data folder not found" in capsys.readouterr().err
    make_imageclef_layout(tmp_path / "data", n_train=4, n_valid=2, n_test=2, image_size=16)
    (tmp_path / "data" / "valid" / "concepts.csv").unlink()
    assert main(["recipe-2026", "--data", str(tmp_path / "data"),
                 "--output", str(tmp_path / "o")]) == 2
    assert "concepts.csv not found" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()  # nothing written before the inputs are checked
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("keep me")
    assert main(["recipe-2026", "--dry-run", "--output", str(mine)]) == 2
    error = capsys.readouterr().err
    assert "not made by recipe-2026" in error and len(error.strip().splitlines()) == 1
    assert [p.name for p in mine.iterdir()] == ["notes.txt"]
    assert main(["recipe-2026", "--output", str(mine)]) == 2  # neither --data nor --dry-run


def test_a_pipe_in_place_of_the_plan_is_refused_not_read(tmp_path):
    import os

    from imageclef_concepts._recipe_parts import claim_output

    os.mkfifo(tmp_path / "plan.json")  # opening it for reading would wait for a writer
    with pytest.raises(ValueError, match="not the recipe's"):
        claim_output(tmp_path, {"procedure": "imageclef-concepts recipe-2026"}, "plan.json")
