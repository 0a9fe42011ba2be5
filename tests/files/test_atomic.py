"""Files written atomically keep what a plain open() would: the mode, a link's target."""

import os
import stat

from imageclef_concepts import write_run


def test_written_files_take_the_mode_open_would_give(tmp_path):
    old_mask = os.umask(0o022)
    try:
        new = tmp_path / "run.tsv"
        write_run(new, ["a"], [["C1"]])
        assert stat.S_IMODE(os.stat(new).st_mode) == 0o644
        shared = tmp_path / "shared.tsv"
        shared.write_text("a\tC2\n")
        os.chmod(shared, 0o664)
        write_run(shared, ["a"], [["C1"]])
        assert stat.S_IMODE(os.stat(shared).st_mode) == 0o664  # an overwrite keeps its mode
        assert shared.read_text() == "a\tC1\n"
    finally:
        os.umask(old_mask)


def test_writing_through_a_symbolic_link_updates_its_target(tmp_path):
    target = tmp_path / "real.tsv"
    target.write_text("old\n")
    link = tmp_path / "link.tsv"
    link.symlink_to(target)
    write_run(link, ["a"], [["C1"]])
    assert link.is_symlink() and target.read_text() == "a\tC1\n"
