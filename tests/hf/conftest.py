import pytest

# Everything here needs the hf extra; without it these tests are skipped (CI installs it).
pytest.importorskip("transformers", reason="the hf extra is not installed: pip install -e '.[hf]'")
