"""The lock: constraints.txt pins every package pyproject.toml asks for, inside pyproject's ranges, and the install
script and environment.yml install with it."""
from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest
import yaml
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

try:
    import tomllib
except ImportError:  # Python 3.10
    tomllib = pytest.importorskip("tomli")

ROOT = Path(__file__).resolve().parents[1]


def pins(path: Path) -> dict[str, Version]:
    """name -> version of each `name==version` line (comments and blank lines skipped; anything else fails)."""
    out = {}
    for line in path.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        req = Requirement(line)
        spec = list(req.specifier)
        assert len(spec) == 1 and spec[0].operator == "==", f"{path.name}: not an exact pin: {line}"
        name = canonicalize_name(req.name)
        assert name not in out, f"{path.name}: {name} pinned twice"
        out[name] = Version(spec[0].version)
    return out


def project_requirements() -> list[Requirement]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    return [Requirement(r) for r in project["dependencies"] + project["optional-dependencies"]["dev"]]


def test_pins_helper_reads_exact_pins_only(tmp_path):
    f = tmp_path / "c.txt"
    f.write_text("# header\n\nFoo_Bar==1.2.0  # why\ntorch==2.13.0\n")
    assert pins(f) == {"foo-bar": Version("1.2.0"), "torch": Version("2.13.0")}
    f.write_text("foo>=1\n")
    with pytest.raises(AssertionError, match="not an exact pin"):
        pins(f)


def test_constraints_pin_every_requirement_inside_its_range():
    locked = pins(ROOT / "constraints.txt")
    for req in project_requirements():
        name = canonicalize_name(req.name)
        assert name in locked, f"constraints.txt does not pin {name}"
        assert req.specifier.contains(locked[name], prereleases=True), f"{name}=={locked[name]} is outside {req}"
    assert locked["torch"] == Version("2.13.0")  # no build tag: matches the CPU and the CUDA builds
    assert "scorelib" not in locked


def test_install_script_uses_the_lock_and_leaves_pip_alone():
    script = (ROOT / "scripts" / "install.sh").read_text()
    assert re.search(r"^CONSTRAINTS=\$\{CONSTRAINTS:-constraints\.txt\}$", script, re.M)
    assert '-c "$CONSTRAINTS"' in script
    upgrade = [line for line in script.splitlines() if "--upgrade" in line and not line.startswith("#")]
    assert len(upgrade) == 1 and upgrade[0].startswith("    "), "pip is upgraded only inside the version check"
    subprocess.run(["bash", "-n", str(ROOT / "scripts" / "install.sh")], check=True)


def test_environment_yml_installs_with_the_lock():
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    pip = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict))
    assert "-c constraints.txt" in pip and "-e .[dev]" in pip
    assert "python=3.11" in env["dependencies"]  # the Python the lock was made with
