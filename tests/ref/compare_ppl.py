#!/usr/bin/env python3
"""Compares the outputs of herd perplexity and llama-perplexity (stdout and stderr of each, saved).

  compare_ppl.py ppl  A.out A.err B.out B.err TOL   "[i]x," running values (window by window) and the
                                                    Final estimate (PPL and its error), relative TOL
  compare_ppl.py kld  A.out B.out TOL_JSON          the KL table's last row and every statistic line;
                                                    TOL_JSON {"abs": A, "rel": R}: |a - b| <= A + R |b|
                                                    for every number (beyond the printed digits: A)
Prints one line per compared quantity; exit 1 on the first mismatch beyond tolerance (all are printed)."""
import json, re, sys

def ppl_values(out):
    return [float(m[1]) for m in re.findall(r"\[(\d+)\]([0-9.eE+-]+|nan|inf),", out)]

def final(err):
    m = re.search(r"Final estimate: PPL = ([0-9.]+) \+/- ([0-9.]+)", err)
    return (float(m.group(1)), float(m.group(2))) if m else None

def rel(a, b):
    return abs(a - b) / max(abs(a), abs(b), 1e-30)

def cmp_ppl(a_out, a_err, b_out, b_err, tol):
    a, b = ppl_values(open(a_out).read()), ppl_values(open(b_out).read())
    ok = True
    # llama.cpp's logger runs on a thread of its own that the program does not join at exit (its
    # common_log_main() comment, llama.cpp issue 22142): the tail of its output is sometimes lost. A
    # reference that lost its last values is compared on what it printed (at least half).
    if not a or not (len(a) // 2 <= len(b) <= len(a)):
        print(f"window counts differ or none: {len(a)} vs {len(b)}"); return False
    if len(b) < len(a):
        print(f"(llama.cpp's output lost its last values at exit: comparing {len(b)} of {len(a)})")
    worst = max(rel(x, y) for x, y in zip(a, b))
    print(f"{len(a)} windows, running PPL max relative difference {worst:.2e} (tolerance {tol:g}); "
          f"last {a[-1]} vs {b[-1]}")
    ok &= worst <= tol
    fa, fb = final(open(a_err).read()), final(open(b_err).read())
    if not fa:
        print("herd printed no Final estimate"); return False
    if not fb:
        print("(llama.cpp's output lost its Final estimate at exit)"); return ok
    print(f"Final estimate: PPL {fa[0]} +/- {fa[1]} vs {fb[0]} +/- {fb[1]}")
    ok &= rel(fa[0], fb[0]) <= tol and rel(fa[1], fb[1]) <= max(tol, 2e-5 / fb[1] if fb[1] else 1)
    return ok

NUM = r"-?[0-9]+\.[0-9]+|-?nan|-?inf"

def kld_stats(text):
    """{label: [numbers]} for each statistics line, and the table's last row"""
    st = {}
    for line in text.splitlines():
        m = re.match(r"^([^:]+?)\s*:\s*(.*)$", line)
        if m and re.search(NUM, m.group(2)) and ("KLD" in m.group(1) or "Δp" in m.group(1) or
                                                  "PPL" in m.group(1) or "Same top" in m.group(1)):
            st[m.group(1).strip()] = [float(x) for x in re.findall(NUM, m.group(2))]
    rows = [l for l in text.splitlines() if re.match(r"^\s*\d+\s+[0-9.]+ ± ", l)]
    if rows:
        st["last table row"] = [float(x) for x in re.findall(NUM, rows[-1].split(None, 1)[1])]
    return st

def cmp_kld(a_out, b_out, tols):
    a, b = kld_stats(open(a_out).read()), kld_stats(open(b_out).read())
    ok = True
    if set(a) != set(b) or not a:
        print(f"statistic lines differ: {sorted(set(a) ^ set(b))}"); return False
    for k in sorted(a):
        t = tols.get(k, tols)  # a per-line override {"abs", "rel"}
        tol = max(t["abs"] + t["rel"] * abs(y) for y in b[k])
        d = max(abs(x - y) for x, y in zip(a[k], b[k]))
        good = len(a[k]) == len(b[k]) and all(abs(x - y) <= t["abs"] + t["rel"] * abs(y) for x, y in zip(a[k], b[k]))
        ok &= good
        print(f"{'ok  ' if good else 'DIFF'} {k:32s} {a[k]} vs {b[k]} (|d| {d:.2e}, tol {tol:g})")
    return ok

if __name__ == "__main__":
    if sys.argv[1] == "ppl":
        sys.exit(0 if cmp_ppl(*sys.argv[2:6], float(sys.argv[6])) else 1)
    sys.exit(0 if cmp_kld(sys.argv[2], sys.argv[3], json.loads(sys.argv[4])) else 1)
