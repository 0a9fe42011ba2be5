"""The digest that fingerprints large data."""

from imageclef_concepts.files._digests import digest


def test_digest_takes_lone_surrogates_no_file_name_gives():
    assert digest("a\ud800") != digest("a\ud801")
    assert digest("caf\udce9") == digest(b"caf\xe9")  # os.fsdecode's: the name's bytes
