"""What the benchmarks share: starting app servers and load clients, the apps' /health probe,
statistics, report helpers and the record of what ran.

The runners and load clients are scripts (``python benchmarks/hub/run.py``): each puts the
benchmarks folder on ``sys.path`` before importing this package, and every child process gets
that folder on ``PYTHONPATH`` (:func:`harness.procs.child_env`), so that an app served by uvicorn
from its own ``apps/`` folder can import :mod:`harness.probe` too.
"""
