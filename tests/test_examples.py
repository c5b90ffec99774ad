"""The example scripts, cut to one short iteration on the local CIFAR files."""

import importlib.util
import os
import subprocess
import sys

from conftest import REPO

EXAMPLES = os.path.join(REPO, "examples")


def _load_example(name):
    spec = importlib.util.spec_from_file_location(name, os.path.join(EXAMPLES, f"{name}.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_cifar10_example(cifar10_path, tmp_path, capsys):
    example = _load_example("cifar10")
    directory = tmp_path / "run"
    argv = ["--data", cifar10_path, "--directory", str(directory), "--preset", "smoke"]
    argv += ["--max-iterations", "1", "--steps-per-iteration", "3", "--batch-size", "16"]
    classifier, metrics = example.run("cifar10", [*argv, "--verbose", "0"])
    assert classifier.steps_per_iteration == 3 and classifier.max_iterations == 1
    assert classifier.distillation == "adaptive"  # from the preset
    out = capsys.readouterr().out
    assert "cifar10, preset 'smoke': 1 members, 4,373 served parameters" in out
    assert f"Test error {100 * (1 - metrics['accuracy']):.2f}%" in out
    assert (directory / "classifier.keras").is_file()
    assert (directory / "saved_model" / "saved_model.pb").is_file()
    # Scored on the 2,000 test images, not the training ones.
    predictions = classifier.predict(cifar10_path)
    assert predictions.shape == (320,)  # the test split of the sample


def test_cifar100_example_as_a_script(cifar100_path, tmp_path):
    directory = tmp_path / "run"
    command = [sys.executable, os.path.join(EXAMPLES, "cifar100.py"), "--data", cifar100_path]
    command += ["--directory", str(directory), "--preset", "w-akd", "--architecture-free"]
    # An unknown flag is refused before anything is written.
    refused = subprocess.run(command, capture_output=True, text=True)
    assert refused.returncode == 2 and "--architecture-free" in refused.stderr
    assert not directory.exists()

    # The preset's recipe with a small subnetwork in place of its 6@768.
    command = command[:-1] + ["--architecture", "1@24", "--max-iterations", "1"]
    command += ["--epochs-per-iteration", "1", "--batch-size", "20", "--budget", "10M"]
    command += ["--verbose", "0"]
    environment = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
    done = subprocess.run(command, capture_output=True, text=True, env=environment)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "cifar100, preset 'w-akd': 1 members" in done.stdout
    assert "iteration 1: 1@24" in done.stdout
    assert "(the paper, at full scale: 14.83%)" in done.stdout
    assert (directory / "saved_model" / "saved_model.pb").is_file()
