"""Riskcast's analyst notebooks (Jupytext percent files) and their helpers; see notebooks/README.md."""
