"""An AdaNAS search on CIFAR-100 from a paper preset, scaled by flags.

The same as `examples/cifar10.py` (see there), on CIFAR-100:

    python examples/cifar100.py --preset w-akd --steps-per-iteration 20000
    python examples/cifar100.py --data my-cifar100.npz --preset smoke
"""

import sys

from cifar10 import run  # this folder is on the path when run as a script

if __name__ == "__main__":
    run("cifar100", sys.argv[1:])
