"""Summarise a py-spy raw profile (profile.sh): each function's share of the GIL-held samples."""

from __future__ import annotations

import sys
from collections import Counter


def name(frame: str) -> str:
    if "(" not in frame:
        return frame
    function, _, where = frame.partition(" (")
    return f"{function} {where.split('/')[-1].split(':')[0]}"


def main(path: str, shown: int = 40) -> None:
    inclusive: Counter[str] = Counter()
    total = 0
    with open(path) as lines:
        samples = [line.rstrip().rpartition(" ") for line in lines]
    for stack, _, count in samples:
        total += int(count)
        for key in {name(frame) for frame in stack.split(";")}:
            inclusive[key] += int(count)
    print(f"{total} samples")
    for key, count in inclusive.most_common(shown):
        print(f"{count / total * 100:5.1f}%  {key}")


if __name__ == "__main__":
    main(sys.argv[1], *(int(a) for a in sys.argv[2:3]))
