import os
import pathlib
import shutil

import pytest

REPO = pathlib.Path(__file__).resolve().parents[2]


@pytest.fixture(scope="session")
def downhill_cli():
    """The `downhill` command built from this repository (DOWNHILL_BIN, or
    target/release/downhill); skipped without it, a failure under CI."""
    candidates = [os.environ.get("DOWNHILL_BIN"), REPO / "target" / "release" / "downhill",
                  shutil.which("downhill")]
    for candidate in candidates:
        if candidate and pathlib.Path(candidate).is_file():
            return str(candidate)
    if os.environ.get("CI") == "true":
        pytest.fail("CI=true and no downhill binary was found (cargo build --release)")
    pytest.skip("no downhill binary: cargo build --release")
