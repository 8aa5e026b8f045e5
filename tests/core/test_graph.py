"""curate.core.graph.smallest_member against a plain breadth-first search, on random and adversarial graphs."""

from collections import deque

import numpy as np

from curate.core.graph import smallest_member


def bfs_smallest(n: int, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    nbrs: list[list[int]] = [[] for _ in range(n)]
    for x, y in zip(a.tolist(), b.tolist(), strict=True):
        nbrs[x].append(y)
        nbrs[y].append(x)
    out = np.full(n, -1)
    for s in range(n):  # in index order, so each group is first reached from its smallest member
        if out[s] >= 0:
            continue
        out[s] = s
        todo = deque([s])
        while todo:
            for y in nbrs[todo.popleft()]:
                if out[y] < 0:
                    out[y] = s
                    todo.append(y)
    return out


def test_matches_bfs_on_random_graphs():
    rng = np.random.default_rng(0)
    for _ in range(200):
        n = int(rng.integers(1, 300))
        m = int(rng.integers(0, 2 * n))
        a, b = rng.integers(0, n, m), rng.integers(0, n, m)
        assert smallest_member(n, a, b).tolist() == bfs_smallest(n, a, b).tolist()


def test_long_chains_stars_and_self_loops():
    rng = np.random.default_rng(1)
    n = 5000
    perm = rng.permutation(n)  # one chain through every item in random order: the deepest case
    assert (smallest_member(n, perm[:-1], perm[1:]) == 0).all()
    centre = 4000  # a star whose centre is not its smallest member, plus self loops and repeated edges
    a = np.r_[np.full(10, centre), 7, 7, 9]
    b = np.r_[np.arange(10, 20), 7, 9, 9]
    got = smallest_member(n, a, b)
    assert (got[np.r_[centre, 10:20]] == 10).all() and got[7] == got[9] == 7 and got[8] == 8
    assert smallest_member(3, np.zeros(0, int), np.zeros(0, int)).tolist() == [0, 1, 2]
