"""The README's two set-up commands exist, and CI runs exactly the test one."""

import re

from tests.conftest import ROOT


def setup_commands():
    text = (ROOT / "README.md").read_text()
    section = text.split("## Set up", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```bash\n(.+?)\n```", section)


def test_exactly_two_set_up_commands():
    commands = setup_commands()
    assert len(commands) == 2
    assert all("\n" not in c for c in commands), "each is one line a newcomer can paste"
    app, tests = commands
    assert app.endswith("streamlit run app.py") and "requirements.txt" in app
    assert tests.endswith("python -m pytest -q") and "requirements.txt" in tests


def test_ci_runs_the_readme_test_command():
    ci = (ROOT / ".ci" / "run").read_text()
    assert setup_commands()[1] in ci
