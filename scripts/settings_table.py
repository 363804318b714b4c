"""Write the settings table of README's Deploy section from app/settings.py.

    .venv/bin/python scripts/settings_table.py

tests/deploy/test_deploy_files.py fails when README's table and `Settings` disagree: run this
after adding, renaming or redescribing a setting, and commit the result.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
BEGIN = "<!-- settings table: written by scripts/settings_table.py -->"
END = "<!-- end of settings table -->"


def table() -> str:
    sys.path.insert(0, str(ROOT))
    from app.settings import Settings

    rows = ["| variable | default | what it sets |", "|---|---|---|"]
    for name, field in Settings.model_fields.items():
        aliases = getattr(field.validation_alias, "choices", None)
        names = list(aliases) if aliases else [f"{Settings.model_config['env_prefix']}{name.upper()}"]
        variable = f"`{names[0]}`" + "".join(f" (or `{other}`)" for other in names[1:])
        default = _default(field.get_default(call_default_factory=True))
        rows.append(f"| {variable} | {default} | {field.description.replace('|', '/')} |")
    return "\n".join(rows)


def _default(value: Any) -> str:
    if value is None or value == []:
        return "none"
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return f"`{value}`"


def readme_table(readme: str) -> str:
    """The table as README has it now."""
    return readme.split(BEGIN, 1)[1].split(END, 1)[0].strip()


def main() -> None:
    readme = README.read_text()
    before, rest = readme.split(BEGIN, 1)
    after = rest.split(END, 1)[1]
    README.write_text(f"{before}{BEGIN}\n{table()}\n{END}{after}")
    print(f"wrote the settings table in {README.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
