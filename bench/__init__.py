"""flask_baton vs raw Huey benchmark: ``python -m bench --help``."""
