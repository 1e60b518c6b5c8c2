"""Generates winograd_matrices.h: exact Toom-Cook matrices of F(m, r) for the Winograd transforms.

Run from the repository root:
    python csrc/ukernels/winograd/gen_winograd_matrices.py \
        > csrc/ukernels/winograd/winograd_matrices.h

F(m, r) computes m outputs of an r-tap correlation from alpha = m + r - 1 inputs as
y = AT [(G g) * (BT d)]. It is the transpose of the Toom-Cook linear convolution of a degree r-1
and a degree m-1 polynomial evaluated at alpha - 1 finite points p_j and at infinity:
  AT[i][j] = p_j^i (i < m), AT[i][inf] = [i == m-1];
  G[j][k] = p_j^k / N_j with N_j = prod_{l != j} (p_j - p_l), G[inf][k] = [k == r-1];
  BT[j][t] = coefficient of x^t in prod_{l != j} (x - p_l), BT[inf][t] = that of prod_l (x - p_l).
The forward pass uses F(m, r) for r = 3 (m = 2, 4, 6), r = 2 (m = 2, 3, 4: the 2-tap kernels of
strided layers split into their stride phases) and r = 5 (m = 2: 5x5 kernels, F(2x2,5x5) on the
six points of F(4,3)); the weight gradient uses F(r, m) (same points, same BT).
"""

from __future__ import annotations

from fractions import Fraction as Fr

POINTS = {
    1: [],
    # F(2,2): +-1 (float32 error 0.7x that of {0, 1} over 256 summed channels, 2-D).
    3: [Fr(1), Fr(-1)],
    4: [Fr(0), Fr(1), Fr(-1)],
    # F(4,2): 1/2 rather than 2 or -1/2 (2-D, 256 channels: 4.8e-6 relative vs 5.2e-6 / 5.3e-6).
    5: [Fr(0), Fr(1), Fr(-1), Fr(1, 2)],
    # F(4,3): -1/2 instead of -2 halves the float32 error (5.8e-6 -> 2.4e-6 relative, 64 channels).
    6: [Fr(0), Fr(1), Fr(-1), Fr(2), Fr(-1, 2)],
    8: [Fr(0), Fr(1), Fr(-1), Fr(2), Fr(-2), Fr(1, 2), Fr(-1, 2)],
}


def poly_from_roots(roots):
    coeffs = [Fr(1)]  # lowest degree first
    for r in roots:
        nxt = [Fr(0)] * (len(coeffs) + 1)
        for i, c in enumerate(coeffs):
            nxt[i + 1] += c
            nxt[i] -= r * c
        coeffs = nxt
    return coeffs


def matrices(m, r):
    alpha = m + r - 1
    if alpha == 1:
        return [[Fr(1)]], [[Fr(1)]], [[Fr(1)]]
    pts = POINTS[alpha]
    at = [[p**i for p in pts] + [Fr(int(i == m - 1))] for i in range(m)]
    g = []
    for j, p in enumerate(pts):
        n_j = Fr(1)
        for q_idx, q in enumerate(pts):
            if q_idx != j:
                n_j *= p - q
        g.append([p**k / n_j for k in range(r)])
    g.append([Fr(int(k == r - 1)) for k in range(r)])
    bt = []
    for j in range(len(pts)):
        c = poly_from_roots([q for i, q in enumerate(pts) if i != j])
        bt.append(c + [Fr(0)] * (alpha - len(c)))
    bt.append(poly_from_roots(pts))
    return at, g, bt


def check(m, r):
    """Verifies F(m, r)'s matrices against the direct correlation on exact rationals."""
    verify(*matrices(m, r), m, r)


def verify(at, g, bt, m, r):
    """y = AT [(G g) * (BT d)] against the direct correlation on exact rationals, for any number
    of points (len(g)) over m + r - 1 inputs."""
    inputs, points = m + r - 1, len(g)
    filt = [Fr(k * k + 3 * k + 1, k + 2) for k in range(r)]
    data = [Fr((7 * t) % 5 - 2, t + 1) for t in range(inputs)]
    u = [sum(g[j][k] * filt[k] for k in range(r)) for j in range(points)]
    v = [sum(bt[j][t] * data[t] for t in range(inputs)) for j in range(points)]
    y = [sum(at[i][j] * u[j] * v[j] for j in range(points)) for i in range(m)]
    want = [sum(filt[k] * data[i + k] for k in range(r)) for i in range(m)]
    assert y == want, (m, r, y, want)


def split_matrices(m, r1, r2):
    """F(m, r1 + r2) as F(m, r1) on taps 0..r1-1 (inputs 0..m+r1-2) plus F(m, r2) on taps r1..
    (inputs r1..): the two transforms side by side, one output transform over both."""
    at1, g1, bt1 = matrices(m, r1)
    at2, g2, bt2 = matrices(m, r2)
    a1, a2, r, inputs = m + r1 - 1, m + r2 - 1, r1 + r2, m + r1 + r2 - 1
    at = [at1[i] + at2[i] for i in range(m)]
    g = [row + [Fr(0)] * r2 for row in g1] + [[Fr(0)] * r1 + row for row in g2]
    bt = [row + [Fr(0)] * (inputs - a1) for row in bt1]
    bt += [[Fr(0)] * r1 + row + [Fr(0)] * (inputs - r1 - a2) for row in bt2]
    assert len(g[0]) == r and len(bt[0]) == inputs
    return at, g, bt


def fmt(x):
    s = repr(float(x))
    return s if x == Fr(float(x)) else f"{x.numerator}.0 / {x.denominator}.0"


def emit(name, rows):
    body = ",\n".join("      {" + ", ".join(fmt(v) for v in row) + "}" for row in rows)
    return f"  static constexpr double {name}[{len(rows)}][{len(rows[0])}] = {{\n{body}}};\n"


SPLIT27_NOTE = (
    "// F(2,7) split as F(2,4) on taps 0-3 plus F(2,3) on taps 4-6 (inputs 4-7): 9 points per",
    "// 2 outputs (14 direct), on the small points of those two (a single F(2,7)'s 8 points",
    "// need +-2 and +-1/2: 13-16x implicit GEMM's float32 error over 768 channels). AT, G",
    "// and BT as Matrices' (kInputs = 8 inputs per tile).",
)
SPLIT37_NOTE = (
    "// F(3,7) split as F(3,4) on taps 0-3 plus F(3,3) on taps 4-6 (inputs 4-8): 11 points per",
    "// 3 outputs (21 direct; SplitLine27's 9 per 2 are 4.5 per output against 3.67), on the",
    "// points of F(4,3) and F(4,2) (a float64 NumPy model of Inception's 17-long lines over",
    "// 256 channels: float32 error 1.3x direct's forward, 3.2x its weight gradient;",
    "// SplitLine27's 0.8x and 3.9x).",
)


def split_struct(name, m, comment):
    """The lines of struct `name`: F(m, 7) split as F(m, 4) plus F(m, 3) (split_matrices)."""
    at, g, bt = split_matrices(m, 4, 3)
    verify(at, g, bt, m, 7)
    head = f"  static constexpr int kM = {m}, kR = 7, kPoints = {len(g)}, kInputs = {m + 6};"
    return [
        *comment,
        f"struct {name} {{",
        head,
        emit("AT", at) + emit("G", g) + emit("BT", bt) + "};",
        "",
    ]


def main():
    out = [
        "// GENERATED by csrc/ukernels/winograd/gen_winograd_matrices.py: do not edit by hand.",
        "// Exact Toom-Cook matrices of Winograd F(m, r): y = AT [(G g) * (BT d)].",
        "#pragma once",
        "",
        "namespace fastconv::winograd {",
        "",
        "template <int M, int R>",
        "struct Matrices;",
        "",
    ]
    pairs = [(1, 1), (2, 3), (4, 3), (6, 3), (3, 2), (3, 4), (3, 6), (2, 2), (4, 2), (2, 4)]
    pairs += [(2, 5), (5, 2)]
    for m, r in pairs:
        check(m, r)
        at, g, bt = matrices(m, r)
        out.append("template <>")
        out.append(f"struct Matrices<{m}, {r}> {{")
        out.append(f"  static constexpr int kM = {m}, kR = {r}, kAlpha = {m + r - 1};")
        out.append(emit("AT", at) + emit("G", g) + emit("BT", bt) + "};")
        out.append("")
    out += split_struct("SplitLine27", 2, SPLIT27_NOTE)
    out += split_struct("SplitLine37", 3, SPLIT37_NOTE)
    out.append("}  // namespace fastconv::winograd")
    print("\n".join(out))


if __name__ == "__main__":
    main()
