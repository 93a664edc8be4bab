"""Engines as QCEngine sees them: the PySCF harness this project ships, and checks of any program."""
