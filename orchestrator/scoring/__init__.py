"""Scorers of candidates: Gemini realism, Moondream identity and consistency, local metrics.

See docs/architecture.md, "Scoring"."""
