"""Prefect flows: they only wire fer_video's stages into tasks and flows."""
