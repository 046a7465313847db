"""Profiles (notebooks/params/*.yaml or a user's YAML file): a misspelt key is an error naming it and the valid
keys, as `-p key=value` is on the command line; never silently ignored. Hand-made YAML files."""
from __future__ import annotations

import pytest

from scorelib import cli
from scorelib import config as C


def write(tmp_path, text: str, name: str = "p.yaml"):
    path = tmp_path / name
    path.write_text(text)
    return path


def test_keys_of_some_notebook_are_valid(tmp_path):
    # budgets: notebook 50 only; sweep: 20, 30, 40, 45; n_test: almost all; 30/steps: notebook 30's own
    text = "budgets: [2, 4]\nsweep: []\nn_test: 16\n30/steps: 7\nprogress: false\n"
    assert C.load_profile(write(tmp_path, text)) == dict(budgets=[2, 4], sweep=[], n_test=16, progress=False,
                                                         **{"30/steps": 7})


def test_misspelt_plain_key_names_it_and_the_valid_keys(tmp_path):
    path = write(tmp_path, "n_test: 16\nn_tset: 32\n")
    with pytest.raises(C.ConfigError) as e:
        C.load_profile(path)
    msg = str(e.value)
    assert str(path) in msg and "unknown key 'n_tset' (did you mean 'n_test'?)" in msg
    assert "no notebook has it" in msg and "'budgets'" in msg and "'sweep'" in msg  # the valid keys, all notebooks'


def test_misspelt_key_without_a_close_match(tmp_path):
    with pytest.raises(C.ConfigError, match=r"unknown key 'zzz': no notebook has it; valid keys: \["):
        C.load_profile(write(tmp_path, "zzz: 1\n"))


def test_notebook_key_must_be_that_notebooks(tmp_path):
    # budgets is a parameter of notebook 50, not of 30: valid plain, an error as 30/budgets
    with pytest.raises(C.ConfigError) as e:
        C.load_profile(write(tmp_path, "budgets: [2]\n30/budgets: [2]\n"))
    msg = str(e.value)
    assert "unknown key '30/budgets'" in msg and "notebook 30_score_stage2's parameters: [" in msg
    assert "'beta_turn1'" in msg and "'budgets'" not in msg.split("parameters:")[1]
    with pytest.raises(C.ConfigError, match=r"unknown key '20/stpes' \(did you mean 'steps'\?\)"):
        C.load_profile(write(tmp_path, "20/stpes: 3\n"))


def test_unknown_notebook_number(tmp_path):
    with pytest.raises(C.ConfigError, match=r"key '99/steps': no notebook numbered '99'; valid: \['00', '01'"):
        C.load_profile(write(tmp_path, "99/steps: 3\n"))


def test_old_parameter_name_is_refused(tmp_path):
    """A key that no notebook has any more (notebook 50's batch_size is now gen_batch_size) is refused, so a profile
    written for older code fails instead of running with the default."""
    with pytest.raises(C.ConfigError, match=r"unknown key '50/batch_size' \(did you mean 'gen_batch_size'\?\)"):
        C.load_profile(write(tmp_path, "50/batch_size: 8\n"))


def test_cli_refuses_a_misspelt_profile_file_before_running(tmp_path, capsys):
    path = write(tmp_path, "n_test: 16\nmax_new_tokes: 8\n", "mine.yaml")
    for argv in (["run", "01", "--profile", str(path), "--results", str(tmp_path / "r")],
                 ["reproduce", "--profile", str(path), "--only", "01", "--results", str(tmp_path / "r")]):
        assert cli.main(argv) == 2
        err = capsys.readouterr().err
        assert "unknown key 'max_new_tokes' (did you mean 'max_new_tokens'?)" in err and "mine.yaml" in err
    assert not (tmp_path / "r").exists()  # nothing ran

