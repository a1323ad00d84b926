#!/usr/bin/env python3
"""test/layout/check_layout.py — the source layout rules of docs/worker.md
("Layout"), checked on the built objects and the sources:

  1. no dependency cycle among the .c files of src/ (a file depends on the
     file that defines a symbol it uses, from `nm` of the built objects);
  2. src/exec never depends on src/server (executors do not touch
     sockets), and src/server never on src/exec;
  3. no .c file of src/ over 800 lines;
  4. no directory of src/ shadows one of PostgreSQL's include directories
     (src/ comes first on the include path: src/executor would hide
     executor/executor.h).

Prints one "ok"/"not ok" line per check and "layout: N passed, M failed".
Run from the repository root after `make` (make unit does it)."""
import collections, glob, os, subprocess, sys

MAX_LINES = 800
results = []

def check(ok, what):
    results.append(ok)
    print(("ok" if ok else "not ok") + " - " + what)

objs = sorted(glob.glob("src/**/*.o", recursive=True))
if not objs:
    check(False, "built objects under src/ (run make first)")
defs, undef = {}, {}
for o in objs:
    out = subprocess.run(["nm", o], capture_output=True, text=True).stdout
    d, u = set(), set()
    for line in out.splitlines():
        p = line.split()
        if len(p) == 3 and p[1] in "TDBRC":
            d.add(p[2])
        elif len(p) == 2 and p[0] == "U":
            u.add(p[1])
    defs[o], undef[o] = d, u
owner = {s: o for o, ds in defs.items() for s in ds}
graph = collections.defaultdict(set)
why = {}
for o, us in undef.items():
    for s in us:
        t = owner.get(s)
        if t and t != o:
            graph[o].add(t)
            why.setdefault((o, t), s)

# strongly connected components (iterative Tarjan)
index, low, onstack, stack, sccs = {}, {}, set(), [], []
counter = [0]
def strong(v0):
    work = [(v0, iter(sorted(graph[v0])))]
    index[v0] = low[v0] = counter[0]; counter[0] += 1
    stack.append(v0); onstack.add(v0)
    while work:
        v, it = work[-1]
        advanced = False
        for w in it:
            if w not in index:
                index[w] = low[w] = counter[0]; counter[0] += 1
                stack.append(w); onstack.add(w)
                work.append((w, iter(sorted(graph[w]))))
                advanced = True
                break
            elif w in onstack:
                low[v] = min(low[v], index[w])
        if advanced:
            continue
        work.pop()
        if work:
            low[work[-1][0]] = min(low[work[-1][0]], low[v])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop(); onstack.discard(w); comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                sccs.append(sorted(comp))
for v in sorted(defs):
    if v not in index:
        strong(v)
for comp in sccs:
    edges = [f"{a}->{b} ({why[(a, b)]})" for a in comp for b in comp if (a, b) in why]
    print("#   cycle: " + "; ".join(edges))
check(not sccs, f"no dependency cycles among the {len(objs)} objects of src/")

bad = [(a, b) for (a, b) in why if
       (a.startswith("src/exec/") and b.startswith("src/server/")) or
       (a.startswith("src/server/") and b.startswith("src/exec/"))]
for a, b in bad:
    print(f"#   {a} uses {why[(a, b)]} of {b}")
check(not bad, "src/server and src/exec do not depend on each other")

big = []
for f in sorted(glob.glob("src/**/*.c", recursive=True)):
    with open(f, encoding="utf-8", errors="replace") as fh:
        n = sum(1 for _ in fh)
    if n > MAX_LINES:
        big.append((f, n))
for f, n in big:
    print(f"#   {f}: {n} lines")
check(not big, f"no .c file of src/ over {MAX_LINES} lines")

inc = subprocess.run(["pg_config", "--includedir-server"], capture_output=True, text=True).stdout.strip()
shadow = [d for d in sorted(os.listdir("src")) if os.path.isdir(os.path.join("src", d))
          and inc and os.path.isdir(os.path.join(inc, d))]
for d in shadow:
    print(f"#   src/{d} shadows {inc}/{d}")
check(bool(inc) and not shadow, "no directory of src/ shadows a PostgreSQL include directory")

p = sum(results)
print(f"layout: {p} passed, {len(results) - p} failed")
sys.exit(0 if p == len(results) else 1)
