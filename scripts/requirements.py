"""Print the requirements pyproject.toml declares: the dependencies, or one extra's.

    python scripts/requirements.py [EXTRA] > requirements.txt

The Docker build installs them in layers of their own, before the code is copied in, so
that editing the code rebuilds only the small gradserve wheel.
"""

from __future__ import annotations

import sys
import tomllib
from pathlib import Path


def requirements(pyproject: Path, extra: str | None = None) -> list[str]:
    project = tomllib.loads(pyproject.read_text())["project"]
    return project["dependencies"] if extra is None else project["optional-dependencies"][extra]


if __name__ == "__main__":
    extra = sys.argv[1] if len(sys.argv) > 1 else None
    print("\n".join(requirements(Path("pyproject.toml"), extra)))
