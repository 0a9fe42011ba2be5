"""What sizes files and folders take: the bytes a checkpoint to be resumed holds."""

from imageclef_concepts.files._sizes import bytes_held


def test_the_files_a_checkpoint_holds_are_counted_links_not_followed(tmp_path):
    assert bytes_held(tmp_path / "none") == 0
    (tmp_path / "backup").mkdir()
    (tmp_path / "backup" / "a").write_bytes(b"x" * 100)
    (tmp_path / "b").write_bytes(b"x" * 10)
    (tmp_path / "big").write_bytes(b"x" * 10**6)
    (tmp_path / "c").mkdir()
    (tmp_path / "c" / "link").symlink_to(tmp_path / "big")
    (tmp_path / "big").unlink()
    assert bytes_held(tmp_path) == 110
