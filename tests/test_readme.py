"""The README's two commands are the ones the project really uses."""

import re

from conftest import REPO


def readme_commands() -> list[str]:
    blocks = re.findall(r"```bash\n(.*?)```", (REPO / "README.md").read_text(), re.S)
    return [next(ln for ln in b.splitlines() if ln and not ln.startswith("#")) for b in blocks]


def test_ci_runs_the_readme_test_command():
    install_and_run, test = readme_commands()[:2]
    assert "ccframe run steering/quickstart.yaml" in install_and_run
    assert "pytest" in test
    assert test in (REPO / ".ci" / "run").read_text()
