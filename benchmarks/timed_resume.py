"""A time-limited search killed part-way and resumed: does the whole stay
within its limit?

    python benchmarks/timed_resume.py --time-limit 300 --kill-after 150 --seed 0

Runs `AdaNASClassifier(time_limit=SECONDS, directory=D, seed=seed).fit` on
the training split of `--data` in a child process, kills it (SIGKILL)
`--kill-after` seconds after its `fit` began (data loading excluded), then
runs the same command again in a new process, which resumes from the project
directory. Prints when the first process was killed, the resumed process's
line that names the backup it restored, and a last line with:
- the user's `fit` wall time in all (the killed `fit`'s seconds up to the
  kill, plus the resumed `fit`'s seconds) against the limit;
- the seconds the finished search recorded (the time it counts against the
  limit; the training lost between the last backup and the kill is not in
  them);
- the members, the epochs each trained and the test accuracy.
The kill time is counted from when this process reads the child's
`FIT_STARTED` line (it polls the child's log every 0.2 s).
`--json` appends the result as one JSON line.
"""

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time

FIT_STARTED = "fit started"


def child(arguments):
    """The search, in this process: prints `FIT_STARTED`, then a JSON line."""
    from keras_adanas import AdaNASClassifier, load_images

    train = load_images(arguments.data, split="train")
    test = load_images(arguments.data, split="test", classes=train.classes)
    classifier = AdaNASClassifier(
        time_limit=arguments.time_limit,
        directory=arguments.child,
        seed=arguments.seed,
        verbose=1,
    )
    print(FIT_STARTED, flush=True)
    start = time.perf_counter()
    classifier.fit((train.images, train.labels))
    seconds = time.perf_counter() - start
    history = classifier.history_
    result = {
        "fit_seconds": seconds,
        "recorded_seconds": sum(h["seconds"] for h in history),
        "members": [m["architecture"] for m in classifier.members_],
        "epochs_per_member": [round(h["steps"] * h["batch_size"] / len(train), 2) for h in history],
        "test_accuracy": classifier.score(test.images, test.labels),
    }
    print(json.dumps(result), flush=True)


def start_child(arguments, directory, log_path):
    """Starts the search in a new process writing its output to `log_path`."""
    command = [
        sys.executable,
        os.path.abspath(__file__),
        "--child",
        directory,
        "--data",
        arguments.data,
        "--time-limit",
        str(arguments.time_limit),
        "--seed",
        str(arguments.seed),
    ]
    with open(log_path, "w") as log:
        return subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)


def wait_for_fit(process, log_path):
    """Waits until the child's `fit` begins; returns that time."""
    while process.poll() is None:
        with open(log_path) as log:
            if any(line.strip() == FIT_STARTED for line in log):
                return time.perf_counter()
        time.sleep(0.2)
    raise RuntimeError(f"the search ended before its fit began (exit {process.returncode})")


def main():
    from keras_adanas.data import default_data_dir

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--time-limit", type=float, default=300)
    parser.add_argument("--kill-after", type=float, default=150)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--data", default=os.path.join(default_data_dir(), "cifar10-dev.npz"))
    parser.add_argument("--json", help="append the result as one JSON line to this file")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    arguments = parser.parse_args()
    if arguments.child:
        return child(arguments)

    with tempfile.TemporaryDirectory() as folder:
        directory = os.path.join(folder, "project")
        logs = [os.path.join(folder, f"run{index}.log") for index in (1, 2)]
        first = start_child(arguments, directory, logs[0])
        began = wait_for_fit(first, logs[0])
        time.sleep(max(0.0, arguments.kill_after - (time.perf_counter() - began)))
        first.send_signal(signal.SIGKILL)
        killed_after = time.perf_counter() - began
        first.wait()
        print(f"killed after {killed_after:.0f} s of fit", flush=True)

        second = start_child(arguments, directory, logs[1])
        second.wait()
        with open(logs[1]) as log:
            output = log.read()
        if second.returncode != 0:
            raise RuntimeError(f"the resumed search failed:\n{output}")
        result = json.loads(output.strip().splitlines()[-1])
    restored = [line for line in output.splitlines() if "restored the backup" in line]
    result.update(
        time_limit=arguments.time_limit,
        seed=arguments.seed,
        killed_after=killed_after,
        total_fit_seconds=killed_after + result["fit_seconds"],
        restored=restored,
    )
    print(*restored, sep="\n")
    print(
        f"limit {arguments.time_limit:.0f} s: fit {result['total_fit_seconds']:.0f} s in all "
        f"({killed_after:.0f} killed + {result['fit_seconds']:.0f} resumed), "
        f"{result['recorded_seconds']:.0f} s recorded; members {result['members']}, "
        f"epochs {result['epochs_per_member']}, test accuracy {result['test_accuracy']:.4f}"
    )
    if arguments.json:
        with open(arguments.json, "a") as file:
            file.write(json.dumps(result) + "\n")


if __name__ == "__main__":
    main()
