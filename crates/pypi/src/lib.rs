//! PyPI (stub).
