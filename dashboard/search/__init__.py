"""The jobs explorer's filter language: parsed (language), run (jobs), completed (suggestions)."""
