"""Entry point of the symbolic worker subprocess (see ``symbolic._serve`` and ``worker._Worker``).

``worker`` starts it by file path under ``python -I`` (no current directory, PYTHONPATH or script directory
on sys.path), so the checkout that holds this file is put first on sys.path before importing the package;
``python -m scorelib.grading`` starts the same loop.
"""

import os
import sys

if __spec__ is None:  # run by file path, not with -m
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))

from scorelib.grading.symbolic import _serve  # noqa: E402

if __name__ == "__main__":
    _serve()
