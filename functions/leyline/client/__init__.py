"""Command-line client of the Leyline API (`leyline generate`, `leyline status`). Standard library only."""
