"""What every layer shares: the user-error type, atomic file writes, process-wide settings."""
