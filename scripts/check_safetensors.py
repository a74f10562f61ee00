#!/usr/bin/env python3
"""Prints each tensor's name, dtype and shape (and value range) of safetensors files.

Checks that Python reads the pipeline's files, e.g. the data stages' outputs:
    python3 scripts/check_safetensors.py path/to/cifar10.safetensors [more files...]
Needs numpy and safetensors.
"""
import sys

from safetensors.numpy import load_file


def main(paths):
    if not paths:
        print(__doc__.strip(), file=sys.stderr)
        return 2
    for path in paths:
        print(path)
        for name, array in sorted(load_file(path).items()):
            lo, hi = (array.min(), array.max()) if array.size else (None, None)
            print(f"  {name}: {array.dtype} {list(array.shape)} min {lo} max {hi}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
