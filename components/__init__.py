"""The EBFT library, in rooms by concern (docs/architecture.md is the map).

Imports go one way, checked by import-linter (pyproject.toml): ``engine`` and ``data`` at the bottom, then
``method``, then ``training`` and ``evaluation``, then ``release`` and ``project``, then ``params``; ``flows/`` on top.
``settings`` (the base of every settings model) is below them all.
"""
