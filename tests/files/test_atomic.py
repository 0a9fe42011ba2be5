"""Files written atomically keep what a plain open() would: the mode, a link's target."""

import os
import re
import stat

import pytest

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


@pytest.mark.parametrize("name", ["run\ud800.csv", "report\udbff.html"])
def test_a_name_no_file_system_holds_is_refused_by_name_before_writing(tmp_path, name):
    # os.fsdecode gives only \udc80-\udcff (written as the bytes they stand for);
    # any other lone surrogate was a UnicodeEncodeError naming no file, from every writer.
    from imageclef_concepts import evaluate_run, write_report

    shown = r"run\\ud800.csv|report\\udbff.html"
    with pytest.raises(ValueError, match=shown) as error:
        write_run(tmp_path / name, ["x"], [["C0000001"]], edition="2026")
    assert "not a file name this system can hold" in str(error.value)
    (tmp_path / "run.csv").write_text("ID,CUIs\nx,C0000001\n")
    evaluation = evaluate_run(tmp_path / "run.csv", tmp_path / "run.csv", edition="2026")
    with pytest.raises(ValueError, match=shown):
        write_report(tmp_path / name, evaluation)
    (tmp_path / "run.csv").unlink()
    assert list(tmp_path.iterdir()) == []
    write_run(tmp_path / "caf\udce9.csv", ["x"], [["C0000001"]], edition="2026")
    assert os.listdir(os.fsencode(tmp_path)) == [b"caf\xe9.csv"]


def test_a_name_holding_a_nul_is_refused_by_name_before_writing(tmp_path):
    # 'ValueError: embedded null byte', naming neither the parameter nor the file (review 20).
    from imageclef_concepts import evaluate_run, write_report

    with pytest.raises(ValueError, match=r"^output .*run\x00.csv holds a NUL character"):
        write_run(tmp_path / "run\0.csv", ["x"], [["C0000001"]], edition="2026")
    (tmp_path / "run.csv").write_text("ID,CUIs\nx,C0000001\n")
    evaluation = evaluate_run(tmp_path / "run.csv", tmp_path / "run.csv", edition="2026")
    with pytest.raises(ValueError, match="holds a NUL character"):
        write_report(tmp_path / "r\0.html", evaluation)
    assert sorted(os.listdir(tmp_path)) == ["run.csv"]


def test_reading_a_name_no_file_can_have_is_not_found_by_name(tmp_path):
    # A NUL or a lone surrogate no file name gives: os.open raised ValueError or
    # UnicodeEncodeError naming no file (ConceptCNNClassifier.load, ConceptEnsemble.load).
    from imageclef_concepts.files._atomic import check_regular_file, open_regular_file

    for name in ("m\ud800.keras", "m\0.keras"):
        for check in (open_regular_file, check_regular_file):
            with pytest.raises(FileNotFoundError, match=r"model file not found: .*m\\.*"
                                                        "no file can have this name"):
                check(str(tmp_path / name), "model file")


def test_a_missing_folder_is_named_by_every_writer_before_any_work(tmp_path):
    # Writers into a folder that does not exist raised FileNotFoundError naming the
    # library's temporary file ('.../nope/.saving-he3k6uof.csv'), a name the user never gave,
    # and write_report did so only once the report was built.
    import imageclef_concepts as ic
    from imageclef_concepts.files._atomic import check_writable_target, write_atomically

    missing = tmp_path / "nope"
    with pytest.raises(FileNotFoundError, match=r"output .*nope.w.csv: the folder .*nope does "
                                                r"not exist"):
        ic.write_run(missing / "w.csv", ["a"], [["C0000001"]])
    (tmp_path / "t.csv").write_text("a\tC0000001\n")
    evaluation = ic.evaluate_run(tmp_path / "t.csv", tmp_path / "t.csv")
    with pytest.raises(FileNotFoundError, match=r"report .*nope.r.html: the folder .*nope does "
                                                r"not exist"):
        ic.write_report(missing / "r.html", evaluation)
    with pytest.raises(FileNotFoundError, match="the folder .*nope does not exist"):
        write_atomically(os.fsencode(missing) + b"/x\xe9.bin", lambda handle: handle.write(b""))
    assert not missing.exists()
    check_writable_target(tmp_path / "new.csv")  # a new file in a folder that exists
    check_writable_target("relative-new.csv")  # in the current folder


def test_a_folder_that_cannot_be_written_is_named_by_every_writer_before_any_work(
        tmp_path, monkeypatch):
    # Into a folder the user cannot write (another user's, a read-only disk), save() raised
    # PermissionError naming the library's temporary file ('.../.saving-j3fy6i9g.keras'), a
    # name the user never gave, and write_report did so only once the report was built (seen
    # as user nobody). The test runs as root too: the folder's access is what is asked.
    import imageclef_concepts as ic
    from imageclef_concepts.files._atomic import check_writable_target, write_atomically

    locked = tmp_path / "locked"
    locked.mkdir()
    (locked / "old.csv").write_text("kept\n")
    real_access = os.access
    monkeypatch.setattr(os, "access", lambda path, mode, **kw: os.fspath(path) != os.fspath(
        locked) and real_access(path, mode, **kw))
    with pytest.raises(PermissionError, match=r"^output .*locked.w.csv: the folder .*locked "
                                              r"is not writable\.$"):
        ic.write_run(locked / "w.csv", ["a"], [["C0000001"]])
    (tmp_path / "t.csv").write_text("a\tC0000001\n")
    evaluation = ic.evaluate_run(tmp_path / "t.csv", tmp_path / "t.csv")
    with pytest.raises(PermissionError, match=r"^report .*locked.r.html: the folder"):
        ic.write_report(locked / "r.html", evaluation)
    with pytest.raises(PermissionError, match=r"old.csv: the folder .*locked is not writable"):
        write_atomically(locked / "old.csv", lambda handle: handle.write(b"new"))
    assert sorted(os.listdir(locked)) == ["old.csv"]
    assert (locked / "old.csv").read_text() == "kept\n"
    check_writable_target(tmp_path / "new.csv")  # a folder that can be written


def test_a_full_disk_is_named_by_the_file_being_written(tmp_path, monkeypatch, capsys):
    # On a full disk (a real 1 MiB tmpfs), predict --output, export and evaluate --report
    # said only '[Errno 28] No space left on device': a file's write names no file, and
    # Keras' or joblib's write into the temporary name would name that one
    import errno

    from imageclef_concepts.cli import main
    from imageclef_concepts.files._atomic import replaced_atomically, write_atomically

    def full(*args):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    (tmp_path / "old.tsv").write_text("kept\n")
    with pytest.raises(OSError, match="No space left") as raised:
        write_atomically(tmp_path / "old.tsv", full)
    assert raised.value.errno == errno.ENOSPC
    assert raised.value.filename == os.fspath(tmp_path / "old.tsv")
    with pytest.raises(OSError) as raised, replaced_atomically(tmp_path / "m.keras") as name:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), name)
    assert raised.value.filename == os.fspath(tmp_path / "m.keras")
    assert sorted(os.listdir(tmp_path)) == ["old.tsv"]
    assert (tmp_path / "old.tsv").read_text() == "kept\n"
    (tmp_path / "t.csv").write_text("a\tC0000001\n")
    monkeypatch.setattr("imageclef_concepts.report._html.write_atomically",
                        lambda path, write: write_atomically(path, full))
    assert main(["evaluate", str(tmp_path / "t.csv"), str(tmp_path / "t.csv"),
                 "--report", str(tmp_path / "r.html")]) == 2
    assert f"No space left on device: {tmp_path / 'r.html'}" in capsys.readouterr().err


def test_a_link_or_a_sticky_folder_that_stops_the_write_is_named_before_any_work(
        tmp_path, monkeypatch):
    # Seen as user nobody: the early check passed (1) a link, in a folder that can be
    # written, to a file of a folder that cannot (the write goes through the link: refused
    # only by the write, after the work), and (2) another user's file in a sticky folder
    # (/tmp's mode 1777), which os.replace may not replace: 'Operation not permitted:
    # .../.saving-k5_zx_fe.txt' -> ...', naming the library's temporary file, after the work.
    # As root, the folder's access and the user's id are what is asked.
    from imageclef_concepts.files._atomic import check_writable_target

    locked, open_ = tmp_path / "locked", tmp_path / "open"
    locked.mkdir()
    open_.mkdir()
    (locked / "x.csv").write_text("kept\n")
    (open_ / "link.csv").symlink_to(locked / "x.csv")
    (open_ / "dangling.csv").symlink_to(locked / "new.csv")
    real_access = os.access
    monkeypatch.setattr(os, "access", lambda path, mode, **kw: os.fspath(path) != os.fspath(
        locked) and real_access(path, mode, **kw))
    for link in ("link.csv", "dangling.csv"):
        with pytest.raises(PermissionError, match=rf"^output .*open.{link}: the folder "
                                                  r".*locked is not writable\.$"):
            check_writable_target(open_ / link)
    sticky = tmp_path / "sticky"
    sticky.mkdir()
    sticky.chmod(0o1777)
    (sticky / "theirs.csv").write_text("kept\n")
    monkeypatch.setattr(os, "geteuid", lambda: os.stat(sticky).st_uid + 12345)
    with pytest.raises(PermissionError, match=r"^output .*theirs.csv: the folder .*sticky "
                                              r"lets only a file's owner replace it"):
        check_writable_target(sticky / "theirs.csv")
    check_writable_target(sticky / "new.csv")  # a new file there is the user's own
    assert (locked / "x.csv").read_text() == (sticky / "theirs.csv").read_text() == "kept\n"


def test_folder_replaced_says_why_a_claimed_folder_is_not_the_one_claimed(tmp_path):
    from imageclef_concepts.files._atomic import folder_identity, folder_replaced

    folder = tmp_path / "claimed"
    folder.mkdir()
    (folder / "plan.json").write_text("{}")
    identity = folder_identity(folder)
    assert folder_replaced(folder, identity, "plan.json") is None
    (folder / "plan.json").unlink()
    (folder / "plan.json").mkdir()
    assert folder_replaced(folder, identity, "plan.json") == "its plan.json is not a file"
    (folder / "plan.json").rmdir()
    assert folder_replaced(folder, identity, "plan.json") == "its plan.json is gone"
    folder.rename(tmp_path / "moved")
    assert folder_replaced(folder, identity, "plan.json") == "it was deleted"
    folder.mkdir()
    (folder / "plan.json").write_text("{}")  # the same names in another folder
    assert folder_replaced(folder, identity, "plan.json") == \
        "another folder is at its path now"
    assert folder_identity(tmp_path / "nothing") is None


def test_content_digest_reads_a_files_bytes_or_their_beginning_and_never_a_pipe(tmp_path):
    # One digest of a file's bytes for the image store's versions and for telling copies
    # of training images (the first bytes alone pick the candidates).
    import hashlib

    from imageclef_concepts.files._atomic import content_digest

    path = tmp_path / "image.jpg"
    path.write_bytes(b"\xff\xd8" + bytes(range(256)) * 5000)  # past one block
    assert content_digest(path) == hashlib.sha256(path.read_bytes()).hexdigest()
    assert content_digest(path, 4) == hashlib.sha256(path.read_bytes()[:4]).hexdigest()
    assert content_digest(path, 10**9) == content_digest(path)
    os.mkfifo(tmp_path / "pipe.jpg")  # no writer: a read would block
    assert content_digest(tmp_path / "pipe.jpg") is None
    assert content_digest(tmp_path / "pipe.jpg", 4) is None
    assert content_digest(tmp_path / "nothing.jpg") is None


def test_check_outside_refuses_a_folder_in_an_input_by_any_name(tmp_path):
    # Review 18 F7: one check for every store and output against the folders read (the CLI's
    # --images, recipe-2026's data folder), links and ".." resolved.
    from imageclef_concepts.files._atomic import check_outside

    (tmp_path / "data").mkdir()
    (tmp_path / "link").symlink_to(tmp_path / "data")
    inputs = [("--images", None), ("--validation-images", tmp_path / "data")]
    for folder in (tmp_path / "data", tmp_path / "link" / "s", tmp_path / "x" / ".." / "data"):
        with pytest.raises(ValueError, match=rf"^--store {re.escape(str(folder))} is "
                                             r"(inside )?--validation-images .*data: name a "
                                             r"folder"):
            check_outside(folder, inputs, "--store")
    check_outside(tmp_path / "data2", inputs, "--store")  # beside it: fine


def test_check_outside_names_a_looping_link_in_one_line(tmp_path):
    # Review 20 r20b T1: Path.resolve() raised "RuntimeError: Symlink loop" (a traceback in
    # prepare/train/predict/embed/recipe-2026) for a store, an output or an input through a loop.
    from imageclef_concepts.files._atomic import check_outside

    (tmp_path / "loopA").symlink_to("loopB")
    (tmp_path / "loopB").symlink_to("loopA")
    (tmp_path / "data").mkdir()
    looping = tmp_path / "loopA" / "st"
    with pytest.raises(OSError, match=rf"^--store {re.escape(str(looping))}: too many levels "
                                      r"of symbolic links \(a link loop\)\.$"):
        check_outside(looping, [("--images", tmp_path / "data")], "--store")
    with pytest.raises(OSError, match=rf"^--images {re.escape(str(tmp_path / 'loopA'))}: too "
                                      r"many levels of symbolic links"):
        check_outside(tmp_path / "st", [("--images", tmp_path / "loopA")], "--store")


def test_a_listed_problem_is_shown_capped_with_its_full_length():
    # Review 20 r20b R2: a 50 MB id was listed whole (a 50,000,088-character message).
    from imageclef_concepts.files._atomic import listing

    listed = listing("2 image(s) without a file", ["short_id", "x" * 50_000_000], shown=1)
    assert listed.splitlines() == ["2 image(s) without a file:", "  short_id", "  ... and 1 more"]
    listed = listing("2 image(s) without a file", ["short_id", "x" * 50_000_000])
    assert listed.splitlines()[2] == f"  {'x' * 1000}... (50,000,000 characters)"
