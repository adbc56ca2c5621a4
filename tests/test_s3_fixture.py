"""The loopback S3 server fixture works with plain fsspec URLs (other tests rely on it)."""
import fsspec


def test_roundtrip_through_plain_url(s3):
    url = f"s3://{s3.test_bucket}/hello.txt"
    with fsspec.open(url, "wb") as f:
        f.write(b"hi")
    with fsspec.open(url, "rb") as f:
        assert f.read() == b"hi"
    assert s3.ls(s3.test_bucket) == [f"{s3.test_bucket}/hello.txt"]
