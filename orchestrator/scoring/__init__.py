"""Scorers of candidates: Gemini realism, Moondream identity and consistency, local metrics (DESIGN section 7)."""
