"""Pose transforms in the 300W-LP convention, face crops, head pose from a dense face."""
