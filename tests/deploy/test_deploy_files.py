"""The deployment files, checked without Docker: the Dockerfile under hadolint, the compose
file against the compose specification and the settings, README's settings table against
app/settings.py."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import yaml

from app.settings import Settings
from scripts import settings_table

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent  # where the test extra installed hadolint's binary
API_SERVICES = ["gradserve", "gradserve-gpu", "gradserve-ray"]


def test_the_dockerfile_is_clean_under_hadolint():
    done = subprocess.run([str(BIN / "hadolint"), "Dockerfile"], cwd=ROOT, capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr


def test_the_cpu_image_is_the_default_target():
    stages = [line.split() for line in (ROOT / "Dockerfile").read_text().splitlines() if line.startswith("FROM ")]
    assert stages[-1][-2:] == ["AS", "cpu"]
    assert {stage[-1] for stage in stages} >= {"cpu", "gpu", "ray"}


def test_the_compose_file_follows_the_compose_specification():
    done = subprocess.run(
        [sys.executable, "-m", "check_jsonschema", "--builtin-schema", "vendor.compose-spec", "docker-compose.yml"],
        cwd=ROOT, capture_output=True, text=True,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr


def test_every_api_service_takes_every_setting_from_the_environment():
    services = yaml.safe_load((ROOT / "docker-compose.yml").read_text())["services"]
    settings = {f"GRADSERVE_{name.upper()}" for name in Settings.model_fields if name != "ray_address"}
    for name in API_SERVICES:
        environment = services[name]["environment"]
        assert {key for key in environment if key.startswith("GRADSERVE_")} == settings, name
        passed = {key for key, value in environment.items() if value == f"${{{key}:-}}"}
        assert passed >= settings - {"GRADSERVE_EXECUTOR", "GRADSERVE_BACKEND"}, name


def test_the_gpu_service_reserves_a_gpu_and_computes_with_cupy():
    service = yaml.safe_load((ROOT / "docker-compose.yml").read_text())["services"]["gradserve-gpu"]
    (device,) = service["deploy"]["resources"]["reservations"]["devices"]
    assert device["capabilities"] == ["gpu"] and device["count"] == 1
    assert service["environment"]["GRADSERVE_BACKEND"] == "cupy"


def test_readmes_settings_table_is_the_settings():
    readme = (ROOT / "README.md").read_text()
    assert settings_table.readme_table(readme) == settings_table.table(), (
        "run: .venv/bin/python scripts/settings_table.py"
    )
