"""A row-wise HiGHS linear program assembled from numpy blocks (the builder of :mod:`.planner_lp`).

Columns and rows are added in blocks (:meth:`LpBuilder.cols`, :meth:`LpBuilder.rows`), each returning
its indices; coefficients are added as (row, column, value) arrays; :meth:`LpBuilder.lp` sorts them
into one ``HighsLp`` that HiGHS takes in a single ``passModel`` call.
"""

from __future__ import annotations

import highspy
import numpy as np


class LpBuilder:
    """Accumulates columns, rows and coefficients as numpy arrays; emits a row-wise ``HighsLp``."""

    def __init__(self) -> None:
        self.n_col = 0
        self.n_row = 0
        self._cost: list[np.ndarray] = []
        self._lo: list[np.ndarray] = []
        self._hi: list[np.ndarray] = []
        self._rlo: list[np.ndarray] = []
        self._rhi: list[np.ndarray] = []
        self._r: list[np.ndarray] = []
        self._c: list[np.ndarray] = []
        self._v: list[np.ndarray] = []

    def cols(self, n: int, cost: object = 0.0, lo: object = 0.0, hi: object = np.inf) -> np.ndarray:
        idx = np.arange(self.n_col, self.n_col + n)
        self._cost.append(np.broadcast_to(np.asarray(cost, dtype=float), (n,)))
        self._lo.append(np.broadcast_to(np.asarray(lo, dtype=float), (n,)))
        self._hi.append(np.broadcast_to(np.asarray(hi, dtype=float), (n,)))
        self.n_col += n
        return idx

    def rows(self, n: int, lo: object = -np.inf, hi: object = np.inf) -> np.ndarray:
        idx = np.arange(self.n_row, self.n_row + n)
        self._rlo.append(np.broadcast_to(np.asarray(lo, dtype=float), (n,)))
        self._rhi.append(np.broadcast_to(np.asarray(hi, dtype=float), (n,)))
        self.n_row += n
        return idx

    def coef(self, rows: np.ndarray, cols: np.ndarray, vals: object) -> None:
        rows = np.asarray(rows, dtype=np.int64)
        self._r.append(rows)
        self._c.append(np.asarray(cols, dtype=np.int64))
        self._v.append(np.broadcast_to(np.asarray(vals, dtype=float), rows.shape))

    def col_upper(self) -> np.ndarray:
        return np.concatenate(self._hi) if self._hi else np.zeros(0)

    def lp(self) -> highspy.HighsLp:
        rows = np.concatenate(self._r) if self._r else np.zeros(0, dtype=np.int64)
        cols = np.concatenate(self._c) if self._c else np.zeros(0, dtype=np.int64)
        vals = np.concatenate(self._v) if self._v else np.zeros(0)
        order = np.argsort(rows, kind="stable")
        start = np.concatenate([[0], np.cumsum(np.bincount(rows, minlength=self.n_row))]).astype(np.int32)
        lp = highspy.HighsLp()
        lp.num_col_ = self.n_col
        lp.num_row_ = self.n_row
        lp.col_cost_ = np.concatenate(self._cost)
        lp.col_lower_ = np.concatenate(self._lo)
        lp.col_upper_ = np.concatenate(self._hi)
        lp.row_lower_ = np.concatenate(self._rlo) if self._rlo else np.zeros(0)
        lp.row_upper_ = np.concatenate(self._rhi) if self._rhi else np.zeros(0)
        lp.a_matrix_.format_ = highspy.MatrixFormat.kRowwise
        lp.a_matrix_.num_col_ = self.n_col
        lp.a_matrix_.num_row_ = self.n_row
        lp.a_matrix_.start_ = start
        lp.a_matrix_.index_ = cols[order].astype(np.int32)
        lp.a_matrix_.value_ = vals[order].astype(np.float64)
        return lp
