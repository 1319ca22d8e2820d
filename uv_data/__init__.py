"""uv_data."""
