"""fer-video: facial-expression timelines from recorded video."""

__version__ = "0.1.0"
