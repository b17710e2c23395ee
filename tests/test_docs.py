"""The documentation: the MkDocs site builds strictly, and the README's links and commands hold."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
#: Markdown links and images: [text](target) / ![alt](target).
LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)\)")


def test_mkdocs_build_strict_has_no_warnings(tmp_path: Path) -> None:
    """A broken link, a missing anchor or image, or an API reference to a renamed object
    is a warning, and ``--strict`` turns warnings into a failed build."""
    env = dict(os.environ, NO_MKDOCS_2_WARNING="1")
    proc = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(tmp_path)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    log = proc.stdout + proc.stderr
    warnings = [line for line in log.splitlines() if "WARNING" in line or "ERROR" in line]
    assert proc.returncode == 0 and not warnings, log
    assert (tmp_path / "index.html").is_file()
    api = (tmp_path / "reference" / "api" / "index.html").read_text(encoding="utf-8")
    # the API reference really was generated from the docstrings
    assert "remove_background" in api and "Returns" in api
    # a Returns description over several lines is one row, not one row per line
    start = api.index('id="sod100k.api.weights_home"')
    returns = api[api.index("Returns:", start) :]
    table = returns[: returns.index("</table>")]
    assert table.count('<tr class="doc-section-item">') == 1, table
    assert "SOD100K_HOME</code> is unset" in table


def _readme_links() -> list[str]:
    text = README.read_text(encoding="utf-8")
    text = re.sub(r"```.*?```", "", text, flags=re.S)  # links inside code blocks are code
    return LINK.findall(text)


def test_readme_links_point_at_files_in_the_repository() -> None:
    local = [t for t in _readme_links() if not re.match(r"[a-z]+://|mailto:|#", t)]
    assert local, "README.md links into the docs"
    missing = [t for t in local if not (ROOT / t.split("#")[0]).exists()]
    assert not missing, f"README.md links to missing files: {missing}"


def test_readme_is_short_and_keeps_the_ci_command() -> None:
    text = README.read_text(encoding="utf-8")
    assert len(text.splitlines()) <= 150
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8").strip().splitlines()[-1]
    assert ci == "scripts/install.sh --dev && .venv/bin/python -m pytest"
    assert f"```bash\n{ci}\n```" in text
