"""The installed Qt binding itself: a broken wheel must fail here, not abort the app in an artist's hands."""

import sys

import pytest


@pytest.mark.skipif(sys.version_info >= (3, 12), reason="None is immortal from Python 3.12: no count to drop")
def test_qt_calls_that_return_nothing_keep_the_reference_count_of_none():
    # PySide6 6.12.0 (abi3) released one reference to None per such call; after ~4,500 calls Python aborted with
    # "none_dealloc" (seen composing a 64-bar piece: the piano roll paints with thousands of setter calls).
    from PySide6.QtGui import QColor

    colour = QColor()
    before = sys.getrefcount(None)
    for _ in range(1000):
        colour.setAlpha(1)
    assert sys.getrefcount(None) > before - 100
