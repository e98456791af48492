"""The notebooks' setup cell in a fresh virtual environment that looks like a hosted notebook with an
old stack preinstalled (transformers 4.x, peft 0.17): run once, in one process (no kernel restart),
it must end with versions at or above pyproject's floors, importable together.

Downloads a few hundred MB from PyPI, so it is marked `network` and left out of the default run
(`pytest -m network` runs it); without PyPI it is skipped.
"""

import importlib.metadata
import json
import os
import re
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest

from helpers.notebooks import NOTEBOOK_DIR, PROJECT_ROOT, discover

pytestmark = pytest.mark.network
OLD_STACK = ["transformers==4.57.1", "peft==0.17.1"]


def _pypi_reachable() -> bool:
    try:
        urllib.request.urlopen("https://pypi.org/simple/peft/", timeout=10)
        return True
    except OSError:
        return False


def _requirement_closure(name: str) -> set[str]:
    """`name` and every distribution it requires (installed ones only), without extras or markers that fail."""
    from packaging.requirements import Requirement

    seen, todo = set(), [name]
    while todo:
        current = todo.pop()
        try:
            dist = importlib.metadata.distribution(current)
        except importlib.metadata.PackageNotFoundError:
            continue
        key = dist.metadata["Name"].lower()
        if key in seen:
            continue
        seen.add(key)
        for text in dist.requires or []:
            requirement = Requirement(text)
            if requirement.marker is None or requirement.marker.evaluate({"extra": ""}):
                todo.append(requirement.name)
    return seen


def _link_torch(site: Path) -> None:
    """This interpreter's torch (and what torch needs), linked into a folder the fresh venv reads through
    a .pth file: the hosted image's preinstalled torch, without downloading GBs."""
    site.mkdir()
    for name in _requirement_closure("torch"):
        dist = importlib.metadata.distribution(name)
        tops = {Path(str(f)).parts[0] for f in dist.files or [] if not str(f).startswith("..")}
        for top in tops:
            source = Path(dist.locate_file(top))
            if source.exists() and not (site / top).exists():
                (site / top).symlink_to(source)


@pytest.mark.skipif(not _pypi_reachable(), reason="PyPI not reachable: the setup test installs packages from it")
def test_setup_cell_upgrades_an_old_hosted_stack_without_a_restart(tmp_path):
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    python = venv / "bin" / "python"
    site_packages = Path(
        subprocess.run(
            [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    )
    _link_torch(tmp_path / "preinstalled")
    (site_packages / "preinstalled-torch.pth").write_text(str(tmp_path / "preinstalled") + "\n")
    subprocess.run([str(python), "-m", "pip", "install", "-q", *OLD_STACK], check=True)

    setup = "".join(
        next(c for c in json.loads(discover()[0].read_text())["cells"] if c["cell_type"] == "code")["source"]
    )
    check = (
        setup
        + """
import importlib.metadata as metadata, transformers, peft
from packaging.version import Version
from peft import LoraConfig, get_peft_model
from helpers.environment import required
from helpers.methods import MethodConfig, prepare_model
from transformers import AutoModelForSequenceClassification, BertConfig
for spec, _ in required():
    name, _, floor = spec.partition(">=")
    if floor:
        assert Version(metadata.version(name)) >= Version(floor), (name, metadata.version(name), floor)
config = BertConfig(vocab_size=50, hidden_size=16, num_hidden_layers=1, num_attention_heads=2, intermediate_size=32)
model = AutoModelForSequenceClassification.from_config(config)
prepare_model(model, MethodConfig(method="lora", rank=2))
print("SETUP OK", transformers.__version__, peft.__version__)
"""
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "VIRTUAL_ENV"))}
    env["COLAB_RELEASE_TAG"] = "test"  # looks hosted: the setup installs what is missing or too old
    done = subprocess.run(
        [str(python), "-c", check], cwd=NOTEBOOK_DIR, env=env, capture_output=True, text=True, timeout=1800
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    versions = re.search(r"SETUP OK (\S+) (\S+)", done.stdout)
    assert versions and int(versions.group(1).split(".")[0]) >= 5
    assert "Restart the runtime" not in done.stdout
    assert PROJECT_ROOT.is_dir()
