#!/usr/bin/python3
"""(A copy of ../shared/tools/layers.py, so that CI can run it.)
Which module of src/ calls into which, read from the object files' symbol tables.

    layers.py [BUILD_DIR]        (default: build; run `make` first)

A module is a folder under src/ (core, http, ...); src/main.c is 'main'. For every
object file, each undefined symbol is matched to the object that defines it; an edge
A -> B means code in A uses a function or variable defined in B. Prints the edges
with the symbols behind them, then every cycle among modules. Exit 1 if there is one.
Headers that only declare types leave no trace here: this sees calls and data, the
dependencies that decide whether a module can be built, tested or replaced alone."""
import collections, os, subprocess, sys

build = sys.argv[1] if len(sys.argv) > 1 else "build"
root = os.path.join(build, "src")
if not os.path.isdir(root):
    sys.exit(f"layers: no {root}: run make first")
objs = []
for d, _, fs in os.walk(root):
    objs += [os.path.join(d, f) for f in fs if f.endswith(".o")]

def module(obj):
    rel = os.path.relpath(obj, root)
    return rel.split(os.sep)[0] if os.sep in rel else os.path.splitext(rel)[0]

defined, used = {}, collections.defaultdict(set)
for o in objs:
    out = subprocess.run(["nm", "--defined-only", "-g", o], capture_output=True, text=True).stdout
    for line in out.splitlines():
        parts = line.split()
        if len(parts) == 3:
            defined[parts[2]] = module(o)
    out = subprocess.run(["nm", "-u", o], capture_output=True, text=True).stdout
    for line in out.splitlines():
        used[module(o)].add(line.split()[-1])

edges = collections.defaultdict(set)
for m, syms in used.items():
    for s in syms:
        d = defined.get(s)
        if d and d != m:
            edges[(m, d)].add(s)

graph = collections.defaultdict(set)
for (a, b) in edges:
    graph[a].add(b)
for (a, b), syms in sorted(edges.items()):
    names = sorted(syms)
    print(f"{a} -> {b}: {', '.join(names[:6])}{' ...' if len(names) > 6 else ''} ({len(names)})")

# Strongly connected components (Tarjan): each with more than one module is a cycle.
index, low, stack, on, comps, n = {}, {}, [], set(), [], [0]
def visit(v):
    index[v] = low[v] = n[0]; n[0] += 1; stack.append(v); on.add(v)
    for w in graph[v]:
        if w not in index:
            visit(w); low[v] = min(low[v], low[w])
        elif w in on:
            low[v] = min(low[v], index[w])
    if low[v] == index[v]:
        c = []
        while True:
            w = stack.pop(); on.discard(w); c.append(w)
            if w == v: break
        comps.append(c)
for v in sorted(set(graph) | {b for bs in graph.values() for b in bs}):
    if v not in index:
        visit(v)
cycles = [sorted(c) for c in comps if len(c) > 1]
print()
if not cycles:
    print("layers: no cycle among modules")
    sys.exit(0)
for c in cycles:
    inner = [f"{a}->{b}" for (a, b) in sorted(edges) if a in c and b in c]
    print(f"layers: cycle among {', '.join(c)}: {'; '.join(inner)}")
sys.exit(1)
