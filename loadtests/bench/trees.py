"""The code trees an A/B run serves: this checkout, and another commit's in a git worktree."""

import contextlib
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

from loadtests.bench import ROOT, say
from testkit.stack import PYTHON


def git(*args: str) -> str:
    return subprocess.run(
        ["git", "-C", str(ROOT), *args], capture_output=True, text=True, check=True
    ).stdout.strip()


def short_commit(ref: str) -> str:
    return git("rev-parse", "--short", f"{ref}^{{commit}}")


@contextlib.contextmanager
def checkout_of(ref: str) -> Iterator[tuple[Path, str]]:
    """The code tree of `ref` (a detached git worktree, removed afterwards) and the Python to
    run it with. Without a ref, this checkout."""
    if not ref:
        yield ROOT, PYTHON
        return
    commit = git("rev-parse", "--verify", f"{ref}^{{commit}}")
    tree = Path(tempfile.mkdtemp(prefix="bench-baseline-"))
    git("worktree", "add", "--detach", str(tree), commit)
    try:
        # Both sides run the same server: this checkout's launcher, with the reader of the
        # environment it takes its values from.
        for launcher in ("serve.py", "environment.py"):
            shutil.copy2(ROOT / "config" / launcher, tree / "config" / launcher)
        yield tree, _python_for(ref, tree)
    finally:
        with contextlib.suppress(subprocess.CalledProcessError):
            git("worktree", "remove", "--force", str(tree))
        shutil.rmtree(tree, ignore_errors=True)
        git("worktree", "prune")


def _python_for(ref: str, tree: Path) -> str:
    """This checkout's Python if `tree` pins the same requirements, else a virtualenv's."""
    requirements = "requirements.txt"
    if (tree / requirements).read_bytes() == (ROOT / requirements).read_bytes():
        return PYTHON
    say(f"{ref} pins other requirements: building a virtualenv for it")
    subprocess.run([PYTHON, "-m", "venv", str(tree / ".venv")], check=True)
    python = str(tree / ".venv" / "bin" / "python")
    pip = [python, "-m", "pip", "install", "--quiet", "--disable-pip-version-check"]
    # packaging: kombu's Redis transport imports it, and older pins did not bring it.
    subprocess.run([*pip, "-r", str(tree / requirements), "packaging"], check=True)
    return python
