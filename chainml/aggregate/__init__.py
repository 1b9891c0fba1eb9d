"""Robust aggregation of node updates: pure functions plus small, swappable strategy objects.

Every function here must give the same bits on any machine, because validators recompute the
aggregate independently and vote on its CID. numpy reductions (``sum``, ``mean``, BLAS dot
products) may associate additions differently per CPU, so the code only uses:
- elementwise IEEE operations (correctly rounded everywhere),
- sums over nodes as an explicit loop in a fixed node order (elementwise adds), and
- sorting, which is exact;
and distances are computed in exact int64 fixed point.
"""
