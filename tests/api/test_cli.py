"""The `gradserve` command's client verbs against a real `gradserve serve`."""

from __future__ import annotations

import json
import subprocess
import sys

from app import examples
from tests.api.conftest import ROOT, TYPE_BASE


def gradserve(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "gradserve.cli", *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=60)  # fmt: skip


def test_grad_prints_the_value_and_gradient_as_json(server_url):
    done = gradserve("grad", "2*dot(x,x)", "x=0,1,2,3", "--url", server_url)
    assert done.returncode == 0, done.stderr
    answer = json.loads(done.stdout)
    assert answer["value"] == 28.0 and answer["gradient"] == {"x": [0.0, 4.0, 8.0, 12.0]}


def test_hvp_takes_tangents_and_reduce(server_url):
    done = gradserve("hvp", "x ** 3", "x=[1, 2]", "--tangent", "x=1,1", "--reduce", "sum", "--url", server_url)
    answer = json.loads(done.stdout)
    assert answer["gradient"] == {"x": [3.0, 12.0]} and answer["hvp"] == {"x": [6.0, 12.0]}


def test_trace_of_a_program_file_prints_dot_text(server_url, tmp_path):
    program = tmp_path / "f.py"
    program.write_text(examples.CONTROL_FLOW_PROGRAM)
    done = gradserve("trace", f"@{program}", "a=0.3", "--dot", "--url", server_url)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("digraph trace {") and '"%0" -> "%1";' in done.stdout


def test_a_problem_is_printed_on_stderr_with_exit_status_1(server_url):
    done = gradserve("grad", "2*dot(x,x", "x=0,1,2,3", "--url", server_url)
    assert done.returncode == 1 and done.stdout == ""
    assert "(at offset 5)" in done.stderr and TYPE_BASE + "syntax" in done.stderr


def test_a_malformed_input_is_a_usage_error():
    done = gradserve("grad", "x", "x")
    assert done.returncode == 2 and "NAME=VALUES" in done.stderr


def test_serve_is_the_service_command():
    done = gradserve("serve", "--help")
    assert done.returncode == 0 and "--workers" in done.stdout
