"""Latent Studio: explore image, text and music generators in one desktop app."""

__version__ = "0.1.0"
