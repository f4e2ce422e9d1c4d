#!/usr/bin/env python3
"""promcheck.py FILE - strict check of Prometheus text exposition format 0.0.4 (used by test.sh).

Checks: every line is a HELP, TYPE, other comment or sample; metric and label names match the
format's syntax; label values are quoted with only \\\\, \\" and \\n escapes; values are floats
(NaN, +Inf, -Inf allowed); at most one HELP and one TYPE per family, before its samples; a family's
samples are contiguous; no series appears twice; histograms have _bucket series with le labels in
increasing order ending in +Inf, cumulative counts that never decrease, and _count equal to the
+Inf bucket.  Prints a one-line summary, exits 1 with the first problems otherwise."""
import math
import re
import sys

NAME = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*")
LABEL = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*")
TYPES = {"counter", "gauge", "histogram", "summary", "untyped"}


def parse_value(s):
    if s in ("NaN", "+Inf", "-Inf", "Inf"):
        return {"NaN": math.nan, "+Inf": math.inf, "Inf": math.inf, "-Inf": -math.inf}[s]
    if not re.fullmatch(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?", s):
        raise ValueError("bad value %r" % s)
    return float(s)


def parse_labels(s, i):
    """s[i] == '{'; returns (dict, index after '}')."""
    labels = {}
    i += 1
    while True:
        if s[i] == "}":
            return labels, i + 1
        m = LABEL.match(s, i)
        if not m:
            raise ValueError("bad label name at column %d" % i)
        name = m.group(0)
        i = m.end()
        if s[i] != "=" or s[i + 1] != '"':
            raise ValueError("expected =\" after label %s" % name)
        i += 2
        val = []
        while s[i] != '"':
            if s[i] == "\\":
                if s[i + 1] not in '\\"n':
                    raise ValueError("bad escape \\%s in label %s" % (s[i + 1], name))
                val.append({"\\": "\\", '"': '"', "n": "\n"}[s[i + 1]])
                i += 2
            elif s[i] == "\n":
                raise ValueError("newline in label value")
            else:
                val.append(s[i])
                i += 1
        i += 1
        if name in labels:
            raise ValueError("label %s repeated" % name)
        labels[name] = "".join(val)
        if s[i] == ",":
            i += 1
        elif s[i] != "}":
            raise ValueError("expected , or } after label %s" % name)


def family_of(name, types):
    for suffix in ("_bucket", "_count", "_sum"):
        if name.endswith(suffix):
            base = name[: -len(suffix)]
            if types.get(base) in ("histogram", "summary"):
                return base
    return name


def main(path):
    text = open(path, encoding="utf-8").read()
    errors = []
    if text and not text.endswith("\n"):
        errors.append("output does not end with a newline")
    helps, types, seen_series, done_families = set(), {}, set(), set()
    current = None
    samples = {}  # family -> list of (name, labels, value)
    nsamples = 0
    for ln, line in enumerate(text.split("\n")[:-1], 1):
        try:
            if line.startswith("#"):
                parts = line.split(" ", 3)
                if len(parts) >= 3 and parts[1] in ("HELP", "TYPE"):
                    name = parts[2]
                    if not NAME.fullmatch(name):
                        raise ValueError("bad metric name %r" % name)
                    if name in samples:
                        raise ValueError("%s for %s after its samples" % (parts[1], name))
                    if parts[1] == "HELP":
                        if name in helps:
                            raise ValueError("second HELP for %s" % name)
                        helps.add(name)
                    else:
                        if name in types:
                            raise ValueError("second TYPE for %s" % name)
                        if len(parts) != 4 or parts[3] not in TYPES:
                            raise ValueError("bad TYPE line")
                        types[name] = parts[3]
                continue
            if not line.strip():
                raise ValueError("empty line")
            m = NAME.match(line)
            if not m:
                raise ValueError("bad metric name")
            name, i = m.group(0), m.end()
            labels = {}
            if i < len(line) and line[i] == "{":
                labels, i = parse_labels(line, i)
            rest = line[i:]
            if not rest.startswith(" "):
                raise ValueError("expected a space before the value")
            fields = rest.split()
            if len(fields) not in (1, 2):
                raise ValueError("expected VALUE [TIMESTAMP]")
            value = parse_value(fields[0])
            if len(fields) == 2 and not re.fullmatch(r"-?\d+", fields[1]):
                raise ValueError("bad timestamp")
            fam = family_of(name, types)
            if fam != current:
                if fam in done_families:
                    raise ValueError("samples of %s are not contiguous" % fam)
                if current:
                    done_families.add(current)
                current = fam
            key = (name, tuple(sorted(labels.items())))
            if key in seen_series:
                raise ValueError("duplicate series %s%s" % (name, labels))
            seen_series.add(key)
            samples.setdefault(fam, []).append((name, labels, value))
            nsamples += 1
        except (ValueError, IndexError) as e:
            errors.append("line %d: %s: %s" % (ln, e, line[:120]))
    for fam, kind in types.items():
        if kind != "histogram" or fam not in samples:
            continue
        groups = {}
        for name, labels, value in samples[fam]:
            key = tuple(sorted((k, v) for k, v in labels.items() if k != "le"))
            g = groups.setdefault(key, {"buckets": [], "count": None, "sum": None})
            if name == fam + "_bucket":
                if "le" not in labels:
                    errors.append("%s bucket without le: %s" % (fam, labels))
                    continue
                g["buckets"].append((parse_value(labels["le"]), value))
            elif name == fam + "_count":
                g["count"] = value
            elif name == fam + "_sum":
                g["sum"] = value
            else:
                errors.append("%s: unexpected sample %s in a histogram" % (fam, name))
        for key, g in groups.items():
            les = [b[0] for b in g["buckets"]]
            counts = [b[1] for b in g["buckets"]]
            where = "%s%s" % (fam, dict(key))
            if not les or les[-1] != math.inf:
                errors.append("%s: no +Inf bucket" % where)
            if les != sorted(les) or len(set(les)) != len(les):
                errors.append("%s: le not increasing" % where)
            if counts != sorted(counts):
                errors.append("%s: bucket counts decrease" % where)
            if g["count"] is None or g["sum"] is None:
                errors.append("%s: missing _count or _sum" % where)
            elif counts and g["count"] != counts[-1]:
                errors.append("%s: _count %s != +Inf bucket %s" % (where, g["count"], counts[-1]))
    if errors:
        print("\n".join(errors[:20]))
        return 1
    print("%d samples in %d families, %d typed" % (nsamples, len(samples), len(types)))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
