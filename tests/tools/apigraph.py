#!/usr/bin/python3
"""apigraph.py OBJDIR [SRCDIR] - fails when the module graph of api/ has a cycle.

A module is a .c/.h pair of api/ (http.c + http.h = "http"); a .c file without a header of its
own, named after a module's header with a suffix (decision_store.c beside decision.h), is part of
that module (one header, several files).  Two kinds of edges:
  include  a.c or a.h has  #include "b.h"  for another module b of api/
  call     a.o has an undefined symbol that b.o (another api object in OBJDIR) defines: a calls b
Calls through function pointers (a route's handler, the HTTP layer's authenticate hook) are not
edges: that is how a lower floor is handed what sits above it at start-up.

Prints the layers (lowest first) when the graph is acyclic and exits 0; otherwise prints every
cycle (one per strongly connected component, with the edges that close it) and exits 1.
Debian's /usr/bin/python3, standard library only; needs binutils' nm.
"""
import os
import re
import subprocess
import sys

INCLUDE = re.compile(r'^\s*#\s*include\s+"([^"]+)"', re.M)


def modules(src):
    """Maps every file stem of api/ to its module name."""
    files = os.listdir(src)
    headers = {f[:-2] for f in files if f.endswith(".h")}
    owner = {}
    for f in files:
        if not (f.endswith(".c") or f.endswith(".h")):
            continue
        stem = f[:-2]
        mod = stem
        if stem not in headers:
            # longest header name that prefixes "stem_": decision_store -> decision
            for h in sorted(headers, key=len, reverse=True):
                if stem.startswith(h + "_"):
                    mod = h
                    break
        owner[stem] = mod
    return owner


def include_edges(src, mods):
    edges = {}
    for f in sorted(os.listdir(src)):
        if not (f.endswith(".c") or f.endswith(".h")):
            continue
        a = mods[f[:-2]]
        with open(os.path.join(src, f), encoding="utf-8", errors="replace") as fh:
            for inc in INCLUDE.findall(fh.read()):
                b = os.path.basename(inc)
                if b.endswith(".h") and b[:-2] in mods and mods[b[:-2]] != a:
                    edges.setdefault((a, mods[b[:-2]]), "%s includes %s" % (f, b))
    return edges


def nm_symbols(obj):
    out = subprocess.run(["nm", "-P", obj], check=True, capture_output=True, text=True).stdout
    defined, undefined = set(), set()
    for line in out.splitlines():
        parts = line.split()
        if len(parts) < 2:
            continue
        sym, kind = parts[0], parts[1]
        if kind == "U":
            undefined.add(sym)
        elif kind in "TDBRGSVW" or kind in "tdbr":
            if kind.isupper():
                defined.add(sym)
    return defined, undefined


def call_edges(objdir, mods):
    defs, undefs, nobj = {}, {}, 0
    for f in sorted(os.listdir(objdir)):
        if f.endswith(".o") and f[:-2] in mods:
            nobj += 1
            d, u = nm_symbols(os.path.join(objdir, f))
            m = mods[f[:-2]]
            defs.setdefault(m, set()).update(d)
            undefs.setdefault(m, set()).update(u)
    owner = {}
    for m, syms in defs.items():
        for s in syms:
            owner[s] = m
    edges = {}
    for a, syms in undefs.items():
        for s in sorted(syms):
            b = owner.get(s)
            if b and b != a:
                edges.setdefault((a, b), "%s calls %s (%s)" % (a, s, b))
    return edges, nobj


def sccs(nodes, adj):
    """Tarjan's algorithm, iterative.  Returns the components with more than one node."""
    index, low, on, stack, out = {}, {}, set(), [], []
    counter = [0]
    for root in sorted(nodes):
        if root in index:
            continue
        work = [(root, iter(sorted(adj.get(root, ()))))]
        index[root] = low[root] = counter[0]
        counter[0] += 1
        stack.append(root)
        on.add(root)
        while work:
            v, it = work[-1]
            pushed = False
            for w in it:
                if w not in index:
                    index[w] = low[w] = counter[0]
                    counter[0] += 1
                    stack.append(w)
                    on.add(w)
                    work.append((w, iter(sorted(adj.get(w, ())))))
                    pushed = True
                    break
                if w in on:
                    low[v] = min(low[v], index[w])
            if pushed:
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[v])
            if low[v] == index[v]:
                comp = []
                while True:
                    w = stack.pop()
                    on.discard(w)
                    comp.append(w)
                    if w == v:
                        break
                if len(comp) > 1:
                    out.append(sorted(comp))
    return out


def layers(nodes, adj):
    level = {}

    def depth(n, seen=()):
        if n in level:
            return level[n]
        d = 0
        for m in adj.get(n, ()):
            d = max(d, depth(m) + 1)
        level[n] = d
        return d

    for n in nodes:
        depth(n)
    by = {}
    for n, d in level.items():
        by.setdefault(d, []).append(n)
    return [sorted(by[d]) for d in sorted(by)]


def main():
    if len(sys.argv) < 2:
        print(__doc__.strip().splitlines()[0], file=sys.stderr)
        return 2
    objdir = sys.argv[1]
    src = sys.argv[2] if len(sys.argv) > 2 else "api"
    mods = modules(src)
    names = set(mods.values())
    inc = include_edges(src, mods)
    calls, nobj = call_edges(objdir, mods)
    if nobj == 0:
        print("apigraph: no api objects in %s (build first)" % objdir)
        return 2
    why = dict(inc)
    for k, v in calls.items():
        why[k] = why[k] + "; " + v if k in why else v
    adj = {}
    for a, b in why:
        adj.setdefault(a, set()).add(b)
    cycles = sccs(names, adj)
    print("apigraph: %d modules, %d include edges, %d call edges (%d objects)"
          % (len(names), len(inc), len(calls), nobj))
    if not cycles:
        for i, layer in enumerate(layers(names, adj)):
            print("  floor %d: %s" % (i, " ".join(layer)))
        print("apigraph: no cycle")
        return 0
    for comp in cycles:
        print("CYCLE among %s:" % ", ".join(comp))
        members = set(comp)
        for (a, b), w in sorted(why.items()):
            if a in members and b in members:
                print("    %s -> %s: %s" % (a, b, w))
    print("apigraph: %d cycle(s)" % len(cycles))
    return 1


if __name__ == "__main__":
    sys.exit(main())
