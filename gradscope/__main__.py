"""``python -m gradscope`` runs the command-line interface.

Importing this module runs nothing (doc generators, test discovery and ``pkgutil`` walks
import every submodule).
"""

from gradscope.cli import main

if __name__ == "__main__":
    main()
