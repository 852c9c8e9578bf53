import pytest

from components.data.asset_fetch import AssetError, pypi_package


def test_a_package_that_cannot_be_had_is_named_with_the_registry_answer(tmp_path, monkeypatch):
    monkeypatch.setenv("EBFT_ASSET_CACHE", str(tmp_path))
    with pytest.raises(AssetError, match=r"could not fetch PyPI package ebft-no-such-package-xyz==0\.0\.1"):
        pypi_package("ebft-no-such-package-xyz", "0.0.1")
    assert list(tmp_path.iterdir()) == []  # nothing half-fetched is left in the cache
