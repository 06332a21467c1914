"""The DataTable every tab's list uses (Models, Runs, Leaderboard): row cursor keys that work the
same in each.

DataTable's own Home/End scroll sideways, which in a table with a row cursor reads as "nothing
happened"; here Home/End (and g/G, as in less and vim) go to the first and last row.
"""

from __future__ import annotations

from typing import ClassVar

from textual.binding import Binding, BindingType
from textual.widgets import DataTable
from textual.widgets._data_table import CellType

ROW_KEYS: list[BindingType] = [
    Binding("home,g", "first_row", "First row", show=False, tooltip="Go to the first row of the table"),
    Binding("end,G", "last_row", "Last row", show=False, tooltip="Go to the last row of the table"),
]


class RowTable(DataTable[CellType]):
    BINDINGS: ClassVar[list[BindingType]] = ROW_KEYS

    def action_first_row(self) -> None:
        if self.row_count:
            self.move_cursor(row=0, animate=False)

    def action_last_row(self) -> None:
        if self.row_count:
            self.move_cursor(row=self.row_count - 1, animate=False)
