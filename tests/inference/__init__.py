"""Tests of cupatch.inference, one module per source module (a package, so that basenames
such as test_sources.py may repeat elsewhere under tests/)."""
