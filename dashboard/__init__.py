"""The Streamlit dashboard: a leaderboard, a submission form and a submissions table.

It only reads from ``db/`` and enqueues work; it never loads a model or a dataset.
"""
