#!/usr/bin/python3
"""funclen.py DIR MAX - fails when a function defined in DIR/*.c is longer than MAX lines.

A function is counted from the first line of its signature to its closing brace, both included,
as the tree writes them (clang-format: the opening brace of a function alone on a line at column
0, the closing one likewise).  Prints every function over the limit with its file and line and
exits 1; otherwise prints the longest one and exits 0.  Debian's /usr/bin/python3, stdlib only.
"""
import glob
import os
import re
import sys

NAME = re.compile(r"([A-Za-z_][A-Za-z_0-9]*)\s*\(")


def functions(path):
    """Yields (name, first line number, length) of each function defined in path."""
    with open(path, encoding="utf-8", errors="replace") as fh:
        lines = fh.read().split("\n")
    for i, line in enumerate(lines):
        if line != "{":
            continue
        k = i - 1
        while k > 0 and lines[k][:1] in (" ", "\t"):
            k -= 1  # back over the signature's continuation lines
        sig = lines[k]
        m = NAME.search(sig)
        if m is None or "=" in sig:
            continue  # an initialiser, not a function
        j = i + 1
        while j < len(lines) and lines[j] != "}":
            j += 1
        yield m.group(1), k + 1, j - k + 1


def main():
    if len(sys.argv) != 3:
        print(__doc__.strip().splitlines()[0], file=sys.stderr)
        return 2
    folder, limit = sys.argv[1], int(sys.argv[2])
    over, longest = [], ("", "", 0, 0)
    for path in sorted(glob.glob(os.path.join(folder, "*.c"))):
        for name, line, n in functions(path):
            if n > limit:
                over.append("%s:%d: %s is %d lines (limit %d)" % (path, line, name, n, limit))
            if n > longest[3]:
                longest = (path, name, line, n)
    for o in over:
        print(o)
    if over:
        print("funclen: %d function(s) over %d lines in %s/" % (len(over), limit, folder))
        return 1
    print("funclen: every function in %s/ is at most %d lines (longest: %s in %s, %d)"
          % (folder, limit, longest[1], longest[0], longest[3]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
