"""docs/api.md runs: every Python block, in order, in one namespace (from a fresh folder)."""

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_api_page_runs(tmp_path, monkeypatch):
    text = (ROOT / "docs" / "api.md").read_text()
    blocks = re.findall(r"```python\n(.*?)```", text, flags=re.S)
    assert len(blocks) >= 4
    monkeypatch.chdir(tmp_path)
    namespace: dict = {}
    for block in blocks:
        exec(compile(block, "docs/api.md", "exec"), namespace)
    assert namespace["outcome"].status == 0
